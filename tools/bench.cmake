# kvfs-bench: db_bench-style workloads through kvfs.h against LMDB and SQLite in WAL mode
# (tools/bench.c, man/kvfs-bench.1).  Included by the top-level CMakeLists.txt, which sets
# KVFS_HAVE_LMDB, LMDB_INCLUDE and LMDB_LIB when liblmdb-dev is installed.  SQLite is found here
# (libsqlite3-dev).  Without either library the tool builds and runs the other engines.
find_path(SQLITE3_INCLUDE sqlite3.h)
find_library(SQLITE3_LIB sqlite3)

add_executable(kvfs-bench ${CMAKE_SOURCE_DIR}/tools/bench.c)
target_link_libraries(kvfs-bench PRIVATE kvfs_static Threads::Threads)
target_compile_definitions(kvfs-bench PRIVATE KVFS_VERSION="${PROJECT_VERSION}")
if(KVFS_HAVE_LMDB)
  target_compile_definitions(kvfs-bench PRIVATE KVFS_HAVE_LMDB=1)
  target_include_directories(kvfs-bench PRIVATE ${LMDB_INCLUDE})
  target_link_libraries(kvfs-bench PRIVATE ${LMDB_LIB})
else()
  message(STATUS "kvfs-bench: LMDB not found (liblmdb-dev), building without it")
endif()
if(SQLITE3_INCLUDE AND SQLITE3_LIB)
  target_compile_definitions(kvfs-bench PRIVATE KVFS_HAVE_SQLITE=1)
  target_include_directories(kvfs-bench PRIVATE ${SQLITE3_INCLUDE})
  target_link_libraries(kvfs-bench PRIVATE ${SQLITE3_LIB})
else()
  message(STATUS "kvfs-bench: SQLite not found (libsqlite3-dev), building without it")
endif()
install(TARGETS kvfs-bench RUNTIME DESTINATION bin)
install(FILES ${CMAKE_SOURCE_DIR}/man/kvfs-bench.1 DESTINATION share/man/man1)
