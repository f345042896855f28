#!/usr/bin/env python3
"""Import circles between the modules of a Rust crate: which module files use each other,
directly or round a loop. Exits 1 (and lists each circle) when there is one.

usage: scripts/import-cycles.py ROOT [ROOT ...]    e.g. scripts/import-cycles.py src load/src
(its own tests: python3 -m unittest discover -s scripts -p 'test_*.py'; both run in make lint)

A module is a file (`a/b.rs`, or `a/b/mod.rs` for `a::b`); ROOT/lib.rs or ROOT/main.rs is the
crate root. A module uses another when a path in its code names it or an item in it:
`crate::a::b::Item`, `super::Item`, `self::c::Item`, in `use` lines and in code alike; the
path is resolved to the deepest module file it reaches. A `pub use` re-export is not a use by
itself (a parent listing what its children offer depends on nothing), but the module's own
code naming what it re-exports is. Not counted: `mod` lines, paths in comments and strings,
and a module's `#[cfg(test)] mod tests` (tests may reach anywhere).
"""

import re
import sys
from pathlib import Path


def module_files(root: Path) -> dict[tuple[str, ...], Path]:
    """Every module of the crate at `root`, by its path from the crate root."""
    modules = {}
    for file in sorted(root.rglob("*.rs")):
        parts = list(file.relative_to(root).with_suffix("").parts)
        # A crate with a library has its binary beside it: the binary uses the library by
        # the crate's name, from outside, so it is not one of the library's modules.
        if parts == ["main"] and (root / "lib.rs").exists():
            continue
        if parts in (["lib"], ["main"]):
            parts = []
        elif parts[-1] == "mod":
            parts = parts[:-1]
        modules[tuple(parts)] = file
    return modules


REEXPORT = re.compile(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]*);")


def code_of(text: str) -> tuple[str, list[list[str]]]:
    """The text without comments, string literals, test modules and re-exports; and the paths
    the re-exports name."""
    # A module's tests, to the end of the file (they come last, by convention here).
    text = re.split(r"#\[cfg\(test\)\]\s*mod tests\b", text)[0]
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    # An inline `mod x { ... }` is part of its file here: its `super::` is the file's `self::`.
    out, at = [], 0
    for start in re.finditer(r"\bmod\s+\w+\s*\{", text):
        if start.start() < at:
            continue
        depth, end = 0, len(text)
        for i in range(start.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                end = i
                break
        out.append(text[at : start.end()])
        out.append(re.sub(r"\bsuper::", "self::", text[start.end() : end]))
        at = end
    text = "".join(out) + text[at:]
    reexports = []
    for statement in REEXPORT.findall(text):
        reexports.extend(spread(re.sub(r"\s+", "", statement)))
    return REEXPORT.sub("", text), reexports


def paths_in(code: str, children: set[str]) -> list[list[str]]:
    """Every `crate::`, `super::` and `self::` path, and every path that starts with one of the
    module's own child modules (`child::Item`), with `use` groups spread out."""
    found = []
    for statement in re.findall(r"\buse\s+([^;]*);", code):
        found.extend(spread(re.sub(r"\s+", "", statement)))
    code = re.sub(r"\buse\s+[^;]*;", "", code)
    for path in re.findall(r"(?<![:\w])[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)+", code):
        found.append(path.split("::"))
    out = []
    for p in found:
        if p and p[0] in ("crate", "super", "self"):
            out.append(p)
        elif p and p[0] in children:
            out.append(["self"] + p)
    return out


def spread(tree: str) -> list[list[str]]:
    """`a::{b, c::{d}}` as [[a, b], [a, c, d]]."""
    if "{" not in tree:
        return [tree.split(" as ")[0].split("::")]
    head, _, rest = tree.partition("{")
    body = rest[: rest.rfind("}")]
    prefix = [p for p in head.split("::") if p]
    parts, depth, current = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        current += ch
    parts.append(current)
    out = []
    for part in filter(None, parts):
        out.extend(prefix + sub for sub in spread(part))
    return out


def resolve(path, here, modules, reexports, depth=0):
    """The module file a path reaches from module `here`, or None when it leaves the crate. An
    item a module re-exports is followed to the module that defines it, so naming
    `crate::a::Item` where `a` only re-exports it from `a::b` is a use of `a::b`."""
    at = list(here)
    start = 0
    if path[0] == "crate":
        at, start = [], 1
    while start < len(path) and path[start] in ("super", "self"):
        if path[start] == "super":
            at = at[:-1]
        start += 1
    rest = path[start:]
    while rest and tuple(at + [rest[0]]) in modules:
        at.append(rest.pop(0))
    reached = tuple(at)
    if reached not in modules:
        return None
    if rest and depth < 8:
        source = reexports.get(reached, {}).get(rest[0])
        if source is not None:
            return resolve(source + rest[1:], reached, modules, reexports, depth + 1)
    return reached


def circles(edges):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def main(roots):
    found = False
    for root in map(Path, roots):
        modules = module_files(root)
        parsed = {name: code_of(file.read_text()) for name, file in modules.items()}
        # What each module re-exports, by the name it is known by there.
        reexports = {
            name: {path[-1]: path for path in paths if path}
            for name, (_, paths) in parsed.items()
        }
        edges = {}
        for name, file in modules.items():
            code, reexports_here = parsed[name]
            children = {m[-1] for m in modules if len(m) == len(name) + 1 and m[:-1] == name}
            paths = paths_in(code, children)
            # What the module's own code names of what it re-exports (`pub use self::a::B;`
            # and then `B::new()`) it uses.
            words = set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", code))
            for path in reexports_here:
                if path[-1] in words:
                    paths.append(path if path[0] in ("crate", "super", "self") else ["self"] + path)
            targets = set()
            for path in paths:
                target = resolve(path, name, modules, reexports)
                if target is not None and target != name:
                    targets.add(target)
            edges[name] = targets
        for circle in circles(edges):
            found = True
            shown = [str(modules[m]) for m in circle]
            print(f"import circle in {root}: " + " <-> ".join(shown))
            for a in circle:
                for b in sorted(edges[a] & set(circle)):
                    print(f"    {modules[a].relative_to(root)} uses {modules[b].relative_to(root)}")
    if not found:
        print(f"no import circles in {', '.join(roots)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["src"]))
