# ews_add_plugin(name SOURCES... [OUTPUT_DIR dir]): an indicator plugin as a MODULE library
# named <name>.so (no "lib" prefix), built against ews::sdk only.
function(ews_add_plugin name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIR" "" ${ARGN})
  add_library(${name} MODULE ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE ews::sdk)
  if(NOT ARG_OUTPUT_DIR)
    set(ARG_OUTPUT_DIR ${CMAKE_BINARY_DIR}/plugins)
  endif()
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIR})
  if(COMMAND ews_warnings)
    ews_warnings(${name})
  endif()
endfunction()
