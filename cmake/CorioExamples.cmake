# Every examples/<stem>.cpp becomes the executable example_<stem> and the ctest test
# example.<stem> (label "example"). examples/<stem>.args, when present, holds its
# command-line arguments on one line. An example that includes "corio/testing.hpp" also
# links GTest::gtest_main.
file(GLOB CORIO_EXAMPLE_SOURCES CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/examples/*.cpp")
# Globbed so that adding or removing an .args file re-runs CMake.
file(GLOB _corio_example_args CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/examples/*.args")

foreach(src IN LISTS CORIO_EXAMPLE_SOURCES)
  get_filename_component(stem "${src}" NAME_WE)
  set(target example_${stem})
  add_executable(${target} "${src}")
  target_link_libraries(${target} PRIVATE corio::corio)
  corio_target_warnings(${target})

  # What decides how the example is linked and run is read at configure time,
  # so a change to it must re-run CMake.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${src}")
  file(READ "${src}" _corio_text)
  string(FIND "${_corio_text}" "corio/testing.hpp" _corio_uses_gtest)
  if(NOT _corio_uses_gtest EQUAL -1)
    if(NOT TARGET GTest::gtest_main)
      find_package(GTest REQUIRED)
    endif()
    target_link_libraries(${target} PRIVATE GTest::gtest_main)
  endif()

  set(_corio_args "")
  set(args_file "${PROJECT_SOURCE_DIR}/examples/${stem}.args")
  if(EXISTS "${args_file}")
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${args_file}")
    file(STRINGS "${args_file}" _corio_line LIMIT_COUNT 1)
    separate_arguments(_corio_args UNIX_COMMAND "${_corio_line}")
  endif()

  add_test(NAME example.${stem} COMMAND ${target} ${_corio_args})
  set_tests_properties(example.${stem} PROPERTIES LABELS example TIMEOUT 60)
endforeach()

# hello.cpp checks nothing itself: its test checks what it prints, in order.
if(TEST example.hello)
  set_tests_properties(example.hello PROPERTIES PASS_REGULAR_EXPRESSION "^Hello\nWorld\n$")
endif()

unset(_corio_example_args)
unset(_corio_text)
unset(_corio_uses_gtest)
unset(_corio_args)
unset(_corio_line)
