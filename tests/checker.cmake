# kvfs-check's tests (tests/check_checker.c) and the damaged-store generator (tests/damage.c).
# Included by the top-level CMakeLists.txt after the tools and the generic Check-suite rule,
# which already builds check_checker from tests/check_checker.c and tests/testutil*.c.
if(CHECK_FOUND AND TARGET check_checker AND TARGET kvfs-check)
  target_sources(check_checker PRIVATE ${CMAKE_SOURCE_DIR}/tests/damage.c)
  target_compile_definitions(check_checker PRIVATE
    KVFS_CHECK_BIN="$<TARGET_FILE:kvfs-check>")
  add_dependencies(check_checker kvfs-check)
  set_tests_properties(check_checker PROPERTIES TIMEOUT 600)
endif()
# check_namespace runs kvfs-check -n on the stores its purge and truncation tests leave.
if(CHECK_FOUND AND TARGET check_namespace AND TARGET kvfs-check)
  target_compile_definitions(check_namespace PRIVATE
    KVFS_CHECK_BIN="$<TARGET_FILE:kvfs-check>")
  add_dependencies(check_namespace kvfs-check)
endif()

# check_ns_format runs kvfs-check on a store of v1 inode records.
if(CHECK_FOUND AND TARGET check_ns_format AND TARGET kvfs-check)
  target_compile_definitions(check_ns_format PRIVATE
    KVFS_CHECK_BIN="$<TARGET_FILE:kvfs-check>")
  add_dependencies(check_ns_format kvfs-check)
endif()

# kvfs-damage STORE CASE [SEED]: make a store and damage it, for a human reproducing a case.
add_executable(kvfs-damage ${CMAKE_SOURCE_DIR}/tests/damage.c)
target_compile_definitions(kvfs-damage PRIVATE KVFS_DAMAGE_MAIN)
target_link_libraries(kvfs-damage kvfs_static)
