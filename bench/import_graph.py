"""Print the imports between yt8mkit's packages (static, from the source's import statements).

Usage: python bench/import_graph.py [--functions N]
Each line "a -> b: n" says n import statements in package a name a module of package b
(top-level modules such as yt8mkit/rundir.py count as their own package). Imports inside
functions count too: a lazy import is still a dependency. Cycles between packages are listed
after the edges. With --functions N, also print the N longest functions (lines, name).
"""

from __future__ import annotations

import argparse
import ast
import itertools
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "yt8mkit"


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    mod = module_name(path)
    is_pkg = path.name == "__init__.py"
    found: list[str] = []
    for block in ast.walk(tree):  # annotations only, never imported at run time
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test):
            block.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("yt8mkit")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("yt8mkit"):
                found.append(name)
    return found


def edges() -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for path in sorted(ROOT.rglob("*.py")):
        src = package_of(module_name(path))
        for target in imports_of(path):
            dst = package_of(target) if target != "yt8mkit" else "(root)"
            if dst != src:
                counts[(src, dst)] += 1
    return counts


def cycles(counts: Counter[tuple[str, str]]) -> list[tuple[str, ...]]:
    graph: dict[str, set[str]] = {}
    for a, b in counts:
        graph.setdefault(a, set()).add(b)
    nodes = sorted(set(graph) | {b for _, b in counts})
    reach = {n: set() for n in nodes}
    for n in nodes:  # plain DFS per node: a dozen packages
        stack = list(graph.get(n, ()))
        while stack:
            m = stack.pop()
            if m not in reach[n]:
                reach[n].add(m)
                stack += graph.get(m, ())
    return [(a, b) for a, b in itertools.combinations(nodes, 2) if b in reach[a] and a in reach[b]]


def module_cycles() -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan), lazy imports counted."""
    graph: dict[str, set[str]] = {}
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    for name, path in paths.items():
        targets = set()
        for target in imports_of(path):
            # "from yt8mkit.data import store" names a package: count the package's module.
            while target not in paths and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in paths and target != name and paths[target].name != "__init__.py":
                targets.add(target)
        graph[name] = targets
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def longest_functions(n: int) -> list[tuple[int, str]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((node.end_lineno - node.lineno + 1, f"{module_name(path)}.{node.name}"))
    return sorted(out, reverse=True)[:n]


def main() -> None:
    global ROOT
    p = argparse.ArgumentParser()
    p.add_argument("--root", type=Path, default=ROOT, help="the yt8mkit folder to read")
    p.add_argument("--functions", type=int, default=0)
    args = p.parse_args()
    ROOT = args.root.resolve()
    counts = edges()
    for (a, b), n in sorted(counts.items()):
        print(f"{a} -> {b}: {n}")
    pairs = cycles(counts)
    print(f"mutually reachable package pairs (cycles): {len(pairs)}")
    for a, b in pairs:
        print(f"  {a} <-> {b}")
    groups = module_cycles()
    print(f"module cycles (lazy imports counted): {len(groups)}")
    for group in groups:
        print("  " + " <-> ".join(group))
    for lines, name in longest_functions(args.functions):
        print(f"{lines:5d}  {name}")


if __name__ == "__main__":
    main()
