"""The lua push driver: Dovecot push-notification Lua scripts, run unchanged, without blocking.

Where things are, by the question a maintainer asks:

- How does a push transaction become calls into the script? `driver.py` (the
  PushDriver: Dovecot's calling protocol, deadlines, retry / dead-letter
  requests); its settings are `options.py`.
- How does a script run safely? `engine/`: `runtime.py` (a sandboxed state of
  the configured Lua version, the library loaded into it), `call_runner.py`
  (one call as a coroutine, awaiting its I/O), `limits.py` (instructions, wall
  time, memory), `script_state.py` (one user's state), `state_cache.py` (the
  bounded LRU of states), `builtin_modules.py` and `module_search.py` (what
  `require` finds).
- What can a script call? `api/`: `library.py` (which lib/*.lua files make up
  `dovecot` and `mailpush`), `host_api.py` (Python functions Lua calls
  directly), `host_io.py` (the calls that wait: one table, `YIELDING_CALLS`),
  `http_requests.py` (`dovecot.http` and `socket.http` requests),
  `event_tables.py` (the tables handlers receive), `storage_constants.py`
  (`dovecot.storage`, defined once). `var_expand.py` is the user's
  %-variables (expanded by `mailpush.var_expand`); `lua_strings.py` how
  strings cross between Python and Lua.
- The Lua side of both is `lib/*.lua`: `calls.lua` and `sandbox.lua` (engine),
  `modules.lua` (`require`), the rest the API scripts see (`receiver.lua`:
  the `self` check every method of `http.lua` and `storage.lua` makes).

Dependencies point one way: `driver.py` → `engine/` → `api/` →
`lua_strings.py`, `var_expand.py`; nothing in `api/` imports `engine/`.

Adding a function to the API:

- Pure Lua (`dovecot.has_flag`): write it in the lib/*.lua file that builds its
  table (`dovecot.lua`, `storage.lua`, `http.lua`, …); test it in
  tests/drivers/lua/test_dovecot_api.py (`socket.*`, `ltn12`, `mime`, `cjson`:
  their own test_<module>.py there).
- Answered by Python at once, without waiting (`mail_user:plugin_getenv`): a
  method of `HostApi` in `api/host_api.py`, listed in `HostApi.functions()`,
  called as `host.<name>(...)` from the Lua wrapper; test it in
  test_dovecot_api.py.
- Waiting for I/O (`mailbox:status`, `submit`): an async `HostIO` method in
  `api/host_io.py` with its row in `YIELDING_CALLS`, reached by
  `calls.io("<kind>", ...)` from the Lua wrapper; test its results in
  test_dovecot_api.py, and that it never blocks other users in
  test_concurrency.py. tests/drivers/lua/test_package_layout.py checks that
  every kind lib/*.lua yields has its row.
"""

from .driver import LuaDriver, load_script
from .options import LUA_VERSIONS, LuaOptions, lua_options

__all__ = ["LUA_VERSIONS", "LuaDriver", "LuaOptions", "load_script", "lua_options"]
