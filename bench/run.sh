#!/usr/bin/env bash
# corio's side-by-side benchmark: corio and every peer of ../shared/peers on W1-W4, interleaved
# within each repetition, the program under test pinned to core 0 and the echo client to core 1
# (the convention and the fairness rules are in ../shared/peers/README.md). Then the Google
# Benchmark micro figures of bench/bm_core, and bench/report.py writes docs/BENCHMARKS.md and
# docs/benchmarks.svg from the raw RESULT lines.
#
# usage (from anywhere):  bash bench/run.sh        or  make bench
# knobs (environment):
#   REPS=3          repetitions (each one runs every system once per workload, interleaved)
#   SECONDS=10      W4 measuring time per run (the client adds its own 1 s warm-up)
#   QUICK=1         smoke run: tiny N, 2 s echo runs, short micro-benchmarks
#   ONLY="w1 w4"    workloads to run, among: w1 w2 w3 w4 micro (default: all)
#   PEERS_OUT=dir   where the peers are built (default /tmp/corio-peers)
#   CORIO_BUILD=0   do not build corio, use build/release as it is
#   PEERS_BUILD=0   do not run the peers' build.sh, use PEERS_OUT as it is
#   REPORT=0        do not run bench/report.py at the end
#   W1_N, W2_N, W3_N, CONNS, SIZES="1024 10240 102400"   override the workload sizes
# Raw results: build/bench-results/<UTC timestamp>.txt (+ -bm_core.json, + .log with stderr).
set -euo pipefail

# SECONDS is bash's own clock: read the caller's value from the environment before it ticks.
w4_secs=$(printenv SECONDS || true)
w4_secs=${w4_secs:-10}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
peers_src=$(cd "$root/../shared/peers" && pwd)
peers_out=${PEERS_OUT:-/tmp/corio-peers}
bin=$root/build/release
python=/usr/bin/python3   # Debian's, which has uvloop (peers' README)

REPS=${REPS:-3}
QUICK=${QUICK:-0}
ONLY=${ONLY:-w1 w2 w3 w4 micro}
CONNS=${CONNS:-50}
SIZES=${SIZES:-1024 10240 102400}
if [ "$QUICK" = 1 ]; then
  W1_N=${W1_N:-20000}; W2_N=${W2_N:-20000}; W3_N=${W3_N:-2000}
  w4_secs=$(printenv SECONDS || echo 2); warm_secs=1; bm_min_time=0.01
else
  W1_N=${W1_N:-1000000}; W2_N=${W2_N:-1000000}; W3_N=${W3_N:-100000}
  warm_secs=2; bm_min_time=
fi
RUN_TIMEOUT=${RUN_TIMEOUT:-600}   # seconds, per W1-W3 program run

wants() { [[ " $ONLY " == *" $1 "* ]]; }
say() { echo "corio bench: $*" >&2; }
for w in $ONLY; do
  case $w in w1|w2|w3|w4|micro) ;; *) say "ONLY: unknown workload '$w' (w1 w2 w3 w4 micro)"; exit 2 ;; esac
done

# ---------------------------------------------------------------------------------- builds
if [ "${CORIO_BUILD:-1}" != 0 ]; then
  if [ ! -f "$bin/build.ninja" ]; then
    say "configuring and building corio (make build)"
    make --no-print-directory build
  else
    # Only what the benchmark runs: the rest of the tree (tests) is not its business.
    say "building corio's benchmark programs in build/release"
    ninja -C "$bin" -j"${JOBS:-2}" corio_w1 corio_w2 corio_w3 corio_echo_server bm_core example_hello
  fi
fi
for p in corio_w1 corio_w2 corio_w3 corio_echo_server bm_core; do
  [ -x "$bin/bench/$p" ] || { say "missing $bin/bench/$p (run make build)"; exit 1; }
done
if [ "${PEERS_BUILD:-1}" != 0 ]; then
  say "building the peers into $peers_out"
  OUTDIR=$peers_out bash "$peers_src/build.sh" >&2
fi
for p in asio_w1 tokio_w1 go_w1 epoll_echo_server echo_client; do
  [ -x "$peers_out/$p" ] || { say "missing $peers_out/$p"; exit 1; }
done
for t in taskset timeout; do command -v $t >/dev/null || { say "needs $t"; exit 1; }; done
[ -x /usr/bin/time ] || { say "needs /usr/bin/time (Debian package time)"; exit 1; }

uring=0
if CORIO_BACKEND=io_uring "$bin/example_hello" >/dev/null 2>&1; then uring=1; fi

# ---------------------------------------------------------------------------------- output
outdir=$root/build/bench-results
mkdir -p "$outdir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$outdir/$stamp.txt
log=$outdir/$stamp.log
bm_json=$outdir/$stamp-bm_core.json
: >"$log"

