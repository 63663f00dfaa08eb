# Applies CORIO_SANITIZE to every target of the build (library, tests, examples).
#   ""        no sanitizer
#   address   ASan + UBSan, any UBSan finding is fatal
#   thread    TSan
if(CORIO_SANITIZE STREQUAL "")
  return()
elseif(CORIO_SANITIZE STREQUAL "address")
  set(_corio_san_flags -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
elseif(CORIO_SANITIZE STREQUAL "thread")
  set(_corio_san_flags -fsanitize=thread)
else()
  message(FATAL_ERROR "CORIO_SANITIZE must be empty, 'address' or 'thread' (got '${CORIO_SANITIZE}')")
endif()

message(STATUS "corio: sanitizer '${CORIO_SANITIZE}': ${_corio_san_flags}")
add_compile_options(${_corio_san_flags})
add_link_options(${_corio_san_flags})
unset(_corio_san_flags)
