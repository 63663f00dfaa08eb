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

# Shuffled ready queue (issue 4): suites that must not depend on the order in which ready tasks
# run are run again with the loop's ready queue shuffled by seed. CORIO_SHUFFLE_SEEDS=100 for
# the long campaign; a failing seed replays with CORIO_SHUFFLE_SEED=<seed> ./build/.../<suite>.
set(CORIO_SHUFFLE_SEEDS 3 CACHE STRING "How many seeds the shuffled-ready-queue campaign runs per suite")
if(NOT CORIO_SANITIZE STREQUAL "thread")
  foreach(stem IN ITEMS test_cancel_everywhere test_stress_shutdown test_stress_processes test_subprocess
                        test_sockets test_socket_addresses test_socket_fds test_signals)
    if(TARGET ${stem})
      foreach(seed RANGE 1 ${CORIO_SHUFFLE_SEEDS})
        add_test(NAME shuffle.${stem}.seed${seed} COMMAND ${stem})
        set_tests_properties(shuffle.${stem}.seed${seed} PROPERTIES
          ENVIRONMENT "CORIO_SHUFFLE_SEED=${seed}" LABELS "shuffle" TIMEOUT 300)
      endforeach()
    endif()
  endforeach()
endif()

# The CI smoke of the connection soak (issue 4): 1,000 connections for a minute, in the
# unsanitized builds only (the short soak above runs everywhere).
if(NOT CORIO_SANITIZE AND TARGET test_soak_connections)
  add_test(NAME soak.smoke_1000_connections_60s COMMAND test_soak_connections)
  set_tests_properties(soak.smoke_1000_connections_60s PROPERTIES
    ENVIRONMENT "CORIO_SOAK_CONNECTIONS=1000;CORIO_SOAK_SECONDS=60;CORIO_TEST_TIMEOUT=300"
    LABELS "soak" TIMEOUT 400)
endif()

# The long stress and soak runs (ctest -L long), off by default.
option(CORIO_LONG_TESTS "Register the long stress/soak runs (ctest -L long)" OFF)
if(CORIO_LONG_TESTS)
  foreach(stem IN ITEMS test_stress_threads test_stress_processes test_stress_shutdown
                        test_stress_timers test_soak_connections)
    if(TARGET ${stem})
      add_test(NAME ${stem}.long COMMAND ${stem})
      set_tests_properties(${stem}.long PROPERTIES
        ENVIRONMENT "CORIO_STRESS_SCALE=10;CORIO_TEST_TIMEOUT=900"
        LABELS "long;stress" TIMEOUT 1800 RUN_SERIAL TRUE)
    endif()
  endforeach()
endif()
