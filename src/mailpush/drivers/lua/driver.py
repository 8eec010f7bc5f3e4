"""lua: Dovecot's push-notification-lua driver, running published scripts unchanged.

Per transaction, exactly as Dovecot
(docs/dovecot-reference.md#per-transaction-calls): the script's handlers are
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

For the same reason a transaction must end before the dispatcher's
`mailpush_push_timeout` cancels it (and runs it again from begin_txn): it has
`lua_txn_timeout` per event it carries (at least one) for begin_txn and the
handlers — calls running then are aborted, handlers not yet called are
skipped and logged — and end_txn always runs, for a short grace if the time
is up. The transaction then counts as delivered, as after any other failure.
A message transaction of an operation group (MOVE, Sieve filing into two
folders: `PushTransaction.deferred`) begins with the group and runs its events
after the others' events: its time starts again when its own events begin,
so that the waits of the group's other transactions do not use it up.
Per event, because a script's work is per event even when it does it all in
end_txn (the simple example script of Dovecot's Lua push documentation POSTs
each message there: docs/dovecot-reference.md#http-requests-of-the-example-scripts),
and the dispatcher allows `mailpush_push_timeout` per event likewise. Within that,
`lua_call_timeout` counts only the time a call runs Lua, not the time it
waits for HTTP or the store (engine/call_runner.py).

The order of the calls is the framework's (the dispatcher interleaves the
transactions of one operation as Dovecot does). In a save transaction
(MessageNew, MessageAppend), `mailbox:status()` for its own mailbox reports
the status that transaction committed (`PushTransaction.status`, captured in
the outbox because this driver says `wants_mailbox_status`), as under
Dovecot, whose script runs inside the commit; anything else is read live.
"""

from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import PermanentDriverError, RetryableDriverError, SettingError
from ...events import EVENT_NAMES, PushEvent, PushTransaction
from ...store.models import MailboxStatus
from ..base import DriverServices, PushDriver
from ..driver_config import DriverConfig
from ..http_tls import driver_ssl_context
from .api.event_tables import event_table, handler_name
from .engine import state_cache
from .engine.limits import Deadline
from .engine.runtime import check_syntax
from .engine.script_state import (
    BEGIN_TXN,
    END_TXN,
    Handlers,
    LoadedScript,
    ScriptState,
    describe_event_call,
)
from .engine.state_cache import StateCache
from .options import LUA_OPTION_SCHEMA, LuaOptions, lua_options_for

__all__ = ["LuaDriver", "load_script"]

log = logging.getLogger(__name__)

_HANDLERS = {name: handler_name(name) for name in EVENT_NAMES}
_HANDLER_KEYS = {name: function.encode() for name, function in _HANDLERS.items()}
_BEGIN_KEY = BEGIN_TXN.encode()
_END_KEY = END_TXN.encode()
_END_TRUE = f"{END_TXN}(ctx, true)"
_END_FALSE = f"{END_TXN}(ctx, false)"
#: Skipped handler calls named in the log line; the rest are counted.
_SKIPPED_SHOWN = 10
#: Seconds between two "transaction skipped, driver disabled" lines of one user.
_SKIP_LOG_INTERVAL = 10.0


@dataclass
class LuaTransaction:
    """What one transaction carries from begin_txn to end_txn."""

    txn_id: str
    #: Leased from the cache; released by end_txn.
    state: ScriptState
    #: Whatever `dovecot_lua_notify_begin_txn` returned (a Lua value).
    context: Any
    user: Any
    handlers: Handlers
    #: lua_txn_timeout from begin_txn on; None = no limit.
    deadline: Deadline | None
    #: The first retry / dead-letter request the script made.
    signal: tuple[str, str] | None = None
    #: Handler calls not made because the deadline had passed.
    skipped: list[str] = field(default_factory=list)
    #: Calls that failed or hit a limit (already logged): `mailpush lua run` exits 1.
    failed: list[str] = field(default_factory=list)
    #: The status the transaction committed for its mailbox (what `status()` reports).
    status: MailboxStatus | None = None
    #: Seconds the transaction has (lua_txn_timeout per event), for the log.
    allowed: float = 0.0
    #: Events it carries (lua_txn_timeout is per event).
    events: int = 1
    #: A deferred transaction whose events have not begun: its deadline starts again
    #: with them (`LuaDriver._events_begin`).
    deferred: bool = False


