# kvfs-bench-tree: the store's B+tree alone against LMDB (tools/bench_tree.c, man/kvfs-bench-tree.1).
# Included by the top-level CMakeLists.txt, which sets KVFS_HAVE_LMDB, LMDB_INCLUDE and LMDB_LIB
# when liblmdb-dev is installed; without it the tool builds and runs the kvfs side only.
add_executable(kvfs-bench-tree ${CMAKE_SOURCE_DIR}/tools/bench_tree.c)
target_link_libraries(kvfs-bench-tree PRIVATE kvfs_static)
target_compile_definitions(kvfs-bench-tree PRIVATE KVFS_VERSION="${PROJECT_VERSION}")
if(KVFS_HAVE_LMDB)
  target_compile_definitions(kvfs-bench-tree PRIVATE KVFS_HAVE_LMDB=1)
  target_include_directories(kvfs-bench-tree PRIVATE ${LMDB_INCLUDE})
  target_link_libraries(kvfs-bench-tree PRIVATE ${LMDB_LIB})
else()
  message(STATUS "kvfs-bench-tree: LMDB not found, building the kvfs side only")
endif()
install(TARGETS kvfs-bench-tree RUNTIME DESTINATION bin)
install(FILES ${CMAKE_SOURCE_DIR}/man/kvfs-bench-tree.1 DESTINATION share/man/man1)
