"""The lua driver's layout holds: engine apart from API, one table of yielding calls,
`dovecot.storage` defined once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mailpush.drivers.lua.api.host_api import HostApi
from mailpush.drivers.lua.api.host_io import YIELDING_CALLS
from mailpush.drivers.lua.api.storage_constants import STORAGE_CONSTANTS
from mailpush.drivers.lua.engine.runtime import new_runtime
from mailpush.drivers.lua.var_expand import UserVariables

PACKAGE = Path(__file__).resolve().parents[3] / "src" / "mailpush" / "drivers" / "lua"
LIB = PACKAGE / "lib"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parents[2]).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports; `from . import x` imports `x` only."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in modules else target)
    return found & modules


def _package_graph() -> dict[str, set[str]]:
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(paths)) for name, path in paths.items()}


def test_the_api_never_imports_the_engine_or_the_driver() -> None:
    for name, imported in _package_graph().items():
        if name.startswith("mailpush.drivers.lua.api"):
            wrong = {m for m in imported if m.startswith(
                ("mailpush.drivers.lua.engine", "mailpush.drivers.lua.driver"))}
            assert not wrong, f"{name} imports {sorted(wrong)}"


def test_the_engine_never_imports_the_driver() -> None:
    for name, imported in _package_graph().items():
        if name.startswith("mailpush.drivers.lua.engine"):
            assert "mailpush.drivers.lua.driver" not in imported, name


def test_the_lua_package_has_no_import_cycle() -> None:
    graph = _package_graph()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path[path.index(name):], name))
        if name in done:
            return
        for imported in graph[name]:
            visit(imported, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())


def _yielded_kinds() -> set[str]:
    """Every kind lib/*.lua passes to `calls.io`, directly or through storage.lua's
    `io_or_raise(prefix, kind, ...)`."""
    kinds: set[str] = set()
    for path in LIB.glob("*.lua"):
        source = path.read_text()
        kinds.update(re.findall(r'calls\.io\(\s*"([a-z_]+)"', source))
        kinds.update(re.findall(r'(?:: "|"")\s*,\s*"([a-z_]+)"', source))
    return kinds


def test_every_call_the_library_yields_has_exactly_one_handler() -> None:
    kinds = _yielded_kinds()
    assert {"http", "socket_http", "sleep", "mailbox_status"} <= kinds
    assert kinds == {kind.decode() for kind in YIELDING_CALLS}


def test_the_lua_library_takes_dovecot_storage_from_python() -> None:
    assert re.search(r"\b(STATUS|MAILBOX)_[A-Z_]+\s*=", (LIB / "storage.lua").read_text()) is None
    api = HostApi("alice", dict, UserVariables("alice"), "lua: alice: ")
    runtime = new_runtime("lua54", api.functions())
    storage = runtime.globals[b"dovecot"][b"storage"]
    assert dict(storage.items()) == {
        name.encode(): value.encode() if isinstance(value, str) else value
        for name, value in STORAGE_CONSTANTS.items()
    }
