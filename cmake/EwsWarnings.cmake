# ews_warnings(target): the project's warning set; errors when EWS_WERROR is ON.
function(ews_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow=local
                         -Wno-missing-field-initializers)
  if(EWS_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
