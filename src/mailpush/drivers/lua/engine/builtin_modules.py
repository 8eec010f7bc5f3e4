"""The modules `require` finds in a script's state: built-ins first, then the system's.

Scripts written for Dovecot load LuaSocket (`socket.http`, `ltn12`, `mime`)
and lua-cjson, which are C modules: compiled against the system's Lua
library, they cannot be loaded into the Lua that lupa embeds. mailpush has its
own equivalents in `lib/` (`socket.lua`, `socket_http.lua`, `ltn12.lua`,
`mime.lua`, `cjson.lua`), preloaded under the usual names and built only when a
script requires them; `socket.http` and `socket.sleep` wait by yielding, as
`dovecot.http` does (see `api/host_io.py`). Pure-Lua modules (dkjson, rxi's
json.lua, luarocks' JSON.lua) load from the system's directories, found as
`module_search.py` describes. A module found nowhere gets an error naming
every place searched, why C modules cannot load, and the built-ins.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .module_search import c_module_templates, package_path

__all__ = ["BUILTIN_LIBRARY_FILES", "JSON_NULL", "install_modules"]

#: The library files behind the built-in modules (`lib/<name>.lua`).
BUILTIN_LIBRARY_FILES = ("ltn12", "socket", "socket_http", "mime", "cjson")


class _JsonNull:
    """`cjson.null`: a userdata, as lua-cjson's (a NULL light userdata), printed the same."""

    __slots__ = ()

    def __str__(self) -> str:
        return "userdata: (nil)"

    __repr__ = __str__


JSON_NULL = _JsonNull()


def install_modules(
    lua: Any,
    module_name: str,
    load: Callable[[str], Any],
    host: Any,
    calls: Any,
    socket_url: Any,
    extra_path: Sequence[str] = (),
) -> None:
    """Set `package.path` and preload the built-in modules into a new state.

    `load(name)` gives the compiled chunk of `lib/<name>.lua`; `host` and
    `calls` are the library's host table and calls module.
    """
    package = lua.globals()[b"package"]
    package[b"path"] = package_path(module_name, os.environ, extra_path).encode()
    templates = lua.table(*(template.encode() for template in c_module_templates(module_name)))
    load("modules")(host, calls, socket_url, _library(load), JSON_NULL, templates)


def _library(load: Callable[[str], Any]) -> Callable[[bytes], Any]:
    """The chunk of a built-in module's file, compiled when a script first requires it.

    Loading them all up front would double a state's memory (about 100 KB more
    per user) for modules most scripts never use.
    """
    names = {name.encode(): name for name in BUILTIN_LIBRARY_FILES}

    def library(name: bytes) -> Any:
        return load(names[name])

    return library
