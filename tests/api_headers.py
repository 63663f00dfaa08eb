"""Reads the public names out of corio's headers, for check_api_reference.py.

A small parser of our own headers (what counts as public is explained in
check_api_reference.py's docstring): comments and string literals are blanked out, then
declarations are read scope by scope, tracking braces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

PUBLIC_NAMESPACES = {"corio", "corio::testing"}

# The coroutine protocol: public because the compiler needs it, not an API of ours.
PROTOCOL_MEMBERS = {
    "await_ready", "await_suspend", "await_resume", "get_return_object", "initial_suspend",
    "final_suspend", "unhandled_exception", "return_value", "return_void", "yield_value",
    "promise_type",
}
KEYWORDS_BEFORE_NAME = {
    "inline", "static", "constexpr", "consteval", "constinit", "virtual", "explicit", "extern",
    "friend", "typename", "const", "volatile", "mutable", "thread_local", "unsigned", "signed",
}


# ----------------------------------------------------------------------------------------------
# Headers
# ----------------------------------------------------------------------------------------------

def strip_comments_and_strings(text: str) -> str:
    """Blanks out comments, string and character literals, keeping every newline in place."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"' or (c == "'" and not (i > 0 and (text[i - 1].isalnum()))):
            # A raw string R"(...)" is not used in our headers; digit separators (1'000) are
            # skipped by the isalnum test above.
            quote = c
            j = i + 1
            while j < n and text[j] != quote:
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(quote + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + quote)
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


@dataclass
class Tok:
    text: str
    line: int


TOKEN_RE = re.compile(
    r"(?P<id>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>\d[\w'.]*)|(?P<str>\"[^\"\n]*\"|'[^'\n]*')"
    r"|(?P<op>::|->|\.\.\.|&&|\|\||==|!=|<=|>=|\+\+|--|[-+*/%^&|~!=<>?:;,.(){}\[\]#])"
)


def tokenize(code: str) -> list[Tok]:
    toks: list[Tok] = []
    for lineno, line in enumerate(code.split("\n"), start=1):
        for m in TOKEN_RE.finditer(line):
            toks.append(Tok(m.group(0), lineno))
    return toks


def preprocess(text: str) -> tuple[str, list[tuple[str, int]]]:
    """Removes preprocessor lines (with their continuations); returns the macros #defined."""
    lines = text.split("\n")
    macros: list[tuple[str, int]] = []
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("#"):
            m = re.match(r"\s*#\s*define\s+([A-Za-z_][A-Za-z0-9_]*)", lines[i])
            if m:
                macros.append((m.group(1), i + 1))
            while True:
                cont = lines[i].rstrip().endswith("\\")
                lines[i] = ""
                if not cont or i + 1 >= len(lines):
                    break
                i += 1
        i += 1
    return "\n".join(lines), macros


@dataclass
class Name:
    scope: tuple[str, ...]  # enclosing classes, outermost first (empty at namespace scope)
    name: str               # as required in the docs: an identifier, `operator==`, ...
    kind: str               # class, enum, alias, function, variable, constructor, enumerator, ...
    line: int
    namespace: str
    header: str

    def qualified(self) -> str:
        return "::".join((self.namespace,) + self.scope + (self.name,))

    def display(self) -> str:
        inner = "::".join(self.scope + (self.name,))
        what = {"constructor": "constructor ", "macro": "macro "}.get(self.kind, "")
        return f"{what}{self.namespace}::{inner}" if self.kind != "macro" else f"macro {self.name}"


@dataclass
class ClassInfo:
    namespace: str
    path: tuple[str, ...]
    header: str
    public_bases: list[str] = field(default_factory=list)
    members: list[Name] = field(default_factory=list)  # public members only
    public: bool = False  # its public members are public names (a public, non-protocol class)


