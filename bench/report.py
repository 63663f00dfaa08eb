#!/usr/bin/env python3
"""Turns the raw results of bench/run.sh into docs/BENCHMARKS.md and docs/benchmarks.svg.

usage: report.py [RESULTS.txt] [--docs DIR] [--stdout]
  RESULTS.txt  a file written by bench/run.sh (default: the newest build/bench-results/*.txt)
  --docs DIR   where BENCHMARKS.md and benchmarks.svg go (default: docs/ of the repository)
  --stdout     print the generated Markdown section instead of writing files

Only the part of BENCHMARKS.md between `<!-- bench:begin -->` and `<!-- bench:end -->` is
rewritten; the file is created with an introduction when it does not exist.

Every comparison is a ratio taken within one repetition (corio and the peer measured minutes
apart, on the same machine state), then the median of those ratios over the repetitions.
Standard library only.
"""

from __future__ import annotations

import html
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

CORIO = "corio"
CORIO_URING = "corio-io_uring"
CORIOS = (CORIO, CORIO_URING)
# corio's echo server on two loops (run_loops, reuse_port): not a peer, the scaling figure.
CORIO_2LOOPS = "corio-2loops"

# Display names, in table order.
SYSTEMS = {
    "corio": "corio (epoll)",
    "corio-io_uring": "corio (io_uring)",
    "corio-2loops": "corio, 2 loops",
    "asio": "Asio 1.22",
    "tokio": "Tokio",
    "go": "Go",
    "uvloop": "uvloop",
    "asyncio": "asyncio",
    "uvloop-proto": "uvloop protocols",
    "uvloop-streams": "uvloop streams",
    "asyncio-proto": "asyncio protocols",
    "asyncio-streams": "asyncio streams",
    "epoll": "raw C epoll",
}
COLORS = {
    "corio": "#1f6feb",
    "corio-io_uring": "#6cb6ff",
    "corio-2loops": "#0a3069",
    "asio": "#8250df",
    "tokio": "#d1242f",
    "go": "#1a7f37",
    "uvloop": "#bf8700",
    "asyncio": "#9a6700",
    "uvloop-proto": "#bf8700",
    "uvloop-streams": "#e3b341",
    "asyncio-proto": "#9a6700",
    "asyncio-streams": "#c69026",
    "epoll": "#57606a",
}


def order(systems):
    known = [s for s in SYSTEMS if s in systems]
    return known + sorted(s for s in systems if s not in SYSTEMS)


# ------------------------------------------------------------------------------------ parsing

def parse_kv(tokens):
    out = {}
    for t in tokens:
        if "=" in t:
            k, v = t.split("=", 1)
            out[k] = v
    return out


