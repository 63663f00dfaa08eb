#!/usr/bin/env python3
"""The showcase's command line and its Ctrl-C path, which example.demo (a clean run) cannot see.

usage: test_demo_showcase.py PATH/TO/example_demo

1. --help lists every knob and exits 0.
2. A bad flag value or an unknown flag exits 2 with a message on stderr.
3. A long run, interrupted with SIGINT once its progress shows, exits 130 within 10 s,
   says it cancelled its in-flight requests cleanly, and reports no sanitizer error.
"""
import os
import re
import select
import signal
import subprocess
import sys
import time

KNOBS = ["--clients", "--concurrency", "--timeout", "--size"]


def fail(what, output=""):
    print(f"FAIL: {what}")
    if output:
        print("---- output ----")
        print(output)
    sys.exit(1)


def check_help(demo):
    r = subprocess.run([demo, "--help"], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        fail(f"--help exited {r.returncode}", r.stdout + r.stderr)
    missing = [k for k in KNOBS if k not in r.stdout]
    if missing:
        fail(f"--help does not list {missing}", r.stdout)
    print("ok: --help lists", ", ".join(KNOBS))


def check_bad_flags(demo):
    for args, expect in [
        (["--clients", "lots"], "--clients"),
        (["--concurrency=0"], "--concurrency"),
        (["--timeout"], "--timeout"),
        (["--frobnicate", "1"], "--frobnicate"),
    ]:
        r = subprocess.run([demo, *args], capture_output=True, text=True, timeout=10)
        if r.returncode != 2:
            fail(f"{args} exited {r.returncode}, not 2", r.stdout + r.stderr)
        if expect not in r.stderr:
            fail(f"{args}: stderr does not name {expect}", r.stderr)
        if "corio demo:" in r.stdout:
            fail(f"{args} started a run anyway", r.stdout)
        print(f"ok: {' '.join(args)} -> exit 2: {r.stderr.strip()}")


def check_ctrl_c(demo):
    # Far more clients than fit in the test's time: only Ctrl-C can end it in time.
    p = subprocess.Popen([demo, "--clients", "2000000", "--concurrency", "100"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = b""
    deadline = time.monotonic() + 30
    try:
        # Wait for a progress line (stdout is a pipe, so one a second): requests are in flight.
        while b"in flight" not in output:
            if time.monotonic() > deadline:
                fail("no progress line within 30 s", output.decode(errors="replace"))
            ready, _, _ = select.select([p.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    fail(f"exited early with {p.wait()}", output.decode(errors="replace"))
                output += chunk
        p.send_signal(signal.SIGINT)
        sent = time.monotonic()
        rest, _ = p.communicate(timeout=10)
        took = time.monotonic() - sent
    except subprocess.TimeoutExpired:
        p.kill()
        rest, _ = p.communicate()
        fail("did not exit within 10 s of SIGINT", (output + rest).decode(errors="replace"))
    text = (output + rest).decode(errors="replace")
    if p.returncode != 130:
        fail(f"exit code {p.returncode} after SIGINT, not 130", text)
    m = re.search(r"interrupted: cancelled (\d+) in-flight requests cleanly", text)
    if not m:
        fail("no 'cancelled ... cleanly' message", text)
    for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "Unhandled exception",
                "never retrieved", "Task was destroyed"):
        if bad in text:
            fail(f"'{bad}' in the output", text)
    print(f"ok: SIGINT -> exit 130 in {took:.2f} s: {m.group(0)}")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    demo = sys.argv[1]
    check_help(demo)
    check_bad_flags(demo)
    check_ctrl_c(demo)
    print("PASS")


if __name__ == "__main__":
    main()
