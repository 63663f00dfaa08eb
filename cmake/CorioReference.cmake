# The API reference is complete: every public name of include/corio/*.hpp is documented.
#
# docs.reference (label "docs"): tests/check_api_reference.py lists the public names of every
#   public header (functions, classes and their public members, aliases, constants, enumerators,
#   macros) and fails for each one that docs/reference/<header>.md does not document, and for a
#   header without a page. It then checks itself on a scratch copy (an undocumented function,
#   member and header added there must be reported), so that it cannot silently pass.
add_test(NAME docs.reference
         COMMAND python3 ${PROJECT_SOURCE_DIR}/tests/check_api_reference.py ${PROJECT_SOURCE_DIR})
set_tests_properties(docs.reference PROPERTIES LABELS docs TIMEOUT 60)

# docs.layering (label "docs"): tests/check_layering.py checks every corio include of include/,
#   src/ and the applications against docs/ARCHITECTURE.md's table of which layer may include
#   which (the core never includes the I/O layer; backends include only backend.hpp), and checks
#   itself on a scratch copy with upward includes planted.
add_test(NAME docs.layering
         COMMAND python3 ${PROJECT_SOURCE_DIR}/tests/check_layering.py ${PROJECT_SOURCE_DIR})
set_tests_properties(docs.layering PROPERTIES LABELS docs TIMEOUT 60)
