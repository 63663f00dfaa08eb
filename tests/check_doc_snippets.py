#!/usr/bin/env python3
"""Checks that the C++ in corio's documentation is the C++ the tests compile and run.

Usage: check_doc_snippets.py [REPO_ROOT]      (default: the parent of this script's directory)

Every ```cpp block (also c++, cxx, cc, hpp) in README.md and docs/**/*.md must be preceded,
on the nearest non-blank line above its opening fence, by a comment naming where it comes from:

    <!-- snippet: examples/hello.cpp -->              the whole file
    <!-- snippet: docs/snippets/tasks.cpp#gather -->  the region `gather` of that file

The file must be a .cpp under examples/ or docs/snippets/ (so ctest builds and runs it:
example.<stem> / docs.<stem>). A region is delimited in the .cpp by the lines

    // [gather]
    ...
    // [end gather]

The block must equal the file or region exactly, except that leading and trailing blank lines
and trailing whitespace are ignored, a region is compared after removing the indentation its
lines share, and marker lines of other regions (regions may overlap or nest) are left out.

Also checked, so the guide's cross-references cannot rot either: a snippet comment must be
followed by a C++ block, and a relative link to a Markdown file with a #fragment must name a
heading that exists there (GitHub's anchor rules). A link to a Markdown file that does not
exist yet is only reported as a note.

Exits 0 when everything matches, 1 with one message per problem otherwise.
"""

from __future__ import annotations

import difflib
import re
import sys
import textwrap
from pathlib import Path

CPP_LANGS = {"cpp", "c++", "cxx", "cc", "hpp", "h++"}
ALLOWED_DIRS = ("examples/", "docs/snippets/")

SNIPPET_RE = re.compile(r"^\s*<!--\s*snippet:\s*(?P<ref>\S+?)\s*-->\s*$")
FENCE_RE = re.compile(r"^(?P<indent>[ ]{0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")
MARKER_RE = re.compile(r"^\s*//\s*\[(?P<end>end\s+)?(?P<name>[A-Za-z0-9_.-]+)\]\s*$")
HEADING_RE = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
LINK_RE = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


class Problems:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.notes: list[str] = []

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: error: {message}")

    def note(self, where: str, message: str) -> None:
        self.notes.append(f"{where}: note: {message}")


def trim(lines: list[str]) -> list[str]:
    """Strips trailing whitespace from every line and drops leading/trailing blank lines."""
    lines = [line.rstrip() for line in lines]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


class Block:
    def __init__(self, start: int, lang: str, lines: list[str]) -> None:
        self.start = start  # 1-based line number of the opening fence
        self.lang = lang
        self.lines = lines