# The command as a reader would retype it, with the knobs that were set.
cmdline=""
for v in REPS SECONDS QUICK ONLY PEERS_OUT W1_N W2_N W3_N CONNS SIZES; do
  val=$(printenv "$v" || true)
  if [[ "$val" =~ ^[A-Za-z0-9_./,:=-]+$ ]]; then cmdline+="$v=$val "; elif [ -n "$val" ]; then cmdline+="$v=\"$val\" "; fi
done
if [ -n "${MAKELEVEL:-}" ]; then cmdline+="make bench"; else cmdline+="bash bench/run.sh"; fi

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit+="+dirty"; fi
{
  echo "# corio side-by-side benchmark, raw results (bench/run.sh; parsed by bench/report.py)"
  echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "# command: $cmdline"
  echo "# commit: $commit"
  echo "# corio_build: $(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$bin/CMakeCache.txt" 2>/dev/null || true)"
  echo "# nproc: $(nproc)"
  echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "# kernel: $(uname -sr)"
  echo "# loadavg: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, at the start)"
  echo "# compilers: $(g++ --version | head -1); $(go version 2>/dev/null | cut -d' ' -f3); $(rustc --version 2>/dev/null | cut -d' ' -f1-2); $($python --version 2>&1)"
  echo "# reps: $REPS"
  echo "# quick: $QUICK"
  echo "# w1_n: $W1_N"
  echo "# w2_n: $W2_N"
  echo "# w3_n: $W3_N"
  echo "# w4: conns=$CONNS sizes=${SIZES// /,} seconds=$w4_secs"
  echo "# io_uring: $([ $uring = 1 ] && echo available || echo unavailable)"
  echo "# only: $ONLY"
  echo "# peers: $peers_out"
} >"$results"
say "results in ${results#$root/}"
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
  say "warning: load average $load on $(nproc) cores: other work will distort the figures"
fi

# ---------------------------------------------------------------------------------- systems
core_systems=(corio)
[ $uring = 1 ] && core_systems+=(corio-io_uring)
core_systems+=(asio tokio go uvloop asyncio)
echo_systems=(corio)
[ $uring = 1 ] && echo_systems+=(corio-io_uring)
echo_systems+=(asio tokio go uvloop-proto uvloop-streams asyncio-proto asyncio-streams epoll)

# prog_cmd SYSTEM WORKLOAD: fills the array `cmd` (environment assignments first, via env).
prog_cmd() {
  local sys=$1 wl=$2
  case $sys in
    corio)           cmd=(env CORIO_BACKEND=epoll "$bin/bench/corio_$wl") ;;
    corio-io_uring)  cmd=(env CORIO_BACKEND=io_uring "$bin/bench/corio_$wl") ;;
    corio-2loops)    cmd=(env CORIO_BACKEND=epoll "$bin/bench/corio_$wl") ;;
    asio|tokio)      cmd=("$peers_out/${sys}_$wl") ;;
    go)              cmd=(env GOMAXPROCS=1 "$peers_out/go_$wl") ;;
    uvloop|asyncio)  cmd=("$python" "$peers_src/asyncio/$wl.py" "$sys") ;;
    uvloop-*|asyncio-*)
                     cmd=("$python" "$peers_src/asyncio/echo_server.py" "${sys%%-*}" "${sys#*-}") ;;
    epoll)           cmd=("$peers_out/epoll_echo_server") ;;
    *) say "unknown system $sys"; exit 1 ;;
  esac
}

# rotate N ARRAY...: the systems in an order that starts one further each repetition, so that
# no system is always the one after the same neighbour.
rotate() {
  local k=$1; shift
  local n=$# i
  local a=("$@")
  for ((i = 0; i < n; i++)); do echo "${a[(i + k) % n]}"; done
}

# run_core REP SYSTEM WORKLOAD N: one W1-W3 program run on core 0 under /usr/bin/time -v.
run_core() {
  local rep=$1 sys=$2 wl=$3 n=$4 tf out rc=0 rss line
  prog_cmd "$sys" "$wl"
  tf=$(mktemp)
  out=$(taskset -c 0 /usr/bin/time -v -o "$tf" timeout --foreground -k 5 "$RUN_TIMEOUT" "${cmd[@]}" "$n" 2>>"$log") || rc=$?
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tf")
  rm -f "$tf"
  line=$(grep -m1 '^RESULT ' <<<"$out" || true)
  if [ $rc -ne 0 ] || [ -z "$line" ]; then
    echo "FAIL $wl system=$sys rep=$rep n=$n rc=$rc" | tee -a "$results" >&2
    return 0
  fi
  echo "$line system=$sys rep=$rep arg_n=$n maxrss_kb=${rss:-0}" >>"$results"
  say "  $line  [$sys, max RSS ${rss:-?} KiB]"
}

