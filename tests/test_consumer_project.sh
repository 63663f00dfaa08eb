#!/usr/bin/env bash
# Usage: tests/test_consumer_project.sh SRC_DIR BUILD_DIR
#
# Installs the corio already built in BUILD_DIR into a fresh temporary prefix, then builds
# SRC_DIR/examples/consumer against that install the two ways a user would, and runs it:
#   (a) CMake:      find_package(corio CONFIG REQUIRED) with -DCMAKE_PREFIX_PATH=<prefix>
#   (b) pkg-config: <c++> -std=c++20 main.cpp $(pkg-config --cflags --libs corio)
# with the compiler BUILD_DIR was configured with. Each app must print "consumer ok".
# Registered as the ctest install.consumer_project (cmake/CorioConsumerTest.cmake); it runs
# after the build, like every test, and builds nothing in BUILD_DIR. Network: loopback only.
set -euo pipefail

say() { printf 'consumer-test: %s\n' "$*"; }
die() { printf 'consumer-test: FAILED: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 2 ]] || die "usage: $0 SRC_DIR BUILD_DIR"
src_dir=$(cd "$1" && pwd) || die "no source dir '$1'"
build_dir=$(cd "$2" && pwd) || die "no build dir '$2'"
consumer="$src_dir/examples/consumer"
cache="$build_dir/CMakeCache.txt"
[[ -f "$consumer/CMakeLists.txt" && -f "$consumer/main.cpp" ]] || die "no consumer project in $consumer"
[[ -f "$cache" ]] || die "$build_dir is not a configured CMake build dir (no CMakeCache.txt)"

# cache_value NAME: the value of NAME in BUILD_DIR's CMakeCache.txt (empty when unset).
cache_value() { sed -n "s/^$1:[A-Za-z]*=//p" "$cache" | head -n 1; }

cxx=$(cache_value CMAKE_CXX_COMPILER)
generator=$(cache_value CMAKE_GENERATOR)
sanitize=$(cache_value CORIO_SANITIZE)
[[ -n "$cxx" ]] || die "CMAKE_CXX_COMPILER is not set in $cache"
command -v "$cxx" >/dev/null || die "the build's compiler '$cxx' is not there"
command -v pkg-config >/dev/null || die "pkg-config is not installed (make deps installs it)"
say "compiler $cxx, generator ${generator:-default}, sanitizer ${sanitize:-none}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/corio-consumer.XXXXXX")
prefix="$tmp/prefix"

# cmake --install rewrites BUILD_DIR/install_manifest.txt (what a real install put where) and
# BUILD_DIR/corio.pc: put back what was there, so the test leaves BUILD_DIR as it found it.
kept=(install_manifest.txt corio.pc)
mkdir "$tmp/kept"
for f in "${kept[@]}"; do
  if [[ -f "$build_dir/$f" ]]; then cp -p "$build_dir/$f" "$tmp/kept/$f"; fi
done
cleanup() {
  for f in "${kept[@]}"; do
    if [[ -f "$tmp/kept/$f" ]]; then cp -p "$tmp/kept/$f" "$build_dir/$f"; else rm -f "$build_dir/$f"; fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# 1. Install. A library that is not built yet makes this fail: run the build first.
say "installing $build_dir into $prefix"
cmake --install "$build_dir" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; die "cmake --install failed (is $build_dir built?)"; }
for f in include/corio/corio.hpp include/corio/detail; do
  [[ -e "$prefix/$f" ]] || die "the install has no $f"
done
config=$(find "$prefix" -path '*/cmake/corio/corioConfig.cmake' | head -n 1)
pc=$(find "$prefix" -path '*/pkgconfig/corio.pc' | head -n 1)
[[ -n "$config" ]] || die "the install has no corioConfig.cmake"
[[ -n "$pc" ]] || die "the install has no corio.pc"
[[ -f "$(dirname "$config")/corioConfigVersion.cmake" ]] || die "the install has no corioConfigVersion.cmake"
libdir=$(dirname "$(dirname "$pc")")

# The apps talk to themselves over 127.0.0.1; a hang is a failure, not a ctest timeout.
run_app() {  # run_app LABEL EXE
  local out rc=0
  out=$(LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" timeout 60 "$2" 2>&1) || rc=$?
  printf '%s\n' "$out" | sed "s/^/  $1| /"
  [[ $rc -eq 0 ]] || die "$1: the app exited with status $rc"
  grep -qx 'consumer ok' <<<"$out" || die "$1: the app did not print 'consumer ok'"
}

# 2a. CMake: find_package(corio) from the fresh prefix, not from anywhere else.
say "(a) CMake: find_package(corio) with CMAKE_PREFIX_PATH=$prefix"
cmake_args=(-S "$consumer" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx")
if [[ -n "$generator" ]]; then cmake_args+=(-G "$generator"); fi
cmake "${cmake_args[@]}" >"$tmp/configure.log" 2>&1 ||
  { cat "$tmp/configure.log" >&2; die "(a) configuring the consumer project failed"; }
found=$(sed -n 's/^corio_DIR:[A-Za-z]*=//p' "$tmp/cmake-build/CMakeCache.txt")
[[ "$found" == "$prefix"/* ]] || die "(a) find_package found corio in '$found', not in $prefix"
cmake --build "$tmp/cmake-build" -j1 >"$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log" >&2; die "(a) building the consumer project failed"; }
run_app cmake "$tmp/cmake-build/app"

# 2b. pkg-config, the one-line build.
say "(b) pkg-config: PKG_CONFIG_PATH=$(dirname "$pc")"
PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_PATH
[[ "$(pkg-config --variable=prefix corio)" == "$prefix" ]] ||
  die "(b) pkg-config's corio is not the one in $prefix: $(pkg-config --variable=prefix corio)"
flags=$(pkg-config --cflags --libs corio) || die "(b) pkg-config --cflags --libs corio failed"
read -r -a pc_flags <<<"$flags"
say "(b) $cxx -std=c++20 main.cpp ${pc_flags[*]}"
"$cxx" -std=c++20 "$consumer/main.cpp" -o "$tmp/app-pkg-config" "${pc_flags[@]}" >"$tmp/pkg-build.log" 2>&1 ||
  { cat "$tmp/pkg-build.log" >&2; die "(b) building main.cpp with pkg-config's flags failed"; }
run_app pkg-config "$tmp/app-pkg-config"

say "PASS: both builds against the installed corio print 'consumer ok'"
