# corio — build, test and demo entry points. See README.md.
#   make            g++ Release build in build/release
#   make demo       install deps, build, run the showcase
#   make test       install deps; g++ Release, clang-16 ASan+UBSan, clang-16 TSan: build + ctest
#   make test-fast  install deps; g++ Release only
#   make bench      install deps, build, run bench/run.sh
#   make clean

SHELL := /bin/bash
.DEFAULT_GOAL := build
.NOTPARALLEL:

JOBS ?= 2
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

APT_PACKAGES := build-essential cmake ninja-build g++ clang-16 libclang-rt-16-dev \
                libgtest-dev libgmock-dev libbenchmark-dev pkg-config python3 \
                netcat-openbsd liburing-dev locales

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
TSAN_ENV := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

CTEST := ctest --output-on-failure -j$(JOBS)

.PHONY: all deps build demo test test-fast test-release test-asan test-tsan test-matrix bench clean

all: build

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "corio: installing missing packages:$$missing"; \
	  $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

# Configure a build dir only when it has no build.ninja yet; afterwards ninja re-runs
# CMake by itself when a CMakeLists.txt or a globbed directory changes.
build/release/build.ninja:
	CC=gcc CXX=g++ cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release

build/asan/build.ninja:
	CC=clang-16 CXX=clang++-16 cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DCORIO_SANITIZE=address -DCORIO_BUILD_BENCH=OFF

build/tsan/build.ninja:
	CC=clang-16 CXX=clang++-16 cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCORIO_SANITIZE=thread -DCORIO_BUILD_EXAMPLES=OFF -DCORIO_BUILD_BENCH=OFF

build: build/release/build.ninja
	ninja -C build/release -j$(JOBS)

demo: deps build
	./build/release/example_demo

# The whole suite runs twice: on the default (epoll) backend and, where the kernel and the
# sandbox allow it, on io_uring (same tests, same pass count).
# A failing run's test names go to build/<dir>/failed-tests.txt, which `make test` prints in its
# closing summary, so that the last lines of a CI log say which test failed.
FAILED_LOG = Testing/Temporary/LastTestsFailed.log
define run_ctest
rm -f $(1)/$(FAILED_LOG); \
if $(2) $(CTEST) --test-dir $(1); then :; else \
  rc=1; { cat $(1)/$(FAILED_LOG) 2>/dev/null || echo "(no list)"; } | sed 's/^/$(3): /' >> $(1)/failed-tests.txt; fi
endef

test-release: build/release/build.ninja
	@rm -f build/release/failed-tests.txt
	ninja -C build/release -j$(JOBS)
	@rc=0; \
	$(call run_ctest,build/release,,epoll); \
	if CORIO_BACKEND=io_uring ./build/release/example_hello >/dev/null 2>&1; then \
	  echo "corio: the whole suite again, on the io_uring backend"; \
	  $(call run_ctest,build/release,CORIO_BACKEND=io_uring,io_uring); \
	else echo "corio: io_uring is not available here: epoll only"; fi; \
	exit $$rc

test-asan: build/asan/build.ninja
	@rm -f build/asan/failed-tests.txt
	ninja -C build/asan -j$(JOBS)
	@rc=0; \
	$(call run_ctest,build/asan,$(ASAN_ENV),asan); exit $$rc

test-tsan: build/tsan/build.ninja
	@rm -f build/tsan/failed-tests.txt
	ninja -C build/tsan -j$(JOBS)
	@rc=0; \
	$(call run_ctest,build/tsan,$(TSAN_ENV),tsan); exit $$rc

# The rest of the compilers × (Release, ASan+UBSan, TSan) matrix (make test covers g++ Release,
# clang ASan+UBSan and clang TSan): g++ ASan+UBSan, g++ TSan and clang Release.
build/gcc-asan/build.ninja:
	CC=gcc CXX=g++ cmake -S . -B build/gcc-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DCORIO_SANITIZE=address -DCORIO_BUILD_BENCH=OFF

build/gcc-tsan/build.ninja:
	CC=gcc CXX=g++ cmake -S . -B build/gcc-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCORIO_SANITIZE=thread -DCORIO_BUILD_EXAMPLES=OFF -DCORIO_BUILD_BENCH=OFF

build/clang-release/build.ninja:
	CC=clang-16 CXX=clang++-16 cmake -S . -B build/clang-release -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DCORIO_BUILD_BENCH=OFF

test-matrix: deps build/gcc-asan/build.ninja build/gcc-tsan/build.ninja build/clang-release/build.ninja
	ninja -C build/gcc-asan -j$(JOBS)
	$(ASAN_ENV) $(CTEST) --test-dir build/gcc-asan
	ninja -C build/gcc-tsan -j$(JOBS)
	$(TSAN_ENV) $(CTEST) --test-dir build/gcc-tsan
	ninja -C build/clang-release -j$(JOBS)
	$(CTEST) --test-dir build/clang-release

# All three builds run even when one fails, then a summary line each; fails if any failed.
test: deps
	@rc=0; summary=""; \
	for b in release asan tsan; do \
	  case $$b in \
	    release) what="g++ Release";; \
	    asan)    what="clang-16 Debug ASan+UBSan";; \
	    tsan)    what="clang-16 RelWithDebInfo TSan";; \
	  esac; \
	  start=$$(date +%s); \
	  echo "=== corio test: $$b ($$what) ==="; \
	  rm -f build/$$b/failed-tests.txt; \
	  if $(MAKE) --no-print-directory test-$$b; then res=PASS; else res=FAIL; rc=1; \
	    [ -s build/$$b/failed-tests.txt ] || { mkdir -p build/$$b; echo "$$b: the build failed (no test ran)" > build/$$b/failed-tests.txt; }; fi; \
	  summary="$$summary"$$'\n'"  $$res  $$b ($$what), $$(( $$(date +%s) - start ))s"; \
	done; \
	echo; echo "corio test summary:$$summary"; \
	if [ $$rc -eq 0 ]; then echo "ALL PASSED"; else \
	  echo "SOME FAILED:"; cat build/{release,asan,tsan}/failed-tests.txt 2>/dev/null | sed 's/^/  /'; fi; \
	exit $$rc

test-fast: deps test-release

bench: deps build
	@if [ -f bench/run.sh ]; then bash bench/run.sh; else echo "corio: no bench/run.sh"; fi

clean:
	rm -rf build
