#!/usr/bin/env python3
"""Checks that every public name of corio's headers is documented in the API reference.

Usage: check_api_reference.py [REPO_ROOT] [--no-self-test]
       (REPO_ROOT defaults to the parent of this script's directory)

The reference is docs/reference/: one page per public header, include/corio/<stem>.hpp is
documented by docs/reference/<stem>.md, plus docs/reference/README.md, the index, which must link
to every page. The headers under include/corio/detail/ are not public and have no page.

What counts as a public name (a small parser of our own headers: comments and string literals
are blanked out, then declarations are read scope by scope, tracking braces):

- in `namespace corio` and `namespace corio::testing` (never in a `detail` namespace): classes,
  structs, enums, type aliases, functions, variables and constants, `using namespace` directives;
- in a public class: its public members (member functions and operators, non-default
  constructors, data members, nested types and aliases, friend functions, enumerators of a
  public enum), including the public members of a public `detail::` base class (the queues get
  theirs from detail::BasicQueue);
- the macros #defined by a public header.

Not public, so not required: private and protected members; names ending in `_` (the project's
mark for internals: IoOperation's backend-private fields, CORIO_TEST_IMPL_); destructors,
default/copy/move constructors, `operator=`; the coroutine protocol (`await_ready`,
`await_suspend`, `await_resume`, everything inside a `promise_type`); and the members of the
nested awaiter types (`...Awaiter`), whose own name is still required.

What counts as documented: only text in code (`inline code` or a fenced block) counts, so an
English word in prose never documents a member by accident.

- a namespace-scope name or a macro: the name appears, as a whole word, in code on its page;
- a member `m` of class `C`: `C::m` appears in code on the page, or `m` appears in code inside
  a section (a heading and everything under it, down to the next heading of the same or a higher
  level; not the page's level-1 title) whose heading names `C` or a class enclosing `C`; a constructor is documented by
  `C(` there, an operator by its full spelling (`operator==`, `operator co_await`).
  A section may name several classes (`Queue<T>`, `PriorityQueue<T>`, `LifoQueue<T>`).

The umbrella header corio/corio.hpp declares nothing: its page must name every header it
includes.

Also checked: a header without a page, a page without a header, and an index that does not link
to a page. Unless --no-self-test is given, the script then checks itself: on a scratch copy of
the headers and pages it adds an undocumented public function, member and header (each must be
reported) and private and detail names (which must not be), so that a parser that silently
stopped finding names cannot pass.

Exits 0 when everything is documented, 1 with one line per undocumented name otherwise.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_headers import Name, public_names, umbrella_includes  # noqa: E402  (the header parser)

REFERENCE_DIR = Path("docs/reference")
INDEX_PAGE = "README.md"
UMBRELLA = "corio.hpp"


# ----------------------------------------------------------------------------------------------
# Pages
# ----------------------------------------------------------------------------------------------

FENCE_RE = re.compile(r"^[ ]{0,3}(`{3,}|~{3,})")
HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN_RE = re.compile(r"(`+)(.+?)\1")


@dataclass
class Section:
    level: int
    heading: str
    code: list[str] = field(default_factory=list)  # code of this section and of its subsections


@dataclass
class Page:
    path: Path
    code: str                      # all code on the page, joined
    sections: list[Section]
    text: str


def read_page(path: Path) -> Page:
    text = path.read_text(encoding="utf-8")
    sections: list[Section] = []
    open_sections: list[Section] = []
    all_code: list[str] = []
    in_fence = ""

    def add_code(s: str) -> None:
        all_code.append(s)
        for sec in open_sections:
            sec.code.append(s)

    for line in text.split("\n"):
        if in_fence:
            if re.match(r"^[ ]{0,3}" + re.escape(in_fence[0]) + "{" + str(len(in_fence)) + r",}\s*$", line):
                in_fence = ""
            else:
                add_code(line)
            continue
        m = FENCE_RE.match(line)
        if m:
            in_fence = m.group(1)
            continue
        h = HEADING_RE.match(line)
        if h:
            level = len(h.group(1))
            while open_sections and open_sections[-1].level >= level:
                open_sections.pop()
            sec = Section(level, h.group(2))
            sections.append(sec)
            open_sections.append(sec)
            for span in CODE_SPAN_RE.finditer(h.group(2)):
                add_code(span.group(2))
            continue
        for span in CODE_SPAN_RE.finditer(line):
            add_code(span.group(2))
    return Page(path, "\n".join(all_code), sections, text)


def word_re(word: str) -> re.Pattern:
    return re.compile(r"(?<![A-Za-z0-9_])" + re.escape(word) + r"(?![A-Za-z0-9_])")


def mentions(code: str, name: Name) -> bool:
    if name.kind == "constructor":
        return re.search(r"(?<![A-Za-z0-9_:~])" + re.escape(name.name) + r"\s*(<[^()]*>)?\s*[({]", code) is not None
    if name.name.startswith("operator"):
        spelled = re.escape(name.name).replace(r"\ ", r"\s*")
        return re.search(r"(?<![A-Za-z0-9_])" + spelled, code) is not None
    return word_re(name.name).search(code) is not None


def documented(page: Page, name: Name) -> bool:
    if not name.scope:
        return mentions(page.code, name)
    # C::m (or Outer::C::m) anywhere on the page; a constructor as C::C(.
    for k in range(len(name.scope)):
        qual = "::".join(name.scope[k:]) + "::" + name.name
        if name.kind == "constructor":
            if re.search(re.escape(qual) + r"\s*\(", page.code):
                return True
        elif name.name.startswith("operator"):
            if re.search(re.escape(qual).replace(r"\ ", r"\s*"), page.code):
                return True
        elif word_re(qual).search(page.code):
            return True
    # m inside a section whose heading names the class or an enclosing one (not the page's
    # title: a level-1 heading spans the whole page).
    for sec in page.sections:
        if sec.level == 1:
            continue
        heading = re.sub(r"`", "", sec.heading)
        if any(word_re(c).search(heading) for c in name.scope):
            if mentions("\n".join(sec.code), name):
                return True
    return False


# ----------------------------------------------------------------------------------------------
# The check
# ----------------------------------------------------------------------------------------------

def check(root: Path) -> list[str]:
    problems: list[str] = []
    include = root / "include" / "corio"
    ref = root / REFERENCE_DIR
    headers = sorted(p for p in include.glob("*.hpp") if p.is_file())
    if not headers:
        return [f"{include}: no public headers found"]
    if not ref.is_dir():
        return [f"{REFERENCE_DIR.as_posix()}/: the API reference does not exist"]

    index = ref / INDEX_PAGE
    index_text = index.read_text(encoding="utf-8") if index.is_file() else ""
    if not index_text:
        problems.append(f"{(REFERENCE_DIR / INDEX_PAGE).as_posix()}: the reference has no index page")

    for header in headers:
        rel_header = header.relative_to(root).as_posix()
        page_path = ref / (header.stem + ".md")
        rel_page = page_path.relative_to(root).as_posix()
        if not page_path.is_file():
            problems.append(f"{rel_header}: error: no reference page {rel_page} for this public header")
            continue
        if index_text and not re.search(r"\]\(\.?/?" + re.escape(page_path.name) + r"(#[^)]*)?\)", index_text):
            problems.append(f"{(REFERENCE_DIR / INDEX_PAGE).as_posix()}: error: the index does not link to {page_path.name}")
        page = read_page(page_path)
        if header.name == UMBRELLA:
            for inc, line in umbrella_includes(header):
                if inc not in page.text:
                    problems.append(f"{rel_header}:{line}: error: {rel_page} does not name the included header {inc}")
            continue
        names = public_names(header)
        if not names:
            problems.append(f"{rel_header}: error: no public name found: has the header's form changed "
                            f"beyond what {Path(__file__).name} parses?")
        for name in names:
            if not documented(page, name):
                where = f"in a section headed by `{name.scope[-1]}`" if name.scope else "anywhere"
                problems.append(f"{rel_header}:{name.line}: error: {name.kind} `{name.display()}` is not "
                                f"documented in {rel_page} (not in code {where})")

    stems = {h.stem for h in headers}
    for page_path in sorted(ref.glob("*.md")):
        if page_path.name != INDEX_PAGE and page_path.stem not in stems:
            problems.append(f"{page_path.relative_to(root).as_posix()}: error: no header "
                            f"include/corio/{page_path.stem}.hpp for this page (stale?)")
    return problems


def count_names(root: Path) -> int:
    return sum(len(public_names(h)) for h in (root / "include" / "corio").glob("*.hpp") if h.name != UMBRELLA)


# ----------------------------------------------------------------------------------------------
# Self-test: the check must see what is added, and only what is public.
# ----------------------------------------------------------------------------------------------

def self_test(root: Path) -> list[str]:
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="corio-ref-selftest-") as tmp:
        t = Path(tmp)
        shutil.copytree(root / "include" / "corio", t / "include" / "corio")
        shutil.copytree(root / REFERENCE_DIR, t / REFERENCE_DIR)
        baseline = set(check(t))

        lock = t / "include" / "corio" / "lock.hpp"
        text = lock.read_text(encoding="utf-8")
        text = text.replace("    bool locked() const noexcept { return locked_; }",
                            "    bool locked() const noexcept { return locked_; }\n"
                            "    int selftest_waiters() const noexcept { return 0; }\n"
                            "    // a comment naming selftest_commented() is not a declaration\n"
                            "private:\n    void selftest_private();\npublic:", 1)
        text = text.replace("}  // namespace corio",
                            "namespace detail { void selftest_detail_fn(); }\n"
                            "template <class T>\n[[nodiscard]] Coro<T> selftest_free_fn(Coro<T> c, int n = 0);\n"
                            "struct SelftestOptions {\n    int selftest_field = 1;\n    int hidden_ = 0;\n};\n"
                            "#define CORIO_SELFTEST_MACRO(x) (x)\n"
                            "}  // namespace corio", 1)
        lock.write_text(text, encoding="utf-8")
        (t / "include" / "corio" / "selftest_new.hpp").write_text(
            "#pragma once\nnamespace corio {\nvoid selftest_new_header_fn();\n}\n", encoding="utf-8")

        after = set(check(t)) - baseline
        joined = "\n".join(sorted(after))
        expected = ["Lock::selftest_waiters", "corio::selftest_free_fn", "corio::SelftestOptions",
                    "SelftestOptions::selftest_field", "CORIO_SELFTEST_MACRO", "selftest_new.hpp"]
        unexpected = ["selftest_private", "selftest_detail_fn", "selftest_commented", "hidden_"]
        for e in expected:
            if e not in joined:
                failures.append(f"self-test: adding `{e}` undocumented was not reported")
        for u in unexpected:
            if u in joined:
                failures.append(f"self-test: `{u}` (not public) was reported as undocumented")
        if not failures and len(after) != len(expected):
            failures.append("self-test: unexpected reports:\n  " + joined.replace("\n", "\n  "))

        # And documenting them makes the reports go away.
        page = t / REFERENCE_DIR / "lock.md"
        page.write_text(page.read_text(encoding="utf-8") +
                        "\n## `SelftestOptions`\n\n`selftest_field`, `selftest_free_fn(c, n)`, "
                        "`CORIO_SELFTEST_MACRO(x)`, `Lock::selftest_waiters()`\n", encoding="utf-8")
        (t / REFERENCE_DIR / "selftest_new.md").write_text("# x\n\n`selftest_new_header_fn()`\n", encoding="utf-8")
        index = t / REFERENCE_DIR / INDEX_PAGE
        index.write_text(index.read_text(encoding="utf-8") + "\n[x](selftest_new.md)\n", encoding="utf-8")
        left = set(check(t)) - baseline
        if left:
            failures.append("self-test: still reported once documented:\n  " + "\n  ".join(sorted(left)))
    return failures


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = {a for a in argv[1:] if a.startswith("--")}
    root = Path(args[0] if args else Path(__file__).resolve().parent.parent).resolve()
    problems = check(root)
    for p in problems:
        print(p, file=sys.stderr)
    failures = [] if "--no-self-test" in flags or problems else self_test(root)
    for f in failures:
        print(f"check_api_reference: {f}", file=sys.stderr)
    if problems:
        print(f"check_api_reference: {len(problems)} undocumented name(s) or missing page(s) "
              f"in {REFERENCE_DIR.as_posix()}/", file=sys.stderr)
        return 1
    if failures:
        return 1
    n_headers = len(list((root / "include" / "corio").glob("*.hpp")))
    print(f"check_api_reference: {count_names(root)} public name(s) of {n_headers} header(s) are "
          f"documented in {REFERENCE_DIR.as_posix()}/" + ("" if "--no-self-test" in flags else " (self-test passed)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
