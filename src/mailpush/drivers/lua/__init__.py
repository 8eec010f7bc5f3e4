"""The lua push driver: Dovecot push-notification Lua scripts, run unchanged, without blocking.

Layout: `driver.py` (the PushDriver: calling protocol), `options.py`
(settings), `script_state.py` (one user's Lua state), `state_cache.py`
(bounded LRU of states), `call_runner.py` (a call as a coroutine, its I/O and
limits), `host_api.py` / `host_io.py` (what Lua may ask of Python, without and
with waiting), `http_requests.py` (`dovecot.http`), `event_tables.py`,
`var_expand.py`, `runtime.py` (creating sandboxed states), `tryout.py` (the
`mailpush lua` commands) and `lib/*.lua` (the Lua side: `dovecot`,
`socket.url`, the call machinery).
"""

from .driver import LuaDriver, load_script
from .options import LUA_VERSIONS, LuaOptions, lua_options

__all__ = ["LUA_VERSIONS", "LuaDriver", "LuaOptions", "load_script", "lua_options"]