def num(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def parse(path: Path):
    meta, results, failures = {}, [], []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#"):
            if ":" in line:
                k, v = line[1:].split(":", 1)
                meta[k.strip()] = v.strip()
        elif line.startswith("RESULT "):
            parts = line.split()
            r = parse_kv(parts[2:])
            r["workload"] = parts[1]
            results.append(r)
        elif line.startswith("FAIL "):
            failures.append(line[5:])
    return meta, results, failures


class Metric:
    def __init__(self, key, workload, title, unit, better, fmt, size=None):
        self.key, self.workload, self.title, self.unit = key, workload, title, unit
        self.better, self.fmt, self.size = better, fmt, size
        self.values = {}  # system -> rep -> value

    def add(self, system, rep, value):
        if value is not None:
            self.values.setdefault(system, {})[rep] = value

    def label(self):
        return f"{self.title} ({self.unit}, {self.better} is better)"


def fmt_ns(x):
    return f"{x:,.1f}" if abs(x) < 100 else f"{x:,.0f}"


def fmt_ms(x):
    return f"{x:,.1f}"


def fmt_bytes(x):
    return f"{x:,.0f}"


def fmt_rps(x):
    return f"{x / 1000:,.1f}k" if abs(x) >= 1000 else f"{x:,.0f}"


def size_label(size):
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


def build_metrics(results):
    """Metrics in report order; bytes per task from max RSS at N minus max RSS at N=0."""
    m_w1 = Metric("w1_ns", "W1", "W1 create + await a task", "ns/task", "lower", fmt_ns)
    m_w1b = Metric("w1_bytes", "W1", "W1 memory per task", "bytes/task", "lower", fmt_bytes)
    m_w2 = Metric("w2_ns", "W2", "W2 queue hand-off", "ns/hand-off", "lower", fmt_ns)
    m_w3 = Metric("w3_ms", "W3", "W3 lateness of 1 s sleepers", "ms over 1 s", "lower", fmt_ms)
    m_w3b = Metric("w3_bytes", "W3", "W3 memory per sleeping task", "bytes/task", "lower", fmt_bytes)
    w4 = {}
    baseline = {}  # (workload, system, rep) -> max RSS KiB at N=0
    for r in results:
        if r.get("arg_n") == "0" and "maxrss_kb" in r:
            baseline[(r["workload"], r["system"], r["rep"])] = num(r["maxrss_kb"])
    for r in results:
        wl, sys_, rep = r["workload"], r.get("system"), r.get("rep")
        if sys_ is None or rep is None:
            continue
        n = num(r.get("arg_n"))
        if wl in ("w1", "w3") and n == 0:
            continue
        if wl in ("w1", "w3"):
            base = baseline.get((wl, sys_, rep))
            rss = num(r.get("maxrss_kb"))
            if base is not None and rss is not None and n:
                (m_w1b if wl == "w1" else m_w3b).add(sys_, rep, (rss - base) * 1024.0 / n)
        if wl == "w1":
            m_w1.add(sys_, rep, num(r.get("ns_per_task")))
        elif wl == "w2":
            m_w2.add(sys_, rep, num(r.get("ns_per_handoff")))
        elif wl == "w3":
            m_w3.add(sys_, rep, num(r.get("overhead_ms")))
        elif wl == "w4":
            size = int(num(r.get("size")) or 0)
            if size not in w4:
                w4[size] = (
                    Metric(f"w4_rps_{size}", "W4", f"W4 echo {size_label(size)}", "req/s", "higher", fmt_rps, size),
                    Metric(f"w4_mbps_{size}", "W4", f"W4 echo {size_label(size)}", "MB/s", "higher", fmt_ms, size),
                )
            w4[size][0].add(sys_, rep, num(r.get("rps")))
            w4[size][1].add(sys_, rep, num(r.get("MBps")))
    metrics = [m for m in (m_w1, m_w1b, m_w2, m_w3, m_w3b) if m.values]
    for size in sorted(w4):
        metrics.append(w4[size][0])
    mbps = {size: w4[size][1] for size in w4}
    return metrics, mbps


# ------------------------------------------------------------------------------------ statistics

def median(xs):
    return statistics.median(xs) if xs else None


def summary(values: dict):
    xs = list(values.values())
    if not xs:
        return None
    return median(xs), min(xs), max(xs), len(xs)


def ratios(metric: Metric, a: str, b: str):
    """a/b per repetition, for repetitions where both ran (and b is not zero)."""
    va, vb = metric.values.get(a, {}), metric.values.get(b, {})
    return [va[r] / vb[r] for r in va if r in vb and vb[r] != 0]


def relative_performance(metric: Metric, s: str, ref: str = CORIO):
    """s's performance relative to ref per repetition, > 1 when s does better than ref.
    Only positive figures make sense here (a negative lateness or RSS delta is noise)."""
    va, vb = metric.values.get(s, {}), metric.values.get(ref, {})
    out = []
    for r in va:
        if r in vb and va[r] > 0 and vb[r] > 0:
            out.append(vb[r] / va[r] if metric.better == "lower" else va[r] / vb[r])
    return out


def fr(r):
    """A ratio with two significant decimals where it matters: 0.004, 0.52, 1.47, 12."""
    if r == 0 or abs(r) >= 10:
        return f"{r:.0f}"
    if abs(r) >= 0.1:
        return f"{r:.2f}"
    return f"{r:.{1 - math.floor(math.log10(abs(r)))}f}"


def fmt_ratio(xs, spread=True):
    if not xs:
        return "–"
    s = fr(median(xs))
    if spread and len(xs) > 1:
        s += f" ({fr(min(xs))}–{fr(max(xs))})"
    return s


def fmt_summary(metric, values):
    s = summary(values)
    if s is None:
        return "–", "–"
    m, lo, hi, n = s
    return metric.fmt(m), (f"{metric.fmt(lo)} – {metric.fmt(hi)}" if n > 1 else "(1 run)")


def corio_ahead(metric, r):
    """Judged on the ratio as printed, so that a 1.00 is never called a win."""
    r = float(fr(r))
    return r < 1 if metric.better == "lower" else r > 1


# ------------------------------------------------------------------------------------ micro

MICRO = [
    # (run_name prefix, label, how to get the figure)
    ("BM_CreateTaskAndAwait", "create_task + await of a trivial task", "ns"),
    ("BM_SyncAwaitInLoop", "await of a synchronously completing coroutine", "ns"),
    ("BM_AwaitChainPerLevel", "one level of a 1000-deep await chain", "ns_item"),
    ("BM_QueuePingPongHandoff", "one hand-off through a Queue(1)", "ns_item"),
    ("BM_YieldOneTick", "sleep(0): one trip through the ready queue", "ns"),
]
STD_KEYS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
    "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
    "items_per_second", "bytes_per_second", "aggregate_name", "aggregate_unit", "label",
    "error_occurred", "error_message",
}
UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def micro_rows(path: Path):
    data = json.loads(path.read_text())
    runs = {}
    for b in data.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
            continue
        runs.setdefault(b.get("run_name", b["name"]), []).append(b)
    rows = []
    for name, bs in runs.items():
        label, kind = name, "ns"
        for prefix, lab, k in MICRO:
            if name.startswith(prefix):
                label, kind = lab, k
        if not name.startswith("BM_AllocsPerSleepingTask"):
            if kind == "ns_item" and all(b.get("items_per_second") for b in bs):
                xs = [1e9 / b["items_per_second"] for b in bs]
            else:
                xs = [b["real_time"] * UNIT_NS.get(b.get("time_unit", "ns"), 1.0) for b in bs]
            rows.append((f"`{name}`", label, "ns", xs))
        for key in sorted(set().union(*(b.keys() for b in bs)) - STD_KEYS):
            xs = [float(b[key]) for b in bs if isinstance(b.get(key), (int, float))]
            if xs:
                unit = key.replace("_per_", " per ").replace("_", " ")
                lab = "a task sleeping on its timer" if name.startswith("BM_AllocsPerSleepingTask") else label
                rows.append((f"`{name}`", lab, unit, xs))
    return data.get("context", {}), rows