# ---------------------------------------------------------------------------------- W4 helpers
srv_pid=
free_port() {
  $python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
stop_server() {
  [ -n "$srv_pid" ] || return 0
  kill -TERM "$srv_pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 50; i++)); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$srv_pid" 2>/dev/null; then
    say "  server $srv_pid ignored SIGTERM for 5 s: SIGKILL"
    kill -KILL "$srv_pid" 2>/dev/null || true
  fi
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

# run_echo REP SYSTEM SIZE: start the server on core 0, wait until it accepts, warm it if it is
# a Python one, run the client on core 1, stop the server.
run_echo() {
  local rep=$1 sys=$2 size=$3 port i out rc=0 line cpus=0 extra=()
  prog_cmd "$sys" echo_server
  # Two loops (run_loops + reuse_port) get both cores; the client still runs on core 1.
  if [ "$sys" = corio-2loops ]; then cpus=0,1; extra=(2); fi
  port=$(free_port)
  taskset -c "$cpus" "${cmd[@]}" "$port" "${extra[@]}" >>"$log" 2>&1 &
  srv_pid=$!
  for ((i = 0; i < 100; i++)); do   # at most 10 s
    port_open "$port" && break
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! port_open "$port"; then
    echo "FAIL w4 system=$sys rep=$rep size=$size reason=not-accepting" | tee -a "$results" >&2
    stop_server; return 0
  fi
  case $sys in
    uvloop-*|asyncio-*)   # glibc's mmap threshold: warm a Python server at 100 KiB first
      taskset -c 1 "$peers_out/echo_client" "$port" "$CONNS" 102400 "$warm_secs" >/dev/null 2>>"$log" || true ;;
  esac
  out=$(taskset -c 1 timeout --foreground -k 5 $((w4_secs + 60)) "$peers_out/echo_client" "$port" "$CONNS" "$size" "$w4_secs" 2>>"$log") || rc=$?
  stop_server
  line=$(grep -m1 '^RESULT ' <<<"$out" || true)
  if [ $rc -ne 0 ] || [ -z "$line" ]; then
    echo "FAIL w4 system=$sys rep=$rep size=$size rc=$rc" | tee -a "$results" >&2
    return 0
  fi
  echo "$line system=$sys rep=$rep" >>"$results"
  say "  $line  [$sys]"
}

# ---------------------------------------------------------------------------------- runs
for ((rep = 1; rep <= REPS; rep++)); do
  say "=== repetition $rep of $REPS ==="
  mapfile -t order < <(rotate $((rep - 1)) "${core_systems[@]}")
  if wants w1; then
    say "W1: create and await $W1_N tasks (and N=0 for the RSS baseline)"
    for s in "${order[@]}"; do run_core "$rep" "$s" w1 0; run_core "$rep" "$s" w1 "$W1_N"; done
  fi
  if wants w2; then
    say "W2: $W2_N queue hand-offs"
    for s in "${order[@]}"; do run_core "$rep" "$s" w2 "$W2_N"; done
  fi
  if wants w3; then
    say "W3: $W3_N tasks sleeping 1 s (and N=0 for the RSS baseline)"
    for s in "${order[@]}"; do run_core "$rep" "$s" w3 0; run_core "$rep" "$s" w3 "$W3_N"; done
  fi
  if wants w4; then
    mapfile -t eorder < <(rotate $((rep - 1)) "${echo_systems[@]}")
    for size in $SIZES; do
      say "W4: echo, $CONNS connections, $size bytes, $w4_secs s"
      for s in "${eorder[@]}"; do run_echo "$rep" "$s" "$size"; done
      if [ "$size" = 1024 ]; then run_echo "$rep" corio-2loops "$size"; fi
    done
  fi
done

if wants micro; then
  say "micro-benchmarks: bench/bm_core ($REPS repetitions)"
  bm_args=(--benchmark_format=json --benchmark_repetitions="$REPS")
  [ -n "$bm_min_time" ] && bm_args+=(--benchmark_min_time="$bm_min_time")
  if taskset -c 0 "$bin/bench/bm_core" "${bm_args[@]}" >"$bm_json" 2>>"$log"; then
    echo "# bm_core_json: ${bm_json#$root/}" >>"$results"
  else
    echo "FAIL micro system=corio rc=$?" | tee -a "$results" >&2
  fi
fi

say "raw results: ${results#$root/}"
if [ "${REPORT:-1}" != 0 ]; then
  $python "$root/bench/report.py" "$results"
fi
