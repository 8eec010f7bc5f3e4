"""lua: Dovecot's push-notification-lua driver, running published scripts unchanged.

Per transaction, exactly as Dovecot (spec §2.2): the script's handlers are
looked up afresh; without `dovecot_lua_notify_begin_txn` an error is logged
and the transaction skipped; without any event handler nothing is called;
otherwise `begin_txn(user)` → one `dovecot_lua_notify_event_<name>(ctx,
event)` per event that has a handler → `end_txn(ctx, success)`.

What mailpush does differently, on purpose: scripts never block the server
(each call is a coroutine; `submit()` and the storage calls yield to the
event loop), calls are limited (instructions, memory, wall time), and a
script can ask for a retry (`mailpush.retry_later(reason)`) or a dead letter
(`mailpush.dead_letter(reason)`).

Failures: a Lua error in any call is logged with script, line and traceback,
and the transaction goes on and counts as delivered — Dovecot never retries,
and neither does mailpush on its own: the same script would fail the same
way, and handlers that already ran (an HTTP POST sent) would run twice. Only
the script knows whether its endpoint got the notification, so only the
script asks for a retry.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import PermanentDriverError, RetryableDriverError, SettingError
from ...events import EVENT_NAMES, PushEvent, PushTransaction
from ..base import DriverConfig, DriverServices, PushDriver
from ..http_tls import driver_ssl_context
from .event_tables import event_table, handler_name
from .options import LuaOptions, lua_options
from .runtime import check_syntax
from .script_state import (
    BEGIN_TXN,
    END_TXN,
    Handlers,
    LoadedScript,
    ScriptState,
    describe_event_call,
)
from .state_cache import StateCache

__all__ = ["LuaDriver", "load_script"]

log = logging.getLogger("mailpush.push.lua")

_HANDLERS = {name: handler_name(name) for name in EVENT_NAMES}
_HANDLER_KEYS = {name: function.encode() for name, function in _HANDLERS.items()}
_BEGIN_KEY = BEGIN_TXN.encode()
_END_KEY = END_TXN.encode()
_END_TRUE = f"{END_TXN}(ctx, true)"
_END_FALSE = f"{END_TXN}(ctx, false)"


@dataclass
class LuaTransaction:
    """What one transaction carries from begin_txn to end_txn."""

    state: ScriptState
    #: Whatever `dovecot_lua_notify_begin_txn` returned (a Lua value).
    context: Any
    user: Any
    handlers: Handlers
    #: The first retry / dead-letter request the script made.
    signal: tuple[str, str] | None = None


class LuaDriver(PushDriver):
    name = "lua"

    def __init__(self, config: DriverConfig, services: DriverServices) -> None:
        super().__init__(config, services)
        self.options: LuaOptions = lua_options(config, services.plugin_settings())
        self.script = load_script(self.options, config.where or None)
        self._tls: ssl.SSLContext = driver_ssl_context(config, services)
        self._states = StateCache(
            self.options.max_states, self._open_state, self.options.state_idle_timeout
        )

    async def start(self) -> None:
        log.info(
            "push: %s runs %s with Lua %s (limits per call: %s instructions, %gs;"
            " %s per user)",
            self.config.instance, self.script.path, self.options.version,
            self.options.max_instructions or "unlimited", self.options.call_timeout,
            f"{self.options.max_memory // (1024 * 1024)}M memory" if self.options.max_memory
            else "unlimited memory",
        )

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        state = await self._states.get(txn.user)
        if state.disabled is not None:
            return None
        handlers = state.handlers()
        if not handlers.begin_txn:
            log.error("%sMissing function %s", state.prefix, BEGIN_TXN)
            return None
        if not handlers.events:
            log.debug("%sNo event handlers found in script", state.prefix)
            return None
        user = state.new_user(txn)
        state.in_use += 1
        try:
            outcome = await state.call(_BEGIN_KEY, (user,), f"{BEGIN_TXN}({txn.user})")
        except BaseException:
            self._release(state)
            raise
        if not outcome.ok:
            self._release(state)
            if outcome.signal is not None:
                raise _signal_error(outcome.signal, f"{BEGIN_TXN}()")
            return None
        return LuaTransaction(state, outcome.value, user, handlers)

    async def process_event(self, state: object, event: PushEvent) -> None:
        assert isinstance(state, LuaTransaction)
        if event.name not in state.handlers.events:
            return
        script = state.state

        def what() -> str:
            return describe_event_call(_HANDLERS[event.name], event.name, event.mailbox,
                                       event.uid)

        runtime = script.runtime
        try:
            table = event_table(runtime.lua, runtime.events, state.user, event)
        except runtime.error as exc:
            script.exhausted = isinstance(exc, runtime.memory_error)
            log.error("%s%s failed: building the event table: %s", script.prefix, what(), exc)
            return
        outcome = await script.call(_HANDLER_KEYS[event.name], (state.context, table), what)
        if outcome.signal is not None and state.signal is None:
            state.signal = outcome.signal

    async def end_txn(self, state: object, success: bool) -> None:
        assert isinstance(state, LuaTransaction)
        script = state.state
        try:
            if state.handlers.end_txn or script.handlers().end_txn:
                what = _END_TRUE if success else _END_FALSE
                outcome = await script.call(_END_KEY, (state.context, success), what)
                if outcome.signal is not None and state.signal is None:
                    state.signal = outcome.signal
            else:
                log.error("%sMissing function %s", script.prefix, END_TXN)
        finally:
            self._release(script)
        if state.signal is not None:
            raise _signal_error(state.signal, "the script")

    async def close(self) -> None:
        await self._states.close()

    async def state_for(self, user: str) -> ScriptState:
        """The user's Lua state (opened on first use): for `mailpush lua check` and tests."""
        return await self._states.get(user)

    async def _open_state(self, user: str) -> ScriptState:
        return await ScriptState.open(self.script, user, self.options, self.services, self._tls)

    def _release(self, state: ScriptState) -> None:
        state.in_use -= 1
        if state.exhausted and state.in_use == 0:
            log.warning(
                "%sthe Lua state ran out of memory (lua_max_memory=%d bytes); it is closed and"
                " the next transaction starts a fresh one", state.prefix, self.options.max_memory,
            )
            self._states.discard(state)


def load_script(options: LuaOptions, where: str | None = None) -> LoadedScript:
    """Read the script and check its syntax: a broken script stops start-up."""
    path = options.script
    try:
        source = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SettingError(
            options.script_setting, f"cannot read the Lua script {path}: {reason}", where
        ) from None
    check_syntax(options.module, str(path), source)
    return LoadedScript(str(path), source)


def _signal_error(signal: tuple[str, str], who: str) -> Exception:
    kind, reason = signal
    message = f"{who} asked for {kind.replace('_', ' ')}: {reason}"
    if kind == "dead_letter":
        return PermanentDriverError(message)
    return RetryableDriverError(message)
