# Every bench/<stem>.cpp becomes the executable <stem> in ${CMAKE_BINARY_DIR}/bench.
# bm_*.cpp are Google Benchmark programs; the rest are plain programs.
file(GLOB CORIO_BENCH_SOURCES CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/bench/*.cpp")
if(NOT CORIO_BENCH_SOURCES)
  return()
endif()

find_package(benchmark QUIET)

foreach(src IN LISTS CORIO_BENCH_SOURCES)
  get_filename_component(stem "${src}" NAME_WE)
  if(stem MATCHES "^bm_" AND NOT TARGET benchmark::benchmark)
    message(WARNING "corio: Google Benchmark not found, skipping bench/${stem}.cpp")
    continue()
  endif()
  add_executable(${stem} "${src}")
  target_link_libraries(${stem} PRIVATE corio::corio)
  if(stem MATCHES "^bm_")
    target_link_libraries(${stem} PRIVATE benchmark::benchmark)
  endif()
  corio_target_warnings(${stem})
  set_target_properties(${stem} PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/bench")
endforeach()