def fmt_micro(x):
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.1f}"
    return f"{x:.3f}"


# ------------------------------------------------------------------------------------ Markdown

INTRO = """# corio benchmarks

corio measured side by side with the systems it is meant to beat, on the same machine, in the
same run: Python asyncio and uvloop, Asio 1.22 (C++20 coroutines), Go, Tokio (current-thread
runtime) and, for the echo test, a plain C epoll server. The peers' programs and the rules of the
comparison live in `../shared/peers/` (its README); corio's own programs are `bench/corio_w1.cpp`,
`corio_w2.cpp`, `corio_w3.cpp` and `corio_echo_server.cpp` (streams API), and the core's
micro-benchmarks are `bench/bm_core.cpp` (Google Benchmark).

What is measured (every program is single-threaded and times itself):

- **W1**: create 1,000,000 trivial tasks, then await them all: ns per task; bytes per task =
  (peak RSS at N − peak RSS at N = 0) / N, from `/usr/bin/time -v`.
- **W2**: 1,000,000 hand-offs of a token between two tasks through two bounded queues of size 1:
  ns per hand-off.
- **W3**: 100,000 tasks each sleeping 1 s: the time above 1 s from before the first spawn to the
  last wake-up (ms), and bytes per sleeping task as for W1.
- **W4**: TCP echo on 127.0.0.1, 50 connections, each sending 1, 10 or 100 KiB and waiting for
  the whole echo before the next: requests per second over 10 s, one common C client.

How (`bench/run.sh`, also `make bench`): the program under test is pinned to core 0 and the echo
client to core 1 (`taskset`), Go runs with `GOMAXPROCS=1`, Python echo servers are warmed for
2 s at 100 KiB first, each server gets a fresh port and is stopped with SIGTERM. The systems are
interleaved within each repetition (the order rotates from one repetition to the next), and
everything is repeated 3 times. Each figure below is the median over the repetitions with its
spread (min – max).

**Only ratios taken within one run mean anything.** The machine is a shared 2-core VM: absolute
figures move by 10–20 % from one hour to the next, so corio is compared with a peer repetition by
repetition (corio ÷ peer, both measured minutes apart) and the median of those ratios is
reported. Figures from different runs, or from the peers' README, are not comparable with these.

To regenerate: `make bench` (about half an hour), or `bash bench/run.sh` with `REPS=`,
`SECONDS=` (W4 duration), `ONLY="w1 w4"` or `QUICK=1` (a smoke run whose figures mean nothing).
`bench/report.py` rewrites the section between the markers below from the raw results kept in
`build/bench-results/`.

"""


