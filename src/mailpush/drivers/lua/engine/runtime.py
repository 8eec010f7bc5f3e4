"""Lua states of the configured version, sandboxed, with mailpush's Lua library loaded.

lupa embeds every Lua version as its own module (`lupa.lua54`,
`lupa.luajit21`, …). A state is created with strings as bytes on both sides
(`encoding=None`: scripts handle arbitrary bytes, a payload need not be
UTF-8), without lupa's `python` module, and with no access to the attributes
of the few Python callables it is given: a script can call them, nothing
more. The standard library stays complete, as in Dovecot, except for the few
functions that would break the server (`os.exit`; `os.execute` and
`io.popen`, which wait for a child process with the whole server stopped;
reading stdin) or get past its limits: lib/sandbox.lua lists them (the debug
hook and upvalues, binary chunks, `package.loadlib`, `__gc`, LuaJIT's `ffi`
and `jit.attach`, `jit.on` while limits are on). C modules are not loaded,
because they would be built against another copy of Lua.

Memory: `lua_max_memory` holds while script code runs only (`limits.py`).

What stays blocking: the state runs on the server's event loop, and the
limits are checked between Lua instructions, so one long C function holds
everything up until it returns: a pattern with several quantifiers that
backtracks (`string.find(("a"):rep(3000), ".-.-.-b")` runs for hours), or
reading a big file (or a FIFO) with `io`. `string.rep` results are bounded.

The library itself is Lua, in `lib/`, loaded under chunk names starting with
`=mailpush/` so error messages and the limit hook can tell it from the script:
first the call machinery (lib/calls.lua), then the script-facing API
(`api/library.py`), the modules `require` gives, and last the sandbox.
`require` finds mailpush's equivalents of the C modules scripts use, then the
system's pure-Lua modules (`builtin_modules.py`, `module_search.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import import_module, resources
from types import ModuleType
from typing import Any

from ....errors import LuaScriptError, SettingError
from ..api.library import install_api
from .builtin_modules import install_modules
from .limits import UNLIMITED_STRING_MAX, MemoryBudget

__all__ = ["ScriptRuntime", "check_syntax", "full_paths", "lua_module", "new_runtime"]

#: The package whose `lib/` holds the Lua library (engine and API files alike).
_LIBRARY_PACKAGE = __name__.rsplit(".", 2)[0]

_SANDBOX = b"""
local error = error
os.exit = function()
  error("os.exit() would stop the whole mail server; it is disabled in mailpush", 2)
end
os.execute = function()
  error("os.execute() would stop the whole mail server while the command runs; it is"
    .. " disabled in mailpush (send an HTTP request with dovecot.http instead)", 2)
end
io.popen = function()
  error("io.popen() would stop the whole mail server while the command runs; it is"
    .. " disabled in mailpush (send an HTTP request with dovecot.http instead)", 2)
end
package.cpath = ""
"""

#: LuaJIT with limits: compiled code runs no count hook, so the JIT stays off.
_JIT_OFF = b"""
local error = error
jit.off()
jit.on = function()
  error("jit.on() is not available: compiled code would escape mailpush's limits"
    .. " (lua_max_instructions, lua_call_timeout, lua_txn_timeout)", 2)
