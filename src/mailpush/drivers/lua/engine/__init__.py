"""Running scripts: sandboxed Lua states, calls as coroutines, their limits, one state per user.

Nothing here knows what `dovecot.*` offers: `runtime.py` asks `api/library.py`
to build it into each new state, and `script_state.py` binds a user's host
functions (`api/host_api.py`, `api/host_io.py`). See the package docstring for
where each part lives.
"""