def md_table(header, rows, align=None):
    align = align or ["---"] * len(header)
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def targets(metrics_by_key, w4_sizes):
    """The issue's targets, per corio backend: (target text, {corio system: (measured, met)})."""
    out = []

    def ratio_target(key, peer, limit, text, direction):
        m = metrics_by_key.get(key)
        if not m:
            return
        cells = {}
        for c in CORIOS:
            rs = ratios(m, c, peer)
            if rs:
                r = median(rs)
                cells[c] = (f"{fr(r)}×", r <= limit if direction == "le" else r >= limit)
        out.append((text, cells))

    def abs_target(key, limit, text):
        m = metrics_by_key.get(key)
        if not m:
            return
        cells = {}
        for c in CORIOS:
            s = summary(m.values.get(c, {}))
            if s:
                cells[c] = (f"{m.fmt(s[0])} B", s[0] <= limit)
        out.append((text, cells))

    ratio_target("w1_ns", "tokio", 0.5, "W1 ns/task ≤ 0.5× Tokio", "le")
    abs_target("w1_bytes", 150, "W1 ≤ 150 bytes per task")
    ratio_target("w2_ns", "go", 0.6, "W2 ns/hand-off ≤ 0.6× Go", "le")
    ratio_target("w3_ms", "asio", 0.5, "W3 lateness ≤ 0.5× Asio", "le")
    abs_target("w3_bytes", 300, "W3 ≤ 300 bytes per sleeping task")
    ratio_target("w4_rps_1024", "epoll", 1.0, "W4 1 KiB req/s ≥ 1.0× raw epoll (the rig's ceiling)", "ge")
    for size in w4_sizes:
        if size == 1024:
            continue
        m = metrics_by_key.get(f"w4_rps_{size}")
        cells = {}
        for c in CORIOS:
            # best peer per repetition
            rs = []
            for rep, v in m.values.get(c, {}).items():
                peers = [m.values[s][rep] for s in m.values
                         if s not in CORIOS and s != CORIO_2LOOPS and rep in m.values[s]]
                if peers and max(peers) > 0:
                    rs.append(v / max(peers))
            if rs:
                r = median(rs)
                cells[c] = (f"{fr(r)}×", r >= 1.0)
        out.append((f"W4 {size_label(size)} req/s ≥ 1.0× the best peer", cells))
    m = metrics_by_key.get("w4_rps_1024")
    if m and CORIO_2LOOPS in m.values:
        rs = ratios(m, CORIO_2LOOPS, CORIO)
        if rs:
            r = median(rs)
            out.append(("two loops on two cores ≥ 1.8× one loop (W4 1 KiB; the client shares the cores)",
                        {CORIO: (f"{fr(r)}×", r >= 1.8)}))
    return out


