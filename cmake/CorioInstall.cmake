# Install rules: the library, its headers, an exported CMake package
# (find_package(corio CONFIG) -> corio::corio) and a pkg-config file (corio.pc).
# tests/test_consumer_project.sh (ctest install.consumer_project) builds examples/consumer
# against this install both ways.
include(CMakePackageConfigHelpers)

set(CORIO_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/corio")
get_target_property(_corio_type corio TYPE)

# The include directory comes from the target's own $<INSTALL_INTERFACE:...>
# (CMakeLists.txt); an INCLUDES DESTINATION here would only export it a second time.
install(TARGETS corio
  EXPORT corioTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/corio"
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# A sanitizer build (CORIO_SANITIZE, cmake/CorioSanitizers.cmake) is instrumented: whatever links
# it needs the sanitizer's runtime, and with TSan its own code must be instrumented too. So an
# installed sanitizer build hands its flags on to its users, through corio::corio and corio.pc
# (in the build tree every target gets them from CorioSanitizers.cmake already).
set(_corio_san_cflags "")
set(_corio_san_ldflags "")
if(CORIO_SANITIZE)
  get_directory_property(_corio_san_cflags COMPILE_OPTIONS)
  get_directory_property(_corio_san_ldflags LINK_OPTIONS)
  foreach(flag IN LISTS _corio_san_cflags)
    target_compile_options(corio INTERFACE "$<INSTALL_INTERFACE:${flag}>")
  endforeach()
  foreach(flag IN LISTS _corio_san_ldflags)
    target_link_options(corio INTERFACE "$<INSTALL_INTERFACE:${flag}>")
  endforeach()
endif()

install(EXPORT corioTargets
  NAMESPACE corio::
  FILE corioTargets.cmake
  DESTINATION ${CORIO_INSTALL_CMAKEDIR})

# corioConfig.cmake checks, for a static corio with the io_uring backend, that the liburing its
# users must link (`uring` in corioTargets.cmake) can be found.
set(CORIO_CONFIG_NEEDS_URING "")
if(_corio_type STREQUAL "STATIC_LIBRARY" AND CORIO_PC_EXTRA_LIBS)
  set(CORIO_CONFIG_NEEDS_URING ON)
endif()
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

# pkg-config. The documented use is `pkg-config --cflags --libs corio`, without --static: so
# for the static library (the default) what it links goes in Libs, and only a shared libcorio
# moves liburing to Libs.private.
set(CORIO_PC_CFLAGS "-pthread")
set(CORIO_PC_LIBS "-pthread")
set(CORIO_PC_LIBS_PRIVATE "")
if(_corio_type STREQUAL "STATIC_LIBRARY")
  string(APPEND CORIO_PC_LIBS " ${CORIO_PC_EXTRA_LIBS}")
else()
  set(CORIO_PC_LIBS_PRIVATE "${CORIO_PC_EXTRA_LIBS}")
endif()
foreach(flag IN LISTS _corio_san_cflags)
  string(APPEND CORIO_PC_CFLAGS " ${flag}")
endforeach()
foreach(flag IN LISTS _corio_san_ldflags)
  string(APPEND CORIO_PC_LIBS " ${flag}")
endforeach()
string(STRIP "${CORIO_PC_LIBS}" CORIO_PC_LIBS)
string(STRIP "${CORIO_PC_LIBS_PRIVATE}" CORIO_PC_LIBS_PRIVATE)
foreach(dir IN ITEMS LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(CORIO_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(CORIO_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()

# The prefix is filled in at install time, so that
# `cmake --install <dir> --prefix <p>` writes the prefix the files really go to.
set(CORIO_PC_PREFIX "@CORIO_PC_PREFIX@")
configure_file("${CMAKE_CURRENT_LIST_DIR}/corio.pc.in" "${PROJECT_BINARY_DIR}/corio.pc.in" @ONLY)
install(CODE "
  set(CORIO_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${PROJECT_BINARY_DIR}/corio.pc.in\" \"${PROJECT_BINARY_DIR}/corio.pc\" @ONLY)
")
install(FILES "${PROJECT_BINARY_DIR}/corio.pc"
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

unset(_corio_type)
unset(_corio_san_cflags)
unset(_corio_san_ldflags)
