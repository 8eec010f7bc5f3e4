"""The modules of `mailpush` import each other in one direction: the import graph has no cycle.

A cycle makes the import order matter and couples modules that should not
know each other (a connection and the commands it dispatches, a driver base
and the options it declares). The graph is read from the source with `ast`:
relative and absolute imports, imports inside functions and under
`TYPE_CHECKING` all count, and `from package import submodule` is an
import of the submodule, not of the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "mailpush"

ImportGraph = dict[str, set[str]]


def test_the_import_graph_of_mailpush_has_no_cycle() -> None:
    graph = import_graph(SOURCE_ROOT, PACKAGE)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_graph_holds_the_imports_of_the_real_modules() -> None:
    graph = import_graph(SOURCE_ROOT, PACKAGE)
    assert "mailpush.imap.commands" in graph["mailpush.imap.server"]
    # `from ..store import flags as F` is an import of the submodule `store.flags`.
    assert "mailpush.store.flags" in graph["mailpush.imap.mailbox_commands"]
    assert "mailpush.imap" in graph["mailpush.server"]


def test_find_cycle_reports_the_modules_around_a_cycle() -> None:
    graph: ImportGraph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    cycle = find_cycle(graph)
    assert cycle is not None
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from . import b", {"pkg.b"}),
        ("from .b import thing", {"pkg.b"}),
        ("from .. import top", {"top"}),
        ("import pkg.b", {"pkg.b"}),
        ("from pkg import b, missing", {"pkg.b", "pkg"}),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B",
            {"pkg.b"},
        ),
        ("def f():\n    from .b import thing", {"pkg.b"}),
    ],
)
def test_imports_are_resolved_to_modules(source: str, expected: set[str]) -> None:
    modules = {"top", "pkg", "pkg.a", "pkg.b"}
    assert imported_modules(source, "pkg.a", is_package=False, modules=modules) == expected


# --- the graph walk --------------------------------------------------------------------


def import_graph(root: Path, package: str) -> ImportGraph:
    """Each module of `package` under `root` to the modules of the package it imports."""
    paths: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        paths[".".join(parts)] = path
    modules = set(paths)
    return {
        name: imported_modules(
            path.read_text(encoding="utf-8"),
            name,
            is_package=path.name == "__init__.py",
            modules=modules,
        )
        for name, path in paths.items()
    }


def imported_modules(source: str, module: str, *, is_package: bool, modules: set[str]) -> set[str]:
    """The modules among `modules` that `module`'s source imports (itself excluded)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(_known_prefix(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, package)
            for alias in node.names:
                submodule = f"{base}.{alias.name}" if base else alias.name
                found.add(submodule if submodule in modules else _known_prefix(base, modules))
    found.discard(module)
    found.discard("")
    return found


def find_cycle(graph: ImportGraph) -> list[str] | None:
    """One cycle of `graph` as `[a, b, ..., a]`, or None; an iterative depth-first search."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start}
        pending = [iter(sorted(graph.get(start, ())))]
        while pending:
            following = next(pending[-1], None)
            if following is None:
                pending.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif following in on_path:
                return path[path.index(following) :] + [following]
            elif following not in done:
                path.append(following)
                on_path.add(following)
                pending.append(iter(sorted(graph.get(following, ()))))
    return None


def _resolve(node: ast.ImportFrom, package: str) -> str:
    """The absolute name `from <...> import` names."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    if node.module:
        base.append(node.module)
    return ".".join(base)


def _known_prefix(name: str, modules: set[str]) -> str:
    """`name`, or its longest prefix that is a module of ours ("" for other packages)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name
