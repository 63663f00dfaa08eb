#!/usr/bin/env python3
"""Checks the include rules of docs/ARCHITECTURE.md ("The layers"): every corio include of every
header and source must point at its own layer or one the table allows. Run as ctest
`docs.layering`; on every run it also checks itself on a scratch copy with an upward include
planted, which it must report.

Usage: check_layering.py SOURCE_DIR
"""
import re
import shutil
import sys
import tempfile
from pathlib import Path

CORE = {"coro", "task", "future", "loop", "runners", "run_loops", "sleep", "executor", "errors", "clock"}
STRUCTURED = {"gather", "taskgroup", "timeouts", "wait", "generator", "contextlib"}
SYNC = {"lock", "event", "condition", "semaphore", "barrier", "queue"}
NET = {"socket", "streams", "server", "datagram"}
# Sources that live in src/core/ but belong to the structured-concurrency layer.
STRUCTURED_SOURCES = {"gather.cpp", "taskgroup.cpp", "timeouts.cpp", "contextlib.cpp"}
# The sync layer's headers are built on the wait protocol only (ARCHITECTURE: "sync").
SYNC_MAY_USE = {"detail/wait_node.hpp", "detail/intrusive_list.hpp", "coro.hpp", "errors.hpp", "debug.hpp"}
# lock.cpp reports a guard's failed release to the loop's exception handler.
SYNC_SOURCE_EXTRA = {"src/sync/lock.cpp": {"loop.hpp", "detail/task_base.hpp"}}

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]corio/([^>"]+)[>"]', re.M)


# Tests that reach into corio/detail on purpose: each tests one internal type directly.
WHITE_BOX_TESTS = {"tests/test_frame_alloc.cpp", "tests/test_byte_buffer.cpp", "tests/test_ready_ring.cpp"}

def header_layer(name):
    """The layer of a header, by its path under include/corio/."""
    if name == "backend.hpp":
        return "backend"
    if name == "debug.hpp":
        return "debug"
    if name == "detail/io_awaiter.hpp":
        return "net"
    if name.startswith("detail/"):
        return "core"
    stem = name[:-4] if name.endswith(".hpp") else name
    for layer, names in (("core", CORE), ("structured", STRUCTURED), ("sync", SYNC), ("net", NET)):
        if stem in names:
            return layer
    return {"subprocess": "process", "testing": "testing", "corio": "umbrella"}.get(stem, "unknown")


def file_layer(rel):
    """The layer a file belongs to, by its path in the source tree."""
    parts = rel.split("/")
    if parts[0] == "include":
        return header_layer("/".join(parts[2:]))
    if parts[0] == "src":
        area = parts[1]
        if rel in ("src/core/debug.cpp", "src/net/introspect.cpp"):
            return "debug-source"
        if area == "core":
            return "structured" if parts[-1] in STRUCTURED_SOURCES else "core"
        return {"io": "io", "sync": "sync", "net": "net", "process": "process"}.get(area, "unknown")
    return "application"


# Which layers each layer may include (its own is always allowed).
ALLOWED = {
    "io": {"backend"},
    "backend": set(),
    "debug": set(),
    "core": {"backend", "debug"},
    "structured": {"core", "debug"},
    "net": {"core", "sync", "backend", "debug"},
    "process": {"net", "core", "backend", "debug"},
    "debug-source": {"core", "structured", "sync", "net", "backend", "debug"},
    "testing": {"umbrella"},
    "umbrella": {"core", "structured", "sync", "net", "process", "backend", "debug"},
    "application": {"core", "structured", "sync", "net", "process", "backend", "debug", "testing", "umbrella"},
}


def violations(root):
    found = []
    files = []
    for top in ("include", "src", "tests", "examples", "bench", "tools", "docs/snippets"):
        base = root / top
        if base.is_dir():
            files += [p for p in base.rglob("*") if p.suffix in (".hpp", ".cpp", ".h")]
    for path in sorted(files):
        rel = path.relative_to(root).as_posix()
        layer = file_layer(rel)
        for target in INCLUDE.findall(path.read_text(errors="replace")):
            target_layer = header_layer(target)
            if layer == "sync" and rel.startswith("include/"):
                ok = target_layer == "sync" or target in SYNC_MAY_USE
            elif layer == "sync":
                ok = target_layer == "sync" or target in SYNC_MAY_USE or target in SYNC_SOURCE_EXTRA.get(rel, set())
            elif layer == "application":
                # Applications use public headers; the unit tests of two internal types (the
                # frame allocator, the streams' byte buffer) are the exceptions.
                ok = not target.startswith("detail/") or rel in WHITE_BOX_TESTS
            else:
                ok = target_layer == layer or target_layer in ALLOWED.get(layer, set())
            if target_layer == "unknown" or layer == "unknown":
                ok = False
            if not ok:
                found.append(f"{rel} ({layer}) includes corio/{target} ({target_layer})")
    return found


def self_test(root):
    """An upward include planted in a scratch copy must be reported."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(root / "include", copy / "include")
        shutil.copytree(root / "src", copy / "src")
        loop = copy / "include/corio/loop.hpp"
        loop.write_text(loop.read_text() + '\n#include "corio/streams.hpp"\n')
        epoll = copy / "src/io/epoll_backend.cpp"
        epoll.write_text('#include <corio/loop.hpp>\n' + epoll.read_text())
        found = violations(copy)
        want = ["include/corio/loop.hpp (core) includes corio/streams.hpp (net)",
                "src/io/epoll_backend.cpp (io) includes corio/loop.hpp (core)"]
        missing = [w for w in want if w not in found]
        if missing:
            print("check_layering: self-test failed, not reported:", *missing, sep="\n  ")
            return False
    return True


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    found = violations(root)
    if found:
        print("check_layering: includes that break docs/ARCHITECTURE.md's layer rules:")
        for f in found:
            print("  " + f)
        return 1
    if not self_test(root):
        return 1
    print("check_layering: every corio include follows docs/ARCHITECTURE.md's layer rules (self-test passed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
