# corio_target_warnings(<target>): the project's warning set, PRIVATE to <target>.
function(corio_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # g++ 12 reports false positives in coroutine frames (GCC PR 109448).
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
  endif()
endfunction()