class HeaderParser:
    """Reads declarations scope by scope. Good enough for corio's own, consistently written
    headers; it errs on the side of reporting a name rather than missing one."""

    def __init__(self, header: str, toks: list[Tok]) -> None:
        self.header = header
        self.t = toks
        self.names: list[Name] = []
        self.classes: dict[tuple[str, tuple[str, ...]], ClassInfo] = {}

    # --- helpers ---------------------------------------------------------------------------

    def at(self, i: int) -> str:
        return self.t[i].text if i < len(self.t) else ""

    def skip_balanced(self, i: int, open_: str, close: str) -> int:
        """i is at `open_`; returns the index just past its matching `close`."""
        depth = 0
        while i < len(self.t):
            s = self.t[i].text
            if s == open_:
                depth += 1
            elif s == close:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return i

    def skip_angles(self, i: int) -> int:
        """i is at `<`; returns the index past the matching `>` (parens and braces nest)."""
        depth = 0
        while i < len(self.t):
            s = self.t[i].text
            if s == "<":
                depth += 1
            elif s == ">":
                depth -= 1
                if depth == 0:
                    return i + 1
            elif s == "(":
                i = self.skip_balanced(i, "(", ")") - 1
            elif s == "{":
                i = self.skip_balanced(i, "{", "}") - 1
            elif s in (";",):
                return i
            i += 1
        return i

    def skip_attributes(self, i: int) -> int:
        while self.at(i) == "[" and self.at(i + 1) == "[":
            i = self.skip_balanced(i, "[", "]")
        while self.at(i) == "alignas" and self.at(i + 1) == "(":
            i = self.skip_balanced(i + 1, "(", ")")
        return i

    def skip_requires(self, i: int) -> int:
        """i is past `requires`; skips the constraint expression."""
        while True:
            while self.at(i) == "!":
                i += 1
            if self.at(i) == "(":
                i = self.skip_balanced(i, "(", ")")
            else:
                # A primary: [::] name [<args>] { :: name [<args>] }. Two names in a row are
                # not one primary: the second begins the declaration the clause constrains.
                if self.at(i) == "::":
                    i += 1
                while re.match(r"[A-Za-z_]", self.at(i)):
                    i += 1
                    if self.at(i) == "<":
                        i = self.skip_angles(i)
                    if self.at(i) == "::":
                        i += 1
                        continue
                    break
            if self.at(i) in ("&&", "||"):
                i += 1
                continue
            return i

    def skip_statement(self, i: int) -> int:
        """Skips to just past the `;` ending the statement at depth 0 (braces, parens nest)."""
        while i < len(self.t):
            s = self.t[i].text
            if s == "(":
                i = self.skip_balanced(i, "(", ")")
                continue
            if s == "{":
                i = self.skip_balanced(i, "{", "}")
                continue
            if s == ";":
                return i + 1
            if s == "}":
                return i  # the enclosing scope ends: let the caller see it
            i += 1
        return i

    # --- scopes ----------------------------------------------------------------------------

    def parse(self) -> None:
        self.parse_scope(0, namespace="", cls=None, access="public")

    def public_ns(self, namespace: str) -> bool:
        return namespace in PUBLIC_NAMESPACES

    def add(self, namespace: str, cls: ClassInfo | None, name: str, kind: str, line: int) -> None:
        if name.endswith("_"):
            return
        scope = cls.path if cls else ()
        n = Name(scope, name, kind, line, namespace, self.header)
        if cls is not None:
            cls.members.append(n)
        if self.public_ns(namespace) and (cls is None or self.class_is_public(cls)):
            self.names.append(n)

    def class_is_public(self, cls: ClassInfo) -> bool:
        return cls.public

    def parse_scope(self, i: int, namespace: str, cls: ClassInfo | None, access: str) -> int:
        """Parses declarations until the `}` closing this scope; returns the index past it."""
        template_pending = False
        while i < len(self.t):
            s = self.at(i)
            if s == "}":
                return i + 1
            if s == ";":
                i += 1
                continue
            if s in ("public", "private", "protected") and self.at(i + 1) == ":":
                access = s
                i += 2
                continue
            if s == "namespace":
                i = self.parse_namespace(i, namespace)
                continue
            if s == "template":
                i += 1
                if self.at(i) == "<":
                    i = self.skip_angles(i)
                if self.at(i) == "requires":
                    i = self.skip_requires(i + 1)
                template_pending = True
                continue
            if s in ("static_assert",):
                i = self.skip_statement(i)
                continue
            if s == "extern" and self.at(i + 1).startswith('"'):
                i += 2
                if self.at(i) == "{":
                    i = self.parse_scope(i + 1, namespace, cls, access)
                continue
            i = self.parse_declaration(i, namespace, cls, access, template_pending)
            template_pending = False
        return i

    def parse_namespace(self, i: int, namespace: str) -> int:
        i += 1
        parts: list[str] = []
        while self.at(i) not in ("{", ";", "="):
            if self.at(i) != "::":
                parts.append(self.at(i))
            i += 1
        if self.at(i) != "{":
            return self.skip_statement(i)
        inner = "::".join(([namespace] if namespace else []) + parts) if parts else namespace + "::<anon>"
        return self.parse_scope(i + 1, inner, None, "public")

    def declared_public(self, cls: ClassInfo | None, access: str) -> bool:
        return cls is None or access == "public"

    def parse_declaration(self, i: int, namespace: str, cls: ClassInfo | None, access: str,
                          templated: bool) -> int:
        start = i
        i = self.skip_attributes(i)
        s = self.at(i)
        visible = self.declared_public(cls, access)

        if s == "using":
            if self.at(i + 1) == "namespace":
                j = i + 2
                last = self.at(j)
                while self.at(j) not in (";", ""):
                    if re.match(r"[A-Za-z_]", self.at(j)):
                        last = self.at(j)
                    j += 1
                if visible and cls is None:
                    self.add(namespace, cls, last, "using namespace", self.t[i].line)
                return j + 1
            if self.at(i + 2) == "=":
                if visible:
                    self.add(namespace, cls, self.at(i + 1), "alias", self.t[i + 1].line)
                return self.skip_statement(i)
            return self.skip_statement(i)  # using-declaration (inherited constructors, ...)

        if s == "friend":
            j = i + 1
            if self.at(j) in ("class", "struct"):
                return self.skip_statement(i)
            # A hidden friend is part of the class's interface whatever the access label.
            return self.parse_function_or_variable(j, namespace, cls, True, friend=True)

        if s in ("class", "struct", "union"):
            return self.parse_class(i, namespace, cls, visible)

        if s == "enum":
            return self.parse_enum(i, namespace, cls, visible)

        if s == "typedef":
            j = self.skip_statement(i)
            ids = [t.text for t in self.t[i:j] if re.match(r"[A-Za-z_]", t.text)]
            if visible and ids:
                self.add(namespace, cls, ids[-1], "alias", self.t[i].line)
            return j

        return self.parse_function_or_variable(i, namespace, cls, visible)

    def parse_class(self, i: int, namespace: str, outer: ClassInfo | None, visible: bool) -> int:
        keyword = self.at(i)
        line = self.t[i].line
        i = self.skip_attributes(i + 1)
        path: list[str] = []
        while re.match(r"[A-Za-z_]", self.at(i)) and self.at(i) not in ("final",):
            path.append(self.at(i))
            i += 1
            if self.at(i) == "<":  # a specialisation: Outcome<void>
                i = self.skip_angles(i)
            if self.at(i) == "::":
                i += 1
                continue
            break
        if self.at(i) == "final":
            i += 1
        if not path:
            # An anonymous class: a variable of that type follows. Skip the lot.
            return self.skip_statement(i)
        if self.at(i) == ";":
            # A forward declaration. Inside a class, a public nested type declared here and
            # defined later (class Lock::Awaiter) is a name of the class.
            if outer is not None and visible:
                self.add(namespace, outer, path[-1], "nested type", line)
            return i + 1
        bases: list[str] = []
        if self.at(i) == ":":
            i += 1
            while self.at(i) not in ("{", ";", ""):
                access = "public" if keyword == "struct" else "private"
                while self.at(i) in ("public", "private", "protected", "virtual"):
                    if self.at(i) != "virtual":
                        access = self.at(i)
                    i += 1
                base: list[str] = []
                while self.at(i) not in (",", "{", ";", ""):
                    if self.at(i) == "<":
                        i = self.skip_angles(i)
                        continue
                    base.append(self.at(i))
                    i += 1
                if access == "public":
                    bases.append("".join(base))
                if self.at(i) == ",":
                    i += 1
        if self.at(i) != "{":
            return self.skip_statement(i)

        if len(path) > 1:
            # Out-of-class definition of a nested class: Lock::Awaiter.
            owner = self.classes.get((namespace, tuple(path[:-1])))
            full = tuple(path)
            is_public = bool(owner and owner.public and
                             any(m.name == path[-1] for m in owner.members))
        else:
            full = (outer.path if outer else ()) + (path[0],)
            is_public = outer is None or (visible and outer.public)
            if visible and self.at(i) == "{":
                # Defined in place: a name of the enclosing scope (class or namespace).
                if outer is None or not any(m.name == path[0] for m in outer.members):
                    if path[0] not in PROTOCOL_MEMBERS:
                        self.add(namespace, outer, path[0], keyword, line)
        key = (namespace, full)
        info = self.classes.get(key)
        if info is None:
            info = ClassInfo(namespace, full, self.header)
            self.classes[key] = info
        info.public_bases.extend(bases)
        # Members of a promise_type or an awaiter are the coroutine protocol's business.
        internal = path[-1] in PROTOCOL_MEMBERS or path[-1].endswith("Awaiter")
        info.public = is_public and not internal and self.public_ns(namespace)
        default_access = "public" if keyword in ("struct", "union") else "private"
        i = self.parse_scope(i + 1, namespace, info, default_access)
        # Variables declared with the class (struct X {...} x;) are not used in our headers.
        return self.skip_statement(i) if self.at(i) != ";" else i + 1

    def parse_enum(self, i: int, namespace: str, cls: ClassInfo | None, visible: bool) -> int:
        line = self.t[i].line
        i += 1
        if self.at(i) in ("class", "struct"):
            i += 1
        i = self.skip_attributes(i)
        name = self.at(i) if re.match(r"[A-Za-z_]", self.at(i)) else ""
        if name:
            i += 1
        while self.at(i) not in ("{", ";", ""):
            i += 1
        if self.at(i) == ";":
            return i + 1
        end = self.skip_balanced(i, "{", "}")
        if name and visible:
            self.add(namespace, cls, name, "enum", line)
            enum_cls = ClassInfo(namespace, (cls.path if cls else ()) + (name,), self.header)
            enum_cls.public = (cls is None or cls.public) and self.public_ns(namespace)
            self.classes[(namespace, enum_cls.path)] = enum_cls
            # Enumerators: the first identifier of each comma-separated item.
            j = i + 1
            expect = True
            depth = 0
            while j < end - 1:
                s = self.at(j)
                if s in ("(", "{", "<"):
                    depth += 1
                elif s in (")", "}", ">"):
                    depth -= 1
                elif s == "," and depth == 0:
                    expect = True
                elif expect and re.match(r"[A-Za-z_]", s):
                    self.add(namespace, enum_cls, s, "enumerator", self.t[j].line)
                    expect = False
                j += 1
        return self.skip_statement(end)

    def parse_function_or_variable(self, i: int, namespace: str, cls: ClassInfo | None, visible: bool,
                                   friend: bool = False) -> int:
        """A member or namespace-scope declaration that is neither a class nor an alias."""
        j = i
        name = ""
        name_line = self.t[i].line if i < len(self.t) else 0
        kind = ""
        qualified = False
        while j < len(self.t):
            s = self.at(j)
            if s == "[" and self.at(j + 1) == "[":
                j = self.skip_balanced(j, "[", "]")
                continue
            if s in ("decltype", "noexcept", "alignas", "sizeof") and self.at(j + 1) == "(":
                j = self.skip_balanced(j + 1, "(", ")")
                continue
            if s == "requires":
                j = self.skip_requires(j + 1)
                continue
            if s == "<":
                j = self.skip_angles(j)
                continue
            if s == "operator":
                k = j + 1
                spelled = []
                if self.at(k) == "(":  # operator()
                    spelled = ["()"]
                    k += 2
                else:
                    while self.at(k) != "(" and k < len(self.t):
                        spelled.append(self.at(k))
                        k += 1
                op = "".join(spelled)
                name = "operator" + (" " + op if re.match(r"[A-Za-z_]", op) else op)
                name_line = self.t[j].line
                qualified = self.at(j - 1) == "::"
                kind = "operator"
                j = k
                break
            if s == "(":
                # A function pointer variable: void (*complete)(IoOperation*, long) = nullptr;
                if self.at(j + 1) in ("*", "&") and re.match(r"[A-Za-z_]", self.at(j + 2)) and self.at(j + 3) == ")":
                    name, name_line, kind = self.at(j + 2), self.t[j + 2].line, "variable"
                    break
                prev = self.at(j - 1) if j > i else ""
                if re.match(r"[A-Za-z_]", prev) and prev not in KEYWORDS_BEFORE_NAME:
                    name, name_line = prev, self.t[j - 1].line
                    qualified = j - 2 >= i and self.at(j - 2) == "::"
                    destructor = j - 2 >= i and self.at(j - 2) == "~"
                    if destructor:
                        kind = "destructor"
                    elif cls is not None and name == cls.path[-1]:
                        kind = "constructor"
                    else:
                        kind = "function"
                break
            if s in ("=", "{", ";", "[", ":", ","):
                # A variable (or a bit-field); its name is the last identifier before here.
                ids = [k for k in range(i, j) if re.match(r"[A-Za-z_]", self.at(k))
                       and self.at(k) not in KEYWORDS_BEFORE_NAME]
                if ids:
                    name, name_line, kind = self.at(ids[-1]), self.t[ids[-1]].line, "variable"
                    qualified = ids[-1] - 1 >= i and self.at(ids[-1] - 1) == "::"
                break
            if s == "}":
                return j
            j += 1

        end = self.skip_function_rest(j) if kind in ("function", "operator", "constructor", "destructor") \
            else self.skip_statement(j)
        if not name or qualified or not visible:
            return end
        if kind == "destructor" or name in PROTOCOL_MEMBERS:
            return end
        if kind == "constructor":
            params = self.params_of(j)
            if self.is_special_constructor(params, name):
                return end
            self.add(namespace, cls, name, "constructor", name_line)
            return end
        if kind == "operator" and name in ("operator=",):
            return end
        self.add(namespace, cls, name, "friend" if friend else kind, name_line)
        return end

    def params_of(self, j: int) -> list[Tok]:
        # j is at the `(` of the parameter list.
        end = self.skip_balanced(j, "(", ")")
        return self.t[j + 1:end - 1]

    @staticmethod
    def is_special_constructor(params: list[Tok], cls_name: str) -> bool:
        texts = [t.text for t in params]
        if not texts or texts == ["void"]:
            return True
        if texts[:3] == ["const", cls_name, "&"] and len(texts) <= 4:
            return True
        if texts[:2] == [cls_name, "&&"] and len(texts) <= 3:
            return True
        return False

    def skip_function_rest(self, j: int) -> int:
        """j is at the parameter list's `(`: skips the declarator's tail and any body."""
        if self.at(j) != "(":
            return self.skip_statement(j)
        j = self.skip_balanced(j, "(", ")")
        while j < len(self.t):
            s = self.at(j)
            if s == ";":
                return j + 1
            if s == "}":
                return j
            if s == "(":
                j = self.skip_balanced(j, "(", ")")
                continue
            if s == "<":
                j = self.skip_angles(j)
                continue
            if s == "requires":
                j = self.skip_requires(j + 1)
                continue
            if s == "=":  # = default; = delete; = 0;
                return self.skip_statement(j)
            if s == ":":  # a constructor's member initialisers, then the body
                j += 1
                while j < len(self.t):
                    s = self.at(j)
                    if s == "(":
                        j = self.skip_balanced(j, "(", ")")
                    elif s == "<":
                        j = self.skip_angles(j)
                    elif s == "{":
                        if re.match(r"[A-Za-z_>]", self.at(j - 1)) and self.at(j - 1) != "noexcept":
                            j = self.skip_balanced(j, "{", "}")  # a braced initialiser
                        else:
                            return self.skip_balanced(j, "{", "}")
                    else:
                        j += 1
                return j
            if s == "{":
                return self.skip_balanced(j, "{", "}")
            j += 1
        return j


