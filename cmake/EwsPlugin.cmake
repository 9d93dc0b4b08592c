# ews_add_plugin(name SOURCES... [OUTPUT_DIR dir] [INSTALL]): an indicator plugin as a MODULE
# library named <name>.so (no "lib" prefix), built against ews::sdk only.
#
# Used both inside the ewsd tree and, installed with the SDK, by plugin authors after
# find_package(ews). Without OUTPUT_DIR the .so goes to <build>/plugins inside the ewsd tree
# (where the in-tree ews_sdk target exists) and to the current binary directory elsewhere.
# INSTALL installs it into EWS_PLUGIN_INSTALL_DIR (default lib/ewsd/plugins, relative to the
# install prefix); `cmake --install` writes files in place, so a running ewsd must not be
# pointed at that directory while installing: see docs/plugin-guide.md for the atomic way.
function(ews_add_plugin name)
  cmake_parse_arguments(ARG "INSTALL" "OUTPUT_DIR" "" ${ARGN})
  add_library(${name} MODULE ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE ews::sdk)
  if(NOT ARG_OUTPUT_DIR)
    if(TARGET ews_sdk)
      set(ARG_OUTPUT_DIR ${CMAKE_BINARY_DIR}/plugins)
    else()
      set(ARG_OUTPUT_DIR ${CMAKE_CURRENT_BINARY_DIR})
    endif()
  endif()
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIR})
  if(COMMAND ews_warnings)
    ews_warnings(${name})
  endif()
  if(ARG_INSTALL)
    set(destination lib/ewsd/plugins)
    if(EWS_PLUGIN_INSTALL_DIR)
      set(destination ${EWS_PLUGIN_INSTALL_DIR})
    endif()
    install(TARGETS ${name} LIBRARY DESTINATION ${destination})
  endif()
endfunction()
