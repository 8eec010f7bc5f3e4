"""One user's Lua state for one lua driver instance, as Dovecot keeps one per mail user.

Opening it runs the script's top-level code and then `script_init`; closing it
runs `script_deinit`. Every call into it goes through `call()`, which
serialises calls (one Lua state cannot run two coroutines at once), applies
the limits and logs failures with the script's file, line and traceback —
a failing script never raises into the driver.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from ....events import EVENT_NAMES, PushTransaction
from ...base import DriverServices
from ..api.event_tables import handler_name
from ..api.host_api import HostApi
from ..api.host_io import HostIO
from ..lua_strings import lua_bytes
from ..options import LuaOptions
from ..var_expand import UserVariables, expand
from .call_runner import CallOutcome, run_call
from .limits import CallLimits, Deadline
from .runtime import ScriptRuntime, compile_error, full_paths, new_runtime

__all__ = [
    "BEGIN_TXN", "END_TXN", "Handlers", "LoadedScript", "ScriptState", "describe_event_call",
]

log = logging.getLogger(__name__)

BEGIN_TXN = "dovecot_lua_notify_begin_txn"
END_TXN = "dovecot_lua_notify_end_txn"
#: Bit i of `handlers()` is set when the handler of EVENT_NAMES[i] exists.
_HANDLER_NAMES = tuple(handler_name(name) for name in EVENT_NAMES)
_BEGIN_BIT = 1 << len(EVENT_NAMES)
_END_BIT = _BEGIN_BIT << 1


@dataclass(frozen=True, slots=True)
class LoadedScript:
    """The script as read (and syntax-checked) at start-up."""

    path: str
    source: bytes


@dataclass(frozen=True, slots=True)
class Handlers:
    """Which functions the script defines right now (looked up per transaction)."""

    events: frozenset[str]
    begin_txn: bool
    end_txn: bool


class ScriptState:
    """Create with `await ScriptState.open(...)`; check `disabled` before use."""

    def __init__(
        self,
        script: LoadedScript,
        user: str,
        options: LuaOptions,
        services: DriverServices,
        tls: ssl.SSLContext,
    ) -> None:
        self.script = script
        self.user = user
        self.options = options
        self._services = services
        settings = services.user_settings(user)
        self.variables = UserVariables(
            user=user,
            home=settings.get("home", ""),
            uid=_numeric(settings.get("uid"), os.getuid()),
            gid=_numeric(settings.get("gid"), os.getgid()),
        )
        self.prefix = f"lua: {user}: "
        self.api = HostApi(
            user, lambda: services.user_settings(user), self.variables, self.prefix,
            fallback=options.init_settings, response_max_size=options.http_response_max_size,
        )
        self.runtime: ScriptRuntime = new_runtime(
            options.module,
            self.api.functions(),
            max_memory=options.max_memory,
            package_path=options.package_path,
            limits=bool(options.max_instructions or options.call_timeout),
        )
        self.io = HostIO(user, self.api, services, tls, self.runtime.lua)
        self.limits = CallLimits.of(options.max_instructions, options.call_timeout)
        #: Why the driver does nothing for this user (script_init failed), or None.
        self.disabled: str | None = None
        #: When (time.monotonic()) it was disabled: the cache opens a new state later.
        self.disabled_at = 0.0
        #: Transactions skipped since the last log line saying so, and when that was.
        self.skipped = 0
        self.skip_logged_at = float("-inf")
        #: The state ran out of memory: drop it once the transaction is over.
        self.exhausted = False
        #: Leases (`StateCache.get` … `release`): a leased state is never closed.
        self.in_use = 0
        self._lock = asyncio.Lock()
        self._loaded = False
        self._names = self.runtime.lua.table(
            *(name.encode() for name in (*_HANDLER_NAMES, BEGIN_TXN, END_TXN))
        )

    @classmethod
    async def open(
        cls,
        script: LoadedScript,
        user: str,
        options: LuaOptions,
        services: DriverServices,
        tls: ssl.SSLContext,
    ) -> ScriptState:
        state = cls(script, user, options, services, tls)
        await state._load()
        return state

    # --- calls ---------------------------------------------------------------------------

    def defines(self, name: str) -> bool:
        """Whether the script defines the global function `name` (now)."""
        return bool(self.runtime.calls.is_function(name.encode()))

    def handlers(self) -> Handlers:
        return _handlers(int(self.runtime.calls.defined(self._names)))

    async def call(
        self,
        function: object,
        args: tuple[object, ...],
        what: str | Callable[[], str],
        deadline: Deadline | None = None,
    ) -> CallOutcome:
        """Run one call; failures are logged here (script, line, traceback) and returned.

        `what` names the call in log lines (a callable when naming it costs);
        `deadline` is the transaction's, when it comes before the call's own.
        """
        debug = log.isEnabledFor(logging.DEBUG)
        if debug:
            log.debug("%sCalling %s", self.prefix, what if isinstance(what, str) else what())
        async with self._lock:
            outcome = await run_call(
                self.runtime, self.io.perform, function, args, self.limits, deadline
            )
        if outcome.ok:
            if debug:
                log.debug("%sCalled %s", self.prefix, what if isinstance(what, str) else what())
            return outcome
        if outcome.out_of_memory:
            self.exhausted = True
        name = what if isinstance(what, str) else what()
        if outcome.error is not None:
            log.error("%s%s failed: %s", self.prefix, name,
                      full_paths(outcome.error, self.script.path))
        elif outcome.signal is not None:
            kind, reason = outcome.signal
            log.warning("%s%s asked for %s: %s", self.prefix, name, kind.replace("_", " "),
                        reason)
        return outcome

    def new_user(self, txn: PushTransaction) -> Any:
        """The `mail_user` object handed to begin_txn (and in every event's `user`)."""
        variables = self.variables
        home = variables.home.encode() if variables.home else None
        return self.runtime.storage.new_user(
            lua_bytes(self.user), home, int(variables.uid), int(variables.gid),
            txn.service.encode(), txn.id.encode(), int(txn.created),
        )

    async def close(self) -> None:
        """`script_deinit()`, if the script got as far as defining it."""
        if not self._loaded:
            return
        self._loaded = False
        if not self.defines("script_deinit"):
            return
        await self.call(b"script_deinit", (), "script_deinit()")

    # --- loading -------------------------------------------------------------------------

    async def _load(self) -> None:
        globals_ = self.runtime.globals
        loader = globals_[b"loadstring"] or globals_[b"load"]
        loaded = loader(self.script.source, b"@" + self.script.path.encode())
        chunk, message = loaded if isinstance(loaded, tuple) else (loaded, None)
        if chunk is None:
            self._disable(str(compile_error(self.script.path, message)))
            return
        outcome = await self.call(chunk, (), f"the top-level code of {self.script.path}")
        if not outcome.ok:
            self._disable(f"{self.script.path} failed while loading")
            return
        self._loaded = True
        if not self.defines("script_init"):
            return
        outcome = await self.call(b"script_init", (self._init_settings(),), "script_init()")
        if not outcome.ok:
            self._disable("script_init() failed")
            return
        result = outcome.value
        if isinstance(result, int | float) and not isinstance(result, bool) and result != 0:
            self._disable(f"script_init() returned {result:g} (return nothing or 0 on success)")

    def _init_settings(self) -> Any:
        settings: Mapping[str, str] = self.options.init_settings
        return self.runtime.lua.table_from({
            key.encode(): expand(value, self.variables, strict=False).encode()
            for key, value in settings.items()
        })

    def _disable(self, reason: str) -> None:
        self.disabled = reason
        self.disabled_at = time.monotonic()
        log.error("%sthe lua driver is disabled for this user: %s", self.prefix, reason)


@cache
def _handlers(mask: int) -> Handlers:
    events = frozenset(name for i, name in enumerate(EVENT_NAMES) if mask & (1 << i))
    return Handlers(events, bool(mask & _BEGIN_BIT), bool(mask & _END_BIT))


def _numeric(value: str | None, default: int) -> str:
    return value if value is not None and value.isdigit() else str(default)


def describe_event_call(function: str, event_name: str, mailbox: str, uid: int | None) -> str:
    """Dovecot's debug wording: `fn(ctx, event[name=MessageNew,mailbox=INBOX,uid=3])`."""
    details = f"name={event_name},mailbox={mailbox}"
    if uid is not None:
        details += f",uid={uid}"
    return f"{function}(ctx, event[{details}])"