def merge_detail_bases(classes: dict, names: list[Name]) -> None:
    """A public class deriving publicly from a detail:: class offers that class's public members
    as its own (corio::Queue<T> and detail::BasicQueue)."""
    by_simple: dict[str, list[ClassInfo]] = {}
    for (ns, path), info in classes.items():
        by_simple.setdefault(path[-1], []).append(info)
    for (ns, path), info in list(classes.items()):
        if not info.public:
            continue
        for base in info.public_bases:
            parts = base.split("::")
            if "detail" not in parts:
                continue  # a public base is documented on its own
            for cand in by_simple.get(parts[-1], []):
                if "detail" not in cand.namespace.split("::"):
                    continue
                for m in cand.members:
                    if m.kind in ("constructor",):
                        continue
                    names.append(Name(path, m.name, m.kind, m.line, info.namespace, info.header))


def public_names(header: Path) -> list[Name]:
    raw = header.read_text(encoding="utf-8")
    code = strip_comments_and_strings(raw)
    code, macros = preprocess(code)
    parser = HeaderParser(header.name, tokenize(code))
    parser.parse()
    names = list(parser.names)
    merge_detail_bases(parser.classes, names)
    for macro, line in macros:
        if not macro.endswith("_"):
            names.append(Name((), macro, "macro", line, "", header.name))
    # One entry per (scope, name): overloads share a name.
    seen: set[tuple] = set()
    unique: list[Name] = []
    for n in names:
        key = (n.namespace, n.scope, n.name, n.kind == "constructor")
        if key not in seen:
            seen.add(key)
            unique.append(n)
    return unique


def umbrella_includes(header: Path) -> list[tuple[str, int]]:
    out = []
    for lineno, line in enumerate(header.read_text(encoding="utf-8").split("\n"), start=1):
        m = re.match(r'\s*#\s*include\s+[<"](corio/[^>"]+)[>"]', line)
        if m:
            out.append((m.group(1), lineno))
    return out
