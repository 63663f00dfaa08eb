# Install rules: the library, its headers, an exported CMake package
# (find_package(corio CONFIG) -> corio::corio) and a pkg-config file (corio.pc).
include(CMakePackageConfigHelpers)

set(CORIO_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/corio")

install(TARGETS corio
  EXPORT corioTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/corio"
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(EXPORT corioTargets
  NAMESPACE corio::
  FILE corioTargets.cmake
  DESTINATION ${CORIO_INSTALL_CMAKEDIR})

configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/corioConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/corioConfig.cmake"
  INSTALL_DESTINATION ${CORIO_INSTALL_CMAKEDIR})
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/corioConfigVersion.cmake"
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/corioConfig.cmake"
  "${PROJECT_BINARY_DIR}/corioConfigVersion.cmake"
  DESTINATION ${CORIO_INSTALL_CMAKEDIR})

# pkg-config. The prefix is filled in at install time, so that
# `cmake --install <dir> --prefix <p>` writes the prefix the files really go to.
set(CORIO_PC_PREFIX "@CORIO_PC_PREFIX@")
configure_file("${CMAKE_CURRENT_LIST_DIR}/corio.pc.in" "${PROJECT_BINARY_DIR}/corio.pc.in" @ONLY)
install(CODE "
  set(CORIO_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${PROJECT_BINARY_DIR}/corio.pc.in\" \"${PROJECT_BINARY_DIR}/corio.pc\" @ONLY)
")
install(FILES "${PROJECT_BINARY_DIR}/corio.pc"
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