class LuaDriver(PushDriver):
    name = "lua"
    option_schema = LUA_OPTION_SCHEMA
    wants_mailbox_status = True

    def __init__(self, config: DriverConfig, services: DriverServices) -> None:
        super().__init__(config, services)
        self.options: LuaOptions = lua_options_for(
            config, services.plugin_settings(), _push_timeout(services)
        )
        if self.options.http_resend:
            # Scripts' failed requests are journaled and sent again (at-least-once).
            self.services = services.journal_requests(config.instance)
        self.script = load_script(self.options, config.where or None)
        self._tls: ssl.SSLContext = driver_ssl_context(config, services)
        self._states = StateCache(
            self.options.max_states, self._open_state, self.options.state_idle_timeout,
            state_cache.DISABLED_RETRY,
        )
        #: Every transaction's deadline reads the same (made once: transactions are many).
        self._txn_deadline = Deadline.of(
            0.0, f"the transaction took longer than {self.options.txn_timeout:g}s"
            " (lua_txn_timeout)",
        )

    async def start(self) -> None:
        log.info(
            "%s runs %s with Lua %s (limits per call: %s instructions, %gs;"
            " %gs per transaction; %s per user)",
            self.config.instance, self.script.path, self.options.version,
            self.options.max_instructions or "unlimited", self.options.call_timeout,
            self.options.txn_timeout,
            f"{self.options.max_memory // (1024 * 1024)}M memory" if self.options.max_memory
            else "unlimited memory",
        )

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        deadline = self._deadline_for(len(txn.events))
        try:
            state = await self._states.get(txn.user)
        except Exception:
            log.exception("lua: %s: opening the Lua state failed; transaction %s skipped",
                          txn.user, txn.id)
            return None
        transaction: LuaTransaction | None = None
        try:
            state.io.committed_status = txn.status
            transaction = await self._begin(state, txn, deadline)
        finally:
            state.io.committed_status = None
            if transaction is None:
                self._states.release(state)
        return transaction

    def _events_begin(self, state: LuaTransaction) -> None:
        """A deferred transaction's time starts again when its events (or its end_txn)
        begin. Its begin_txn ran in the group's walk, and the group's other deferred
        transactions' events ran since: their waits must not use up its time."""
        if state.deferred:
            state.deferred = False
            if state.deadline is not None:
                state.deadline = self._deadline_for(state.events)

    def _deadline_for(self, count: int) -> Deadline:
        """lua_txn_timeout per event, at least one: the module docstring says why."""
        events = max(1, count)
        allowed = self.options.txn_timeout * events
        at = time.monotonic() + allowed
        model = self._txn_deadline
        if events == 1:
            return Deadline(at, model.reason, model.message)
        return Deadline.of(
            at, f"the transaction took longer than {allowed:g}s ({events} events ×"
            f" {self.options.txn_timeout:g}s, lua_txn_timeout)",
        )

    async def process_event(self, state: object, event: PushEvent) -> None:
        assert isinstance(state, LuaTransaction)
        self._events_begin(state)
        if event.name not in state.handlers.events:
            return
        script = state.state

        def what() -> str:
            return describe_event_call(_HANDLERS[event.name], event.name, event.mailbox,
                                       event.uid)

        if state.deadline is not None and state.deadline.passed():
            state.skipped.append(what())
            return
        runtime = script.runtime
        try:
            table = event_table(runtime.lua, runtime.events, state.user, event)
        except runtime.error as exc:
            script.exhausted = isinstance(exc, runtime.memory_error)
            log.error("%s%s failed: building the event table: %s", script.prefix, what(), exc)
            state.failed.append(what())
            return
        script.io.committed_status = state.status
        try:
            outcome = await script.call(
                _HANDLER_KEYS[event.name], (state.context, table), what, state.deadline
            )
        finally:
            script.io.committed_status = None
        if outcome.signal is not None and state.signal is None:
            state.signal = outcome.signal
        elif outcome.error is not None:
            state.failed.append(what())

    async def end_txn(self, state: object, success: bool) -> None:
        assert isinstance(state, LuaTransaction)
        self._events_begin(state)
        script = state.state
        try:
            if state.skipped:
                self._log_skipped(state)
            if state.handlers.end_txn or script.handlers().end_txn:
                what = _END_TRUE if success else _END_FALSE
                script.io.committed_status = state.status
                try:
                    outcome = await script.call(
                        _END_KEY, (state.context, success), what,
                        self._end_deadline(state.deadline),
                    )
                finally:
                    script.io.committed_status = None
                if outcome.signal is not None and state.signal is None:
                    state.signal = outcome.signal
                elif outcome.error is not None:
                    state.failed.append(what)
            else:
                log.error("%sMissing function %s", script.prefix, END_TXN)
        finally:
            self._states.release(script)
        if state.signal is not None:
            raise _signal_error(state.signal, "the script")

    async def close(self) -> None:
        await self._states.close()

    async def state_for(self, user: str) -> ScriptState:
        """The user's Lua state (opened on first use): for `mailpush lua check` and tests."""
        state = await self._states.get(user)
        self._states.release(state)
        return state

    async def _open_state(self, user: str) -> ScriptState:
        return await ScriptState.open(self.script, user, self.options, self.services, self._tls)

    async def _begin(
        self, state: ScriptState, txn: PushTransaction, deadline: Deadline
    ) -> LuaTransaction | None:
        """begin_txn, if the script is loaded and defines what Dovecot requires."""
        if state.disabled is not None:
            self._log_disabled(state, txn)
            return None
        handlers = state.handlers()
        if not handlers.begin_txn:
            log.error("%sMissing function %s", state.prefix, BEGIN_TXN)
            return None
        if not handlers.events:
            log.debug("%sNo event handlers found in script", state.prefix)
            return None
        if deadline.passed():
            log.warning("%stransaction %s skipped: loading the script took longer than %gs"
                        " (lua_txn_timeout)", state.prefix, txn.id, self.options.txn_timeout)
            return None
        runtime = state.runtime
        try:
            user = state.new_user(txn)
        except runtime.error as exc:
            state.exhausted = isinstance(exc, runtime.memory_error)
            log.error("%s%s(%s) failed: building the mail_user: %s", state.prefix, BEGIN_TXN,
                      txn.user, exc)
            return None
        outcome = await state.call(_BEGIN_KEY, (user,), f"{BEGIN_TXN}({txn.user})", deadline)
        if outcome.signal is not None:
            raise _signal_error(outcome.signal, f"{BEGIN_TXN}()")
        if not outcome.ok:
            return None
        return LuaTransaction(
            txn.id, state, outcome.value, user, handlers, deadline, status=txn.status,
            allowed=self.options.txn_timeout * max(1, len(txn.events)),
            events=len(txn.events), deferred=txn.deferred,
        )

    def _end_deadline(self, deadline: Deadline | None) -> Deadline | None:
        """end_txn always runs, even past the deadline: for up to `end_txn_grace` more."""
        if deadline is None:
            return None
        grace = self.options.end_txn_grace
        latest = time.monotonic() + grace
        if latest <= deadline.at:
            return deadline
        return Deadline.of(latest, f"{deadline.reason.removesuffix(')')}; end_txn gets"
                                   f" {grace:g}s more)")

    def _log_skipped(self, state: LuaTransaction) -> None:
        shown = ", ".join(state.skipped[:_SKIPPED_SHOWN])
        more = len(state.skipped) - _SKIPPED_SHOWN
        if more > 0:
            shown += f" and {more} more"
        log.error(
            "%stransaction %s took longer than %gs (lua_txn_timeout): %d handler call(s)"
            " skipped: %s; end_txn still runs and the transaction is not retried",
            state.state.prefix, state.txn_id, state.allowed, len(state.skipped), shown,
        )

    def _log_disabled(self, state: ScriptState, txn: PushTransaction) -> None:
        """Each skipped transaction is counted; a line says so every `_SKIP_LOG_INTERVAL`."""
        state.skipped += 1
        now = time.monotonic()
        if now - state.skip_logged_at < _SKIP_LOG_INTERVAL:
            return
        log.info(
            "%stransaction %s skipped (%d since the last such line): the lua driver is"
            " disabled for this user (%s); the script is loaded again %gs after it failed",
            state.prefix, txn.id, state.skipped, state.disabled, self._states.disabled_retry,
        )
        state.skipped = 0
        state.skip_logged_at = now


def _push_timeout(services: DriverServices) -> float | None:
    """mailpush_push_timeout, when the services tell it (the dispatcher applies it)."""
    value = services.push_timeout
    return value if value is not None and value > 0 else None


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
