# install.consumer_project (label "install"): tests/test_consumer_project.sh installs this build
# into a temporary prefix and builds examples/consumer against it, with find_package(corio) and
# with pkg-config, using this build's compiler (and sanitizer, which an installed sanitizer build
# hands on to its users: cmake/CorioInstall.cmake). It installs what the build made, so it runs
# after the build, like every ctest test.
add_test(NAME install.consumer_project
  COMMAND bash ${PROJECT_SOURCE_DIR}/tests/test_consumer_project.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
set_tests_properties(install.consumer_project PROPERTIES LABELS install TIMEOUT 300)
