# example.demo_showcase: what example.demo (one clean run with examples/demo.args) cannot see:
# the showcase's --help, its exit code 2 on bad flags, and Ctrl-C cancelling a run cleanly
# (SIGINT mid-run, exit 130 within 10 s, "cancelled ... cleanly", no sanitizer report).
# Included after CorioExamples; examples are skipped under TSan, hence the guard.
if(TARGET example_demo)
  add_test(NAME example.demo_showcase
           COMMAND python3 ${PROJECT_SOURCE_DIR}/tests/test_demo_showcase.py $<TARGET_FILE:example_demo>)
  set_tests_properties(example.demo_showcase PROPERTIES LABELS example TIMEOUT 60)
endif()
