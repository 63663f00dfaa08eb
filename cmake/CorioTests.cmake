# Every tests/test_*.cpp is its own GoogleTest executable, named after the file.
# tests/tsan_tests.cmake, when present, may set CORIO_TSAN_TESTS (a list of those names):
# under CORIO_SANITIZE=thread only these are built and registered.
find_package(GTest REQUIRED)
include(GoogleTest)

file(GLOB CORIO_TEST_SOURCES CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/tests/test_*.cpp")

set(_corio_tsan_list "${PROJECT_SOURCE_DIR}/tests/tsan_tests.cmake")
if(EXISTS "${_corio_tsan_list}")
  include("${_corio_tsan_list}")
endif()

set(_corio_only_tsan OFF)
if(CORIO_SANITIZE STREQUAL "thread" AND DEFINED CORIO_TSAN_TESTS)
  set(_corio_only_tsan ON)
  set(_corio_stems "")
  foreach(src IN LISTS CORIO_TEST_SOURCES)
    get_filename_component(stem "${src}" NAME_WE)
    list(APPEND _corio_stems "${stem}")
  endforeach()
  foreach(name IN LISTS CORIO_TSAN_TESTS)
    if(NOT name IN_LIST _corio_stems)
      message(WARNING "corio: CORIO_TSAN_TESTS names '${name}', but tests/${name}.cpp does not exist")
    endif()
  endforeach()
  message(STATUS "corio: TSan build runs only: ${CORIO_TSAN_TESTS}")
endif()

foreach(src IN LISTS CORIO_TEST_SOURCES)
  get_filename_component(stem "${src}" NAME_WE)
  if(_corio_only_tsan AND NOT stem IN_LIST CORIO_TSAN_TESTS)
    continue()
  endif()
  add_executable(${stem} "${src}")
  target_link_libraries(${stem} PRIVATE corio::corio GTest::gtest_main)
  corio_target_warnings(${stem})
  gtest_discover_tests(${stem}
    DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT 120 LABELS unit)
endforeach()

unset(_corio_tsan_list)
unset(_corio_only_tsan)
unset(_corio_stems)
