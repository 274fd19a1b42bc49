# kvfs-check: verify and repair a kvfs store like e2fsck (tools/check/, man/kvfs-check.8).
# Included by the top-level CMakeLists.txt.
file(GLOB KVFS_CHECK_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tools/check/*.c)
add_executable(kvfs-check ${KVFS_CHECK_SRC})
target_link_libraries(kvfs-check PRIVATE kvfs_static)
target_compile_definitions(kvfs-check PRIVATE KVFS_VERSION="${PROJECT_VERSION}")
# bin, not sbin: stores belong to users, and sbin is not in a user's PATH on Debian
install(TARGETS kvfs-check RUNTIME DESTINATION bin)
install(FILES ${CMAKE_SOURCE_DIR}/man/kvfs-check.8 DESTINATION share/man/man8)