def markdown(meta, metrics, mbps, failures, micro, results_path):
    corios = [c for c in CORIOS if any(c in m.values for m in metrics)]
    peers = order({s for m in metrics for s in m.values if s not in CORIOS})
    L = []
    if meta.get("quick") == "1":
        L += ["> **Smoke run (QUICK=1): tiny N and short echo runs. These figures say nothing about",
              "> performance; they only show that the scripts work. Run `make bench` for real figures.**", ""]
    L += ["## Results", ""]
    L += [f"- Date: {meta.get('date', '?')}; corio commit `{meta.get('commit', '?')}`.",
          f"- Command: `{meta.get('command', 'bash bench/run.sh')}` "
          f"({meta.get('reps', '?')} repetition{'' if meta.get('reps') == '1' else 's'}; W1 N = {meta.get('w1_n', '?')}, "
          f"W2 N = {meta.get('w2_n', '?')}, W3 N = {meta.get('w3_n', '?')}; W4 {meta.get('w4', '?')}).",
          f"- Machine: {meta.get('nproc', '?')} cores, {meta.get('cpu', '?')}, {meta.get('kernel', '?')}; "
          f"io_uring {meta.get('io_uring', '?')}; load average {meta.get('loadavg', '?')}.",
          f"- Toolchains: {meta.get('compilers', '?')}.",
          f"- Raw results: `{results_path}`.", ""]
    if failures:
        L += ["Runs that failed (left out of the figures):", ""]
        L += [f"- `{f}`" for f in failures] + [""]

    L += ["![corio against each peer, normalised to corio = 1](benchmarks.svg)", ""]

    # Summary: corio ÷ peer.
    for c in corios:
        L += [f"### {SYSTEMS[c]} ÷ peer (median of the per-repetition ratios)", "",
              "Below 1 is better for corio on time and memory, above 1 on req/s; **bold** where "
              "corio is ahead.", ""]
        others = [c2 for c2 in corios if c2 != c] + peers
        rows = []
        for m in metrics:
            row = [f"{m.title} ({m.unit})", m.better]
            for p in others:
                rs = ratios(m, c, p)
                if not rs:
                    row.append("–")
                    continue
                r = median(rs)
                cell = fr(r)
                row.append(f"**{cell}**" if corio_ahead(m, r) else cell)
            rows.append(row)
        L += [md_table(["", "better"] + [SYSTEMS.get(p, p) for p in others], rows,
                       ["---", "---"] + ["---:"] * len(others)), ""]

    # Targets.
    metrics_by_key = {m.key: m for m in metrics}
    w4_sizes = sorted(m.size for m in metrics if m.size)
    tg = targets(metrics_by_key, w4_sizes)
    if tg:
        L += ["### The targets of issue 5", ""]
        rows = []
        for text, cells in tg:
            row = [text]
            for c in corios:
                if c in cells:
                    v, ok = cells[c]
                    row.append(f"{v} {'met' if ok else '**not met**'}")
                else:
                    row.append("–")
            rows.append(row)
        L += [md_table(["target"] + [SYSTEMS[c] for c in corios], rows), ""]

    # Details per metric.
    L += ["### Every system, median and spread over the repetitions", ""]
    for m in metrics:
        title = f"{m.title}: {m.unit}, {m.better} is better"
        L += [f"#### {title}", ""]
        header = ["system", f"median {m.unit}", "min – max"]
        if m.size in mbps:
            header += ["median MB/s"]
        header += [f"{SYSTEMS[c]} ÷ system" for c in corios]
        rows = []
        for s in order(m.values):
            med, spread = fmt_summary(m, m.values[s])
            row = [SYSTEMS.get(s, s), med, spread]
            if m.size in mbps:
                sm = summary(mbps[m.size].values.get(s, {}))
                row.append(f"{sm[0]:,.1f}" if sm else "–")
            for c in corios:
                row.append("1" if c == s else fmt_ratio(ratios(m, c, s)))
            rows.append(row)
        L += [md_table(header, rows, ["---"] + ["---:"] * (len(header) - 1)), ""]
        if m.key.endswith("bytes"):
            L += ["(Peak RSS difference: includes allocator slack and whatever the runtime reserves in "
                  "bulk, so small N gives noisy or even negative figures.)", ""]

    # Micro-benchmarks.
    if micro:
        ctx, rows = micro
        L += ["### corio's core, micro-benchmarks (bench/bm_core, Google Benchmark)", "",
              f"`build/release/bench/bm_core --benchmark_format=json --benchmark_repetitions={meta.get('reps', '?')}`"
              f", pinned to core 0 (corio: {meta.get('corio_build', '?')} build); median and spread over the "
              f"repetitions.", ""]
        trows = []
        for name, label, unit, xs in rows:
            spread = f"{fmt_micro(min(xs))} – {fmt_micro(max(xs))}" if len(xs) > 1 else "(1 run)"
            trows.append([name, label, unit, fmt_micro(median(xs)), spread])
        L += [md_table(["benchmark", "what", "unit", "median", "min – max"], trows,
                       ["---", "---", "---", "---:", "---:"]), ""]
    return "\n".join(L).rstrip() + "\n"


