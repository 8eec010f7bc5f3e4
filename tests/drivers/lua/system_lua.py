"""The system's Lua 5.4 library with its C modules (lua-cjson, LuaSocket), for comparisons.

Debian's `liblua5.4-0` and the modules `.ci/run` installs are driven through
ctypes — no interpreter package needed — so a test can run the same Lua
snippets under the real C modules and under mailpush's built-ins and compare
the results byte for byte. They run in a child process: the C modules need
the library's symbols loaded globally, and those would then take the place of
the Lua that lupa embeds in the test process itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

MULTIARCH = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
C_MODULES = Path(f"/usr/lib/{MULTIARCH}/lua/5.4")
LIBRARY = "liblua5.4.so.0"

_CHILD = r"""
import ctypes, json, sys
lib = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
lib.luaL_newstate.restype = ctypes.c_void_p
lib.luaL_openlibs.argtypes = [ctypes.c_void_p]
lib.luaL_loadstring.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.lua_pcallk.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                           ctypes.c_void_p, ctypes.c_void_p]
lib.lua_tolstring.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_size_t)]
lib.lua_tolstring.restype = ctypes.c_void_p
lib.lua_close.argtypes = [ctypes.c_void_p]
setup = ('package.cpath = "' + sys.argv[2] + '/?.so" ').encode()

def top(state):
    size = ctypes.c_size_t()
    pointer = lib.lua_tolstring(state, -1, ctypes.byref(size))
    return ctypes.string_at(pointer, size.value) if pointer else b"<nil>"

results = []
for chunk in json.load(sys.stdin):
    state = lib.luaL_newstate()
    lib.luaL_openlibs(state)
    ok = lib.luaL_loadstring(state, setup + chunk.encode("latin-1")) == 0
    ok = ok and lib.lua_pcallk(state, 0, 1, 0, None, None) == 0
    results.append([ok, top(state).decode("latin-1")])
    lib.lua_close(state)
json.dump(results, sys.stdout)
"""


class SystemLua:
    """Runs chunks, each in a fresh state of the system's liblua5.4."""

    def run_all(self, chunks: list[bytes]) -> list[bytes]:
        """Each chunk's one result as a string (`tostring` it in the chunk)."""
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, LIBRARY, str(C_MODULES)],
            input=json.dumps([chunk.decode("latin-1") for chunk in chunks]),
            capture_output=True, text=True, timeout=60, check=True,
        )
        results: list[bytes] = []
        for ok, value in json.loads(child.stdout):
            if not ok:
                raise AssertionError(f"the system's Lua failed: {value}")
            results.append(value.encode("latin-1"))
        return results

    def run(self, chunk: bytes) -> bytes:
        return self.run_all([chunk])[0]


def system_lua_with(*modules: str) -> SystemLua:
    """The system's Lua, or skip the test saying which package is missing."""
    for module in modules:
        if not (C_MODULES / module).exists():
            pytest.skip(f"{C_MODULES / module} is absent (Debian package lua-cjson/lua-socket)")
    found = subprocess.run(
        [sys.executable, "-c", f"import ctypes; ctypes.CDLL({LIBRARY!r})"], capture_output=True
    )
    if found.returncode != 0:
        pytest.skip(f"the system's Lua library {LIBRARY} is absent (Debian package liblua5.4-0)")
    return SystemLua()
