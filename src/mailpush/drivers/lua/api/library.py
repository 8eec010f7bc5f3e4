"""Builds the script-facing API of a new state from lib/*.lua: `dovecot`, `mailpush`, `socket.url`.

Each library file is a chunk that receives the modules it uses and returns
its own table, so the order here is the order of their dependencies. The
engine (`engine/runtime.py`) calls `install_api` once per state, after the
call machinery (`lib/calls.lua`) exists and before the sandbox closes what
scripts must not reach; it hands over `load`, which gives a file's compiled
chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .storage_constants import LUA_STORAGE_CONSTANTS

__all__ = ["ApiTables", "install_api"]


@dataclass(frozen=True, slots=True)
class ApiTables:
    """The library tables the engine and the driver call into."""

    #: lib/events.lua: the constructors of the event tables handlers receive.
    events: Any
    #: lib/storage.lua: `new_user`, the `mail_user` handed to begin_txn.
    storage: Any
    #: lib/socket_url.lua: also what `require "socket.url"` returns.
    socket_url: Any


def install_api(lua: Any, load: Callable[[str], Any], host: Any, calls: Any) -> ApiTables:
    """Set the globals `dovecot` and `mailpush` in `lua`.

    `host` is the Lua table of host functions (`HostApi.functions()`); `calls`
    is lib/calls.lua's module, through which the API yields for I/O.
    """
    events = load("events")()
    bits = load("bits")(events)
    log = load("log")(host)
    check_receiver = load("receiver")()
    http = load("http")(host, calls, check_receiver)
    storage = load("storage")(
        host, calls, bits, lua.table_from(LUA_STORAGE_CONSTANTS), check_receiver
    )
    dovecot, mailpush = load("dovecot")(host, calls, bits, log, http, storage)
    globals_ = lua.globals()
    globals_[b"dovecot"] = dovecot
    globals_[b"mailpush"] = mailpush
    return ApiTables(events, storage, load("socket_url")())
