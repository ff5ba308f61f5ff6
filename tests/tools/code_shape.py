#!/usr/bin/env python3
"""The shape of a crate's code: import cycles between its files, and its longest functions.

    python3 tests/tools/code_shape.py cycles  server/src     # groups of files that import each other
    python3 tests/tools/code_shape.py longest server/src 15  # the 15 longest functions
    python3 tests/tools/code_shape.py lines   server/src     # lines of Rust

A file imports another when it names a path into it: `use crate::api::ApiError`, `super::x`, a
`crate::...` path inline, or a child module's item (`consultations::create`). Cycles are the strongly connected components of that graph with more
than one file (Tarjan), so "one 15-file knot" reads as one line of 15 names. It reads source
text, not the compiler's view: a path in a comment or string counts too, which errs towards
reporting a cycle, never towards hiding one.
"""

import os
import re
import sys


def module_of(root, path):
    """`api/auth.rs` -> ("api", "auth"); `api/mod.rs` -> ("api",); `lib.rs` -> ()."""
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def use_paths(text):
    """Every path a `use` tree names, expanded: `use a::{b, c::d}` -> a::b, a::c::d."""
    out = []
    for m in re.finditer(r"^([ \t]*)(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text, re.M):
        tree = m.group(2).replace(" ", "").replace("\n", "")
        # An indented `use` sits in an inline module (`mod tests`), whose `super` is this file.
        if m.group(1) and tree.startswith("super::"):
            tree = "self::" + tree[len("super::"):]
        out.extend(expand(tree))
    return out


def expand(tree):
    if "{" not in tree:
        return [tree.split("as")[0] if "::" in tree else tree]
    head, rest = tree.split("{", 1)
    inner = rest[: rest.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    return [p for part in parts if part for p in expand(head + part)]


def resolve(path, here, modules):
    segs = [s for s in path.split("::") if s]
    if not segs:
        return None
    if segs[0] == "crate":
        segs = segs[1:]
    elif segs[0] == "super":
        base = list(here)
        while segs and segs[0] == "super":
            base = base[:-1]
            segs = segs[1:]
        segs = base + segs
    elif segs[0] == "self":
        segs = list(here) + segs[1:]
    else:
        return None
    # The longest prefix that is a file of the crate.
    for n in range(len(segs), -1, -1):
        if tuple(segs[:n]) in modules:
            return tuple(segs[:n])
    return None


def graph(root):
    files = {}
    for d, _, names in os.walk(root):
        for n in names:
            # `main.rs` beside `lib.rs` is another crate, which uses the library by its name.
            if n.endswith(".rs") and not (d == root and n == "main.rs" and "lib.rs" in names):
                p = os.path.join(d, n)
                files[module_of(root, p)] = strip_comments(open(p).read())
    edges = {m: set() for m in files}
    for m, text in files.items():
        paths = use_paths(text) + re.findall(r"\b(?:crate|super)(?:::\w+)+", text)
        # A path into a child module (`consultations::create` in a route table) is a use too;
        # `pub mod x;` alone is not.
        paths += [
            "self::" + c
            for c in re.findall(r"(?<![:\w])(\w+)::\w", text)
            if m + (c,) in files
        ]
        for p in paths:
            target = resolve(p, m, files)
            if target is not None and target != m:
                edges[m].add(target)
    return edges


def sccs(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def name(m):
    return "/".join(m) or "lib"


def cycles(root):
    comps = [sorted(c) for c in sccs(graph(root)) if len(c) > 1]
    comps.sort(key=len, reverse=True)
    print(f"{len(comps)} import cycle(s) among the files of {root}")
    for c in comps:
        print(f"  {len(c)} files: " + ", ".join(name(m) for m in c))
    return len(comps)


def longest(root, n):
    found = []
    for d, _, names in os.walk(root):
        for fname in names:
            if not fname.endswith(".rs"):
                continue
            p = os.path.join(d, fname)
            lines = open(p).read().split("\n")
            i = 0
            while i < len(lines):
                m = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:const\s+)?fn\s+(\w+)", lines[i])
                if not m:
                    i += 1
                    continue
                depth, started, j = 0, False, i
                while j < len(lines):
                    code = re.sub(r"//.*", "", lines[j])
                    code = re.sub(r'"(?:\\.|[^"\\])*"', '""', code)
                    depth += code.count("{") - code.count("}")
                    started = started or "{" in code
                    if started and depth <= 0:
                        break
                    if not started and code.rstrip().endswith(";"):
                        break
                    j += 1
                if started:
                    found.append((j - i + 1, f"{os.path.relpath(p, root)}:{i + 1}", m.group(1)))
                i += 1
    found.sort(reverse=True)
    for length, where, fn in found[:n]:
        print(f"  {length:4} lines  {fn}  ({where})")


def count_lines(root):
    total = 0
    for d, _, names in os.walk(root):
        for n in names:
            if n.endswith(".rs"):
                total += sum(1 for _ in open(os.path.join(d, n)))
    print(f"{total} lines of Rust under {root}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    cmd, root = sys.argv[1], sys.argv[2]
    if cmd == "cycles":
        cycles(root)
    elif cmd == "longest":
        longest(root, int(sys.argv[3]) if len(sys.argv) > 3 else 15)
    elif cmd == "lines":
        count_lines(root)
    else:
        print(__doc__)
        sys.exit(2)
