"""The house rules import-linter cannot state: no import circles between modules, and no module
so long that a newcomer cannot read it without being told why."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

import sorter

ROOT = Path(sorter.__file__).parent
MAX_LINES = 400
LONG_REASON = "Why it is long:"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back_through_others() -> None:
    """Lazy (function-level) imports count too: a circle hidden inside a function is still one."""
    graph = grimp.build_graph("sorter")
    modules = {m for m in graph.modules if m.startswith("sorter.")}
    edges = {m: {d for d in graph.find_modules_directly_imported_by(m) if d in modules and d != m} for m in modules}
    assert _cycles(edges) == []


def test_long_modules_say_why() -> None:
    unexplained = []
    for path in sorted(ROOT.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if LONG_REASON not in doc:
            unexplained.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert unexplained == [], f"over {MAX_LINES} lines without '{LONG_REASON}' in the docstring"