def parse_markdown(text: str) -> tuple[list[Block], list[tuple[int, str]], list[tuple[int, str]]]:
    """Returns (fenced blocks, lines outside blocks as (lineno, text), unterminated-fence errors)."""
    blocks: list[Block] = []
    outside: list[tuple[int, str]] = []
    problems: list[tuple[int, str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m or (m.group("fence")[0] == "`" and "`" in m.group("info")):
            outside.append((i + 1, lines[i]))
            i += 1
            continue
        fence, indent = m.group("fence"), len(m.group("indent"))
        lang = (m.group("info").split() or [""])[0].lower()
        start = i + 1
        body: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            c = re.match(r"^[ ]{0,3}(?P<f>`{3,}|~{3,})\s*$", lines[i])
            if c and c.group("f")[0] == fence[0] and len(c.group("f")) >= len(fence):
                closed = True
                i += 1
                break
            line = lines[i]
            # Content of an indented fence loses up to that much indentation (CommonMark).
            strip = min(indent, len(line) - len(line.lstrip(" ")))
            body.append(line[strip:])
            i += 1
        if not closed:
            problems.append((start, f"the ``` block opened here is never closed"))
        blocks.append(Block(start, lang, body))
    return blocks, outside, problems


def read_source(root: Path, ref: str, where: str, problems: Problems, cache: dict) -> list[str] | None:
    """The lines a snippet reference stands for, or None after reporting why there are none."""
    path_part, _, region = ref.partition("#")
    if path_part.startswith("/") or ".." in Path(path_part).parts:
        problems.error(where, f"snippet path '{path_part}' must be relative to the repository root")
        return None
    if not path_part.startswith(ALLOWED_DIRS) or not path_part.endswith(".cpp"):
        problems.error(where, f"snippet path '{path_part}' must be a .cpp file under examples/ or "
                              "docs/snippets/, where ctest compiles and runs it")
        return None
    file = root / path_part
    if not file.is_file():
        problems.error(where, f"snippet file '{path_part}' does not exist")
        return None
    if path_part not in cache:
        cache[path_part] = file.read_text(encoding="utf-8").split("\n")
    lines = cache[path_part]

    if not region:
        return [line for line in lines if not MARKER_RE.match(line)]

    starts = [n for n, line in enumerate(lines)
              if (m := MARKER_RE.match(line)) and not m.group("end") and m.group("name") == region]
    ends = [n for n, line in enumerate(lines)
            if (m := MARKER_RE.match(line)) and m.group("end") and m.group("name") == region]
    if not starts:
        names = sorted({m.group("name") for line in lines if (m := MARKER_RE.match(line))})
        problems.error(where, f"'{path_part}' has no region '{region}' (a line `// [{region}]`); "
                              f"its regions: {', '.join(names) if names else 'none'}")
        return None
    if len(starts) > 1:
        problems.error(where, f"'{path_part}' opens region '{region}' more than once "
                              f"(lines {', '.join(str(n + 1) for n in starts)})")
        return None
    after = [n for n in ends if n > starts[0]]
    if not after:
        problems.error(where, f"'{path_part}': region '{region}' opened on line {starts[0] + 1} "
                              f"has no `// [end {region}]` after it")
        return None
    body = [line for line in lines[starts[0] + 1:after[0]] if not MARKER_RE.match(line)]
    return textwrap.dedent("\n".join(body)).split("\n")


def github_slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = re.sub(r"<[^>]+>", "", text)                        # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(md_text: str) -> set[str]:
    _, outside, _ = parse_markdown(md_text)
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for _, line in outside:
        m = HEADING_RE.match(line)
        if not m:
            continue
        slug = github_slug(m.group("text"))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    for m in re.finditer(r"<a\s+(?:name|id)=\"([^\"]+)\"", md_text):
        anchors.add(m.group(1))
    return anchors


def check_links(root: Path, md: Path, outside: list[tuple[int, str]], problems: Problems) -> None:
    rel = md.relative_to(root).as_posix()
    for lineno, line in outside:
        for m in LINK_RE.finditer(re.sub(r"`[^`]*`", "", line)):
            target = m.group("target")
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, mailto:, ...
                continue
            path_part, _, fragment = target.partition("#")
            dest = (md.parent / path_part).resolve() if path_part else md.resolve()
            where = f"{rel}:{lineno}"
            if not dest.exists():
                problems.note(where, f"link to '{path_part}', which does not exist (yet)")
                continue
            if fragment and dest.suffix == ".md":
                if fragment not in anchors_of(dest.read_text(encoding="utf-8")):
                    problems.error(where, f"link '{target}': no heading in "
                                          f"{dest.relative_to(root).as_posix() if dest.is_relative_to(root) else dest} "
                                          f"has the anchor '#{fragment}'")


def check_file(root: Path, md: Path, problems: Problems, cache: dict) -> int:
    rel = md.relative_to(root).as_posix()
    text = md.read_text(encoding="utf-8")
    blocks, outside, fence_problems = parse_markdown(text)
    for lineno, message in fence_problems:
        problems.error(f"{rel}:{lineno}", message)
    lines = text.split("\n")
    block_at = {b.start: b for b in blocks}

    def prev_nonblank(n: int) -> tuple[int, str] | None:  # n: 1-based line number
        for k in range(n - 2, -1, -1):
            if lines[k].strip():
                return k + 1, lines[k]
        return None

    def next_nonblank(n: int) -> int | None:
        for k in range(n, len(lines)):
            if lines[k].strip():
                return k + 1
        return None

    # A snippet comment must introduce a C++ block.
    for lineno, line in outside:
        if SNIPPET_RE.match(line):
            nxt = next_nonblank(lineno)
            block = block_at.get(nxt) if nxt else None
            if block is None or block.lang not in CPP_LANGS:
                problems.error(f"{rel}:{lineno}", "snippet comment is not followed by a ```cpp block")

    checked = 0
    for block in blocks:
        if block.lang not in CPP_LANGS:
            continue
        where = f"{rel}:{block.start}"
        prev = prev_nonblank(block.start)
        m = SNIPPET_RE.match(prev[1]) if prev else None
        if not m:
            problems.error(where, "```cpp block without a `<!-- snippet: examples/<file>.cpp -->` or "
                                  "`<!-- snippet: docs/snippets/<file>.cpp#<region> -->` comment right above "
                                  "it: every C++ block must be a file (or region) that ctest compiles and runs")
            continue
        ref = m.group("ref")
        source = read_source(root, ref, where, problems, cache)
        if source is None:
            continue
        want, got = trim(source), trim(block.lines)
        checked += 1
        if want != got:
            diff = "\n".join(difflib.unified_diff(want, got, fromfile=ref, tofile=f"{rel} (block at line {block.start})",
                                                  lineterm=""))
            problems.error(where, f"the block differs from {ref}; update one to match the other:\n{diff}")
    check_links(root, md, outside, problems)
    return checked


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parent.parent).resolve()
    docs = [root / "README.md"] + sorted((root / "docs").rglob("*.md"))
    docs = [d for d in docs if d.is_file()]
    if not docs:
        print(f"check_doc_snippets: no README.md or docs/*.md under {root}", file=sys.stderr)
        return 1
    problems = Problems()
    cache: dict[str, list[str]] = {}
    total = sum(check_file(root, md, problems, cache) for md in docs)

    snippet_dir = root / "docs" / "snippets"
    used = {Path(p).as_posix() for p in cache}
    for src in sorted(snippet_dir.glob("*.cpp")) if snippet_dir.is_dir() else []:
        rel = src.relative_to(root).as_posix()
        if rel not in used:
            problems.note(rel, "no document shows any part of this snippet (it is still built and run)")

    for n in problems.notes:
        print(n)
    for e in problems.errors:
        print(e, file=sys.stderr)
    names = ", ".join(d.relative_to(root).as_posix() for d in docs)
    if problems.errors:
        print(f"check_doc_snippets: {len(problems.errors)} problem(s) in {names}", file=sys.stderr)
        return 1
    print(f"check_doc_snippets: {total} C++ block(s) in {names} match their files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