end
"""


@dataclass(frozen=True, slots=True)
class ScriptRuntime:
    """One Lua state and the library tables Python calls into."""

    lua: Any
    globals: Any
    calls: Any
    events: Any
    storage: Any
    #: This Lua version's `LuaError` and `LuaMemoryError` classes.
    error: type[Exception]
    memory_error: type[Exception]
    memory: MemoryBudget


def lua_module(module_name: str) -> ModuleType:
    """The lupa module embedding one Lua version (`lua54`)."""
    try:
        return import_module(f"lupa.{module_name}")
    except ImportError as exc:
        raise SettingError(
            "lua_version", f"this installation's lupa has no {module_name} ({exc})"
        ) from None


def new_runtime(
    module_name: str,
    host: Mapping[bytes, Callable[..., Any]],
    *,
    max_memory: int = 0,
    package_path: Sequence[str] = (),
    limits: bool = True,
) -> ScriptRuntime:
    """A fresh state with `dovecot`, `mailpush` and `socket.url` ready for a script.

    `host` holds the Python callables the library uses (see `api/host_api.py`).
    With `limits`, LuaJIT's compiler is switched off: compiled code does not run
    the instruction-count hook the limits rely on.
    """
    module = lua_module(module_name)
    lua = module.LuaRuntime(
        encoding=None,
        unpack_returned_tuples=True,
        register_eval=False,
        register_builtins=False,
        attribute_filter=_no_attributes,
        max_memory=max_memory or None,
    )
    memory = MemoryBudget(lua, max_memory)
    memory.lift()
    globals_ = lua.globals()
    globals_[b"python"] = None
    globals_[b"package"][b"loaded"][b"python"] = None
    lua.execute(_SANDBOX)
    if limits and module_name.startswith("luajit"):
        lua.execute(_JIT_OFF)
    functions = dict(host)
    if memory.limited:
        functions[b"memory_enforce"] = memory.enforce
        functions[b"memory_suspend"] = memory.suspend
    host_table = lua.table_from(functions)
    load = _loader(globals_, module_name)
    calls = load("calls")(host_table)
    api = install_api(lua, load, host_table, calls)
    # socket, socket.http, ltn12, mime, cjson, ... and the system's package.path.
    install_modules(lua, module_name, load, host_table, calls, api.socket_url, package_path)
    # Last: it closes what the library above took and scripts must not reach.
    load("sandbox")(host_table, max_memory or UNLIMITED_STRING_MAX)
    return ScriptRuntime(
        lua, globals_, calls, api.events, api.storage, module.LuaError, module.LuaMemoryError,
        memory,
    )


def check_syntax(module_name: str, path: str, source: bytes) -> None:
    """Raise LuaScriptError naming file and line if `source` does not compile."""
    module = lua_module(module_name)
    lua = module.LuaRuntime(encoding=None, register_eval=False, register_builtins=False)
    globals_ = lua.globals()
    loader = globals_[b"loadstring"] or globals_[b"load"]
    chunk, message = _pair(loader(source, b"@" + path.encode()))
    if chunk is None:
        raise _script_error(path, _text(message))


def compile_error(path: str, message: bytes | str) -> LuaScriptError:
    """The LuaScriptError for a `load` error message (`file:line: reason`)."""
    return _script_error(path, _text(message))


def full_paths(message: str, path: str) -> str:
    """`message` with Lua's shortened `...end/of/script.lua` restored to `path`.

    Lua cuts chunk names to about 60 characters in messages and tracebacks;
    an admin needs the whole file name.
    """
    if "..." not in message:
        return message

    def restore(match: re.Match[str]) -> str:
        tail = match.group(1)
        return path if tail and path.endswith(tail) else match.group(0)

    return re.sub(r"\.\.\.([^\s:'\"]+)", restore, message)


def _script_error(path: str, message: str) -> LuaScriptError:
    message = full_paths(message, path)
    match = re.match(r"^(.*?):(\d+): (.*)$", message, re.DOTALL)
    if match is None:
        return LuaScriptError(path, 0, message)
    return LuaScriptError(path, int(match.group(2)), match.group(3))


@cache
def _library_source(name: str) -> bytes:
    return resources.files(_LIBRARY_PACKAGE).joinpath("lib", f"{name}.lua").read_bytes()


@cache
def _library_bytecode(module_name: str, name: str) -> bytes:
    """The library file compiled once per Lua version: a state then loads it ~10x faster."""
    lua = lua_module(module_name).LuaRuntime(encoding=None)
    globals_ = lua.globals()
    compile_chunk = globals_[b"loadstring"] or globals_[b"load"]
    chunk, message = _pair(compile_chunk(_library_source(name), _chunk_name(name)))
    if chunk is None:
        raise RuntimeError(f"mailpush's Lua library {name}.lua: {_text(message)}")
    dumped: bytes = globals_[b"string"][b"dump"](chunk)
    return dumped


def _chunk_name(name: str) -> bytes:
    return f"=mailpush/{name}.lua".encode()


def _loader(globals_: Any, module_name: str) -> Callable[[str], Any]:
    compile_chunk = globals_[b"loadstring"] or globals_[b"load"]

    def load(name: str) -> Any:
        bytecode = _library_bytecode(module_name, name)
        chunk, message = _pair(compile_chunk(bytecode, _chunk_name(name)))
        if chunk is None:
            raise RuntimeError(f"mailpush's Lua library {name}.lua: {_text(message)}")
        return chunk

    return load


def _pair(result: Any) -> tuple[Any, Any]:
    """`load`'s results: lupa gives a lone value for one result, a tuple for several."""
    if isinstance(result, tuple):
        return result[0], result[1] if len(result) > 1 else None
    return result, None


def _no_attributes(obj: object, name: object, is_setting: bool) -> object:
    raise AttributeError("Python attributes are not available to Lua scripts")


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
