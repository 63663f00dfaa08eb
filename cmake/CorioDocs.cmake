# The documentation's C++ is compiled and run, so the docs cannot rot.
#
# docs.snippets (label "docs"): tests/check_doc_snippets.py checks that every ```cpp block in
#   README.md and docs/*.md is, verbatim, the file or the `// [region]` of a file under
#   examples/ or docs/snippets/ that its `<!-- snippet: ... -->` comment names.
# Every docs/snippets/<stem>.cpp becomes the executable docs_<stem> and the ctest test
# docs.<stem> (label "docs"), built like the examples (cmake/CorioExamples.cmake): a snippet
# that includes "corio/testing.hpp" also links GTest::gtest_main.
add_test(NAME docs.snippets COMMAND python3 ${PROJECT_SOURCE_DIR}/tests/check_doc_snippets.py ${PROJECT_SOURCE_DIR})
set_tests_properties(docs.snippets PROPERTIES LABELS docs TIMEOUT 60)

file(GLOB CORIO_DOC_SNIPPETS CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/docs/snippets/*.cpp")

foreach(src IN LISTS CORIO_DOC_SNIPPETS)
  get_filename_component(stem "${src}" NAME_WE)
  set(target docs_${stem})
  add_executable(${target} "${src}")
  target_link_libraries(${target} PRIVATE corio::corio)
  corio_target_warnings(${target})

  # Whether it links GoogleTest is read at configure time: a change must re-run CMake.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${src}")
  file(READ "${src}" _corio_text)
  string(FIND "${_corio_text}" "corio/testing.hpp" _corio_uses_gtest)
  if(NOT _corio_uses_gtest EQUAL -1)
    if(NOT TARGET GTest::gtest_main)
      find_package(GTest REQUIRED)
    endif()
    target_link_libraries(${target} PRIVATE GTest::gtest_main)
  endif()

  add_test(NAME docs.${stem} COMMAND ${target})
  set_tests_properties(docs.${stem} PROPERTIES LABELS docs TIMEOUT 60)
endforeach()

unset(_corio_text)
unset(_corio_uses_gtest)
