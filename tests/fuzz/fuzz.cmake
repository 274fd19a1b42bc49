# tests/fuzz/fuzz.cmake — the libFuzzer harnesses (tests/fuzz/) and their replay suite.
# Included by the top-level CMakeLists.txt after the generic Check-suite rule (which builds
# check_fuzz_regress from tests/check_fuzz_regress.c) and after the tools.
#
#   -DKVFS_FUZZ=ON with clang (CC=clang): build kvfs-fuzz-{store,wal,keys,check}, each with
#     -fsanitize=fuzzer,address,undefined and the library's sources compiled into it with the
#     same instrumentation, and kvfs-fuzz-seeds (writes the seed corpora).
#     tests/fuzz/run.sh builds and runs them.
#   Always (any compiler, when Check is found): the replay suite check_fuzz_regress runs every
#     harness on the seeds and on every input that once crashed (tests/fuzz/regress.c), so a
#     bug found by fuzzing stays fixed in the ordinary build and in CI without clang.
option(KVFS_FUZZ "Build the libFuzzer harnesses (needs clang and its runtime, libclang-rt-dev)" OFF)

set(KVFS_FUZZ_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz)
set(KVFS_FUZZ_HARNESSES store wal keys check)
# kvfs-check's sources, its main() renamed kvfs_check_main by tests/fuzz/check_main.c.
file(GLOB KVFS_FUZZ_CHECK_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tools/check/*.c)
list(FILTER KVFS_FUZZ_CHECK_SRC EXCLUDE REGEX ".*/main\\.c$")
list(APPEND KVFS_FUZZ_CHECK_SRC ${KVFS_FUZZ_DIR}/check_main.c)

if(CHECK_FOUND AND TARGET check_fuzz_regress)
  foreach(h ${KVFS_FUZZ_HARNESSES})
    target_sources(check_fuzz_regress PRIVATE ${KVFS_FUZZ_DIR}/fuzz_${h}.c)
  endforeach()
  target_sources(check_fuzz_regress PRIVATE ${KVFS_FUZZ_DIR}/fuzz_util.c
                 ${KVFS_FUZZ_DIR}/seeds.c ${KVFS_FUZZ_DIR}/regress.c ${KVFS_FUZZ_CHECK_SRC})
  target_compile_definitions(check_fuzz_regress PRIVATE KVFS_VERSION="${PROJECT_VERSION}")
  set_tests_properties(check_fuzz_regress PROPERTIES TIMEOUT 600)
endif()

if(KVFS_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(WARNING "KVFS_FUZZ needs clang (CC=clang): only the replay suite is built")
  else()
    set(KVFS_FUZZ_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
                        -fno-omit-frame-pointer -g)
    # The library, io_fault and the shared helpers, instrumented for coverage once.
    add_library(kvfs_fuzz_objs OBJECT ${KVFS_SRC} ${CMAKE_SOURCE_DIR}/store/io_fault.c
                ${KVFS_FUZZ_DIR}/fuzz_util.c)
    target_compile_options(kvfs_fuzz_objs PRIVATE ${KVFS_FUZZ_FLAGS}
      -fsanitize=fuzzer-no-link
      -fsanitize-coverage-ignorelist=${KVFS_FUZZ_DIR}/coverage_ignore.txt)
    target_link_libraries(kvfs_fuzz_objs PUBLIC PkgConfig::XXHASH Threads::Threads)
    foreach(h ${KVFS_FUZZ_HARNESSES})
      add_executable(kvfs-fuzz-${h} ${KVFS_FUZZ_DIR}/fuzz_${h}.c
                     $<TARGET_OBJECTS:kvfs_fuzz_objs>)
      target_compile_definitions(kvfs-fuzz-${h} PRIVATE KVFS_LIBFUZZER)
      target_compile_options(kvfs-fuzz-${h} PRIVATE ${KVFS_FUZZ_FLAGS} -fsanitize=fuzzer)
      target_link_options(kvfs-fuzz-${h} PRIVATE -fsanitize=fuzzer,address,undefined)
      target_link_libraries(kvfs-fuzz-${h} PkgConfig::XXHASH Threads::Threads)
    endforeach()
    target_sources(kvfs-fuzz-check PRIVATE ${KVFS_FUZZ_CHECK_SRC})
    target_compile_definitions(kvfs-fuzz-check PRIVATE KVFS_VERSION="${PROJECT_VERSION}")
    # The seed writer: the same objects, a main of its own (the coverage hooks resolve to the
    # sanitizer runtime's no-op defaults).
    add_executable(kvfs-fuzz-seeds ${KVFS_FUZZ_DIR}/seeds.c
                   $<TARGET_OBJECTS:kvfs_fuzz_objs>)
    target_compile_definitions(kvfs-fuzz-seeds PRIVATE FUZZ_SEEDS_MAIN)
    target_compile_options(kvfs-fuzz-seeds PRIVATE ${KVFS_FUZZ_FLAGS})
    target_link_options(kvfs-fuzz-seeds PRIVATE -fsanitize=address,undefined)
    target_link_libraries(kvfs-fuzz-seeds PkgConfig::XXHASH Threads::Threads)
  endif()
endif()