def write_markdown(path: Path, section: str):
    block = f"{BEGIN}\n{section}{END}\n"
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            text = head + block + tail.lstrip("\n")
        else:
            text = text.rstrip("\n") + "\n\n" + block
    else:
        text = INTRO + block
    path.write_text(text)


# ------------------------------------------------------------------------------------ SVG

def svg_chart(meta, metrics):
    """Horizontal grouped bars: one group per workload (and size), one bar per system, each the
    median of the per-repetition figures relative to corio (epoll) = 1, oriented so that a longer
    bar is always better (faster, more req/s, fewer bytes); log scale; whiskers = min – max."""
    groups = []
    for m in metrics:
        if CORIO not in m.values:
            continue
        rows = []
        for s in order(m.values):
            if s == CORIO:
                rows.append((s, 1.0, 1.0, 1.0))
                continue
            rs = relative_performance(m, s)
            if rs:
                rows.append((s, median(rs), min(rs), max(rs)))
        if len(rows) > 1:
            groups.append((m, rows))
    vals = [v for _, rows in groups for _, med, lo, hi in rows for v in (lo, hi)] or [1.0]
    lo_dec = max(-4, min(-1, math.floor(math.log10(min(vals)))))
    hi_dec = min(4, max(1, math.ceil(math.log10(max(vals)))))

    W, label_w, value_w = 980, 150, 160
    x0, x1 = label_w, W - value_w
    row_h, bar_h, group_gap, head_h = 17, 11, 14, 20
    top = 92

    def X(v):
        v = min(max(v, 10.0 ** lo_dec), 10.0 ** hi_dec)
        return x0 + (math.log10(v) - lo_dec) / (hi_dec - lo_dec) * (x1 - x0)

    height = top + sum(head_h + row_h * len(rows) + group_gap for _, rows in groups) + 40
    esc = html.escape
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" '
         f'font-family="Helvetica, Arial, sans-serif" font-size="11">',
         f'<rect width="{W}" height="{height}" fill="#ffffff"/>',
         f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">'
         f'corio against each peer, relative to corio (epoll) = 1</text>',
         f'<text x="{W / 2}" y="40" text-anchor="middle" fill="#444">longer bar = better (faster, more req/s, '
         f'fewer bytes): bars short of the corio line lose to corio · log scale · median of per-repetition '
         f'ratios, whiskers min – max</text>']
    sub = (f"{meta.get('date', '')} · {meta.get('nproc', '?')} cores, {meta.get('cpu', '?')} · "
           f"{meta.get('reps', '?')} repetition{'' if meta.get('reps') == '1' else 's'} · commit {meta.get('commit', '?')}")
    if meta.get("quick") == "1":
        sub = "SMOKE RUN (QUICK=1): figures mean nothing · " + sub
    o.append(f'<text x="{W / 2}" y="56" text-anchor="middle" fill="{"#d1242f" if meta.get("quick") == "1" else "#666"}">'
             f'{esc(sub)}</text>')

    # Axis: decades (and 2×, 5× minor lines), and the corio = 1 line on top of the bars.
    y_axis_top, y_axis_bot = top - 8, height - 34
    for d in range(lo_dec, hi_dec + 1):
        for k in (1, 2, 5):
            v = k * 10.0 ** d
            if v > 10.0 ** hi_dec:
                continue
            x = X(v)
            major = k == 1
            o.append(f'<line x1="{x:.1f}" y1="{y_axis_top}" x2="{x:.1f}" y2="{y_axis_bot}" '
                     f'stroke="{"#d0d7de" if major else "#eef1f4"}" stroke-width="1"/>')
            if major or (hi_dec - lo_dec) <= 3:
                lab = f"{v:g}×"
                for y in (y_axis_top - 4, y_axis_bot + 14):
                    o.append(f'<text x="{x:.1f}" y="{y}" text-anchor="middle" fill="#57606a" '
                             f'font-size="{10 if major else 9}">{lab}</text>')

    y = top
    for m, rows in groups:
        head = f"{m.title} — {m.unit}, {m.better} is better"
        o.append(f'<text x="8" y="{y + 13}" font-weight="bold" font-size="12">{esc(head)}</text>')
        y += head_h
        for s, med, lo, hi in rows:
            cy = y + row_h / 2
            color = COLORS.get(s, "#888888")
            weight = ' font-weight="bold"' if s in CORIOS else ""
            o.append(f'<text x="{x0 - 8}" y="{cy + 4:.1f}" text-anchor="end"{weight}>'
                     f'{esc(SYSTEMS.get(s, s))}</text>')
            xb = X(10.0 ** lo_dec)
            o.append(f'<rect x="{xb:.1f}" y="{cy - bar_h / 2:.1f}" width="{max(1.0, X(med) - xb):.1f}" '
                     f'height="{bar_h}" fill="{color}" rx="1.5"/>')
            if hi > lo:
                o.append(f'<line x1="{X(lo):.1f}" y1="{cy:.1f}" x2="{X(hi):.1f}" y2="{cy:.1f}" '
                         f'stroke="#24292f" stroke-width="1"/>')
                for v in (lo, hi):
                    o.append(f'<line x1="{X(v):.1f}" y1="{cy - 3:.1f}" x2="{X(v):.1f}" y2="{cy + 3:.1f}" '
                             f'stroke="#24292f" stroke-width="1"/>')
            shown = float(fr(med))
            if s == CORIO:
                txt, who = "1", "reference"
            elif s == CORIO_URING:
                txt, who = f"{fr(med)}×", ("epoll ahead" if shown < 1 else "io_uring ahead" if shown > 1 else "tie")
            else:
                txt, who = f"{fr(med)}×", ("corio ahead" if shown < 1 else "peer ahead" if shown > 1 else "tie")
            tone = {"corio ahead": "#1a7f37", "peer ahead": "#d1242f"}.get(who, "#57606a")
            o.append(f'<text x="{x1 + 50:.1f}" y="{cy + 4:.1f}" text-anchor="end" fill="#24292f" '
                     f'font-weight="bold">{esc(txt)}</text>')
            o.append(f'<text x="{x1 + 56:.1f}" y="{cy + 4:.1f}" fill="{tone}">{esc(who)}</text>')
            y += row_h
        y += group_gap
    x = X(1.0)
    o.append(f'<line x1="{x:.1f}" y1="{y_axis_top}" x2="{x:.1f}" y2="{y_axis_bot}" stroke="{COLORS[CORIO]}" '
             f'stroke-width="1.5" stroke-dasharray="5,3"/>')
    o.append(f'<text x="{x + 4:.1f}" y="{y_axis_top + 10}" fill="{COLORS[CORIO]}" font-weight="bold">corio = 1</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


# ------------------------------------------------------------------------------------ main

def main(argv):
    args = list(argv[1:])
    docs = ROOT / "docs"
    to_stdout = False
    if "--stdout" in args:
        args.remove("--stdout")
        to_stdout = True
    if "--docs" in args:
        i = args.index("--docs")
        docs = Path(args[i + 1])
        del args[i:i + 2]
    if args:
        results_path = Path(args[0])
    else:
        found = sorted((ROOT / "build" / "bench-results").glob("*.txt"))
        if not found:
            print("report.py: no results in build/bench-results/; run bench/run.sh", file=sys.stderr)
            return 1
        results_path = found[-1]
    meta, results, failures = parse(results_path)
    metrics, mbps = build_metrics(results)
    micro = None
    if meta.get("bm_core_json"):
        p = Path(meta["bm_core_json"])
        p = p if p.is_absolute() else ROOT / p
        if p.exists():
            micro = micro_rows(p)
    try:
        shown = results_path.resolve().relative_to(ROOT)
    except ValueError:
        shown = results_path
    section = markdown(meta, metrics, mbps, failures, micro, shown)
    if to_stdout:
        sys.stdout.write(section)
        return 0
    docs.mkdir(parents=True, exist_ok=True)
    write_markdown(docs / "BENCHMARKS.md", section)
    (docs / "benchmarks.svg").write_text(svg_chart(meta, metrics))
    print(f"report.py: wrote {docs / 'BENCHMARKS.md'} and {docs / 'benchmarks.svg'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
