# man_lint: every man/*.[0-9] lints clean under groff -ww, and every getopt_long option of
# every tools/*.c appears in its man page (tests/man_lint.sh).  Included by the top-level
# CMakeLists.txt after enable_testing(), so add_test registers here.
add_test(NAME man_lint COMMAND bash ${CMAKE_SOURCE_DIR}/tests/man_lint.sh)
set_tests_properties(man_lint PROPERTIES TIMEOUT 120)
