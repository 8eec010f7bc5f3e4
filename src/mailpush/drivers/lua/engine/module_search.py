"""Where `require` looks for pure-Lua modules, as the system's Lua of that version would.

Dovecot's Lua is the distribution's: `require "dkjson"` finds the file the
`lua-dkjson` package installed under `/usr/share/lua/5.x/`, a luarocks module
under `/usr/local/share/lua/5.x/`, and an admin's own directory through
`LUA_PATH_5_4` (or `LUA_PATH`), where `;;` stands for the default path. The
embedded Lua gets the same `package.path`, built here from the configured Lua
version (LuaJIT uses the 5.1 directories and reads only `LUA_PATH`), followed
by mailpush's `lua_path` option. The current directory (`./?.lua`, in Lua's
own default) is left out: a mail server's working directory says nothing
about where an admin keeps modules.

C modules (`.so`) cannot be loaded (see `builtin_modules.py`); their usual
directories are listed only to say, when a module is missing, that a C module
of that name exists on the system and why it cannot be used.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Mapping, Sequence

__all__ = ["c_module_templates", "default_lua_path", "lua_directory_version", "package_path"]

#: Debian's and Ubuntu's multiarch triplet (`x86_64-linux-gnu`), which C modules live under.
_MULTIARCH = sysconfig.get_config_var("MULTIARCH") or ""


def lua_directory_version(module_name: str) -> str:
    """`5.4` for `lua54`; LuaJIT shares the 5.1 directories."""
    if module_name.startswith("luajit"):
        return "5.1"
    digits = module_name.removeprefix("lua")
    return f"{digits[0]}.{digits[1:]}"


def default_lua_path(version: str) -> tuple[str, ...]:
    """The system's search path for pure-Lua modules of Lua `version` (`5.4`)."""
    templates: list[str] = []
    for root in ("/usr/local/share/lua", "/usr/local/lib/lua", "/usr/share/lua"):
        templates.extend((f"{root}/{version}/?.lua", f"{root}/{version}/?/init.lua"))
    return tuple(templates)


def package_path(
    module_name: str, environ: Mapping[str, str], extra: Sequence[str] = ()
) -> str:
    """`package.path` for a state of lupa module `module_name` (`lua54`).

    `environ` supplies `LUA_PATH_5_4`/`LUA_PATH` as the real interpreter reads
    them; `extra` (the `lua_path` option) comes last.
    """
    version = lua_directory_version(module_name)
    default = ";".join(default_lua_path(version))
    names = ["LUA_PATH"]
    if version != "5.1":
        names.insert(0, "LUA_PATH_" + version.replace(".", "_"))
    configured = next((environ[name] for name in names if name in environ), None)
    if configured is None:
        path = default
    else:
        # As Lua: ";;" anywhere means "the default path here".
        path = configured.replace(";;", ";\x01;").replace("\x01", default)
    entries = [entry for entry in path.split(";") if entry]
    entries.extend(entry for entry in extra if entry not in entries)
    return ";".join(entries)


def c_module_templates(module_name: str) -> tuple[str, ...]:
    """Where the system's Lua `version` keeps C modules (`cjson.so`, `socket/core.so`)."""
    version = lua_directory_version(module_name)
    templates = [f"/usr/local/lib/lua/{version}/?.so"]
    if _MULTIARCH:
        templates.append(f"/usr/lib/{_MULTIARCH}/lua/{version}/?.so")
    templates.append(f"/usr/lib/lua/{version}/?.so")
    return tuple(templates)
