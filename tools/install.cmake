# Install the library's public face beside libkvfs.a and libkvfs.so (installed to lib/ by the
# top-level CMakeLists.txt, which includes this file after kvfs_static and kvfs_shared exist):
#   include/kvfs.h           store/kvfs.h, the whole API (it includes only system headers)
#   lib/pkgconfig/kvfs.pc    from store/kvfs.pc.in: `pkg-config --cflags --libs kvfs`
#   share/man/man3/kvfs.3    the library manual
# kvfs.pc records CMAKE_INSTALL_PREFIX as configured: install with DESTDIR=... to stage, and
# pass -DCMAKE_INSTALL_PREFIX=... (not `cmake --install --prefix`) to install elsewhere.
configure_file(${CMAKE_SOURCE_DIR}/store/kvfs.pc.in ${CMAKE_BINARY_DIR}/kvfs.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/kvfs.pc DESTINATION lib/pkgconfig)
install(FILES ${CMAKE_SOURCE_DIR}/store/kvfs.h DESTINATION include)
install(FILES ${CMAKE_SOURCE_DIR}/man/kvfs.3 DESTINATION share/man/man3)
