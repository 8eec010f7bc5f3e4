"""`mailpush lua check` and `mailpush lua run`: try a push script without a mail server.

`check` compiles the script, runs its top-level code and reports which of
the functions Dovecot calls it defines. `run` feeds one made-up event through
the real driver — `script_init`, `begin_txn`, the handler, `end_txn`,
`script_deinit` — so HTTP requests really go out. Without a configuration the
script sees an empty mail store (every mailbox exists and is empty) and
metadata kept in memory; with `--config` it sees the real store and the
configured plugin settings, and runs with the configured lua driver's options
(`lua_path`, limits, `lua_settings`, …). `run` fails (exit 1) when the
script took no part, or when any call failed or hit a limit.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp

from ..drivers.base import DriverServices, StoreView
from ..drivers.driver_config import DriverConfig
from ..drivers.lua.api.event_tables import handler_name
from ..drivers.lua.driver import LuaDriver, LuaTransaction
from ..drivers.lua.engine.script_state import BEGIN_TXN, END_TXN
from ..errors import MailpushError
from ..events import (
    EVENT_NAMES,
    MAILBOX_EVENTS,
    EventName,
    MessageData,
    PushEvent,
    PushTransaction,
)
from ..store.models import MailboxStatus

__all__ = ["MemoryStoreView", "RunReport", "ScriptReport", "TryoutServices", "check_script",
           "driver_config", "make_event", "run_script"]

_FUNCTIONS = ("script_init", "script_deinit", BEGIN_TXN, END_TXN,
              *(handler_name(name) for name in EVENT_NAMES))


@dataclass(frozen=True, slots=True)
class ScriptReport:
    path: str
    version: str
    defined: tuple[str, ...]
    missing: tuple[str, ...]
    #: Problems a Dovecot-compatible run would log for every transaction.
    warnings: tuple[str, ...]
    #: Why the script could not be loaded for a user, if it could not.
    load_error: str | None = None


@dataclass(frozen=True, slots=True)
class RunReport:
    """How one `mailpush lua run` transaction went (the details are in the log)."""

    #: False: the script took no part (not loaded, no begin_txn, begin_txn failed).
    ran: bool
    #: The calls that failed or hit a limit, as the log names them.
    failed: tuple[str, ...] = ()
    #: Handler calls skipped because lua_txn_timeout had passed.
    skipped: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.ran and not self.failed and not self.skipped


class MemoryStoreView:
    """A mail store with empty mailboxes and in-memory METADATA, for trying scripts."""

    def __init__(self) -> None:
        self.metadata: dict[tuple[str, str | None, str], str] = {}

    async def status(self, user: str, mailbox: str) -> MailboxStatus:
        return MailboxStatus(mailbox, 0, 0, 0, 1, int(time.time()), 1, None, ())

    async def raw_message(self, user: str, mailbox: str, uid: int) -> bytes:
        raise MailpushError("lua run has no messages")

    async def get_metadata(self, user: str, mailbox: str | None, entry: str) -> str | None:
        return self.metadata.get((user, mailbox, entry))

    async def set_metadata(
        self, user: str, mailbox: str | None, entry: str, value: str | None
    ) -> None:
        if value is None:
            self.metadata.pop((user, mailbox, entry), None)
        else:
            self.metadata[(user, mailbox, entry)] = value

    async def list_metadata(
        self, user: str, mailbox: str | None, prefix: str = ""
    ) -> dict[str, str]:
        return {
            entry: value
            for (owner, box, entry), value in sorted(self.metadata.items())
            if owner == user and box == mailbox and entry.startswith(prefix)
        }

    async def claim_pushed_message_id(
        self, driver: str, user: str, message_id: str, owner: str, retention: float
    ) -> bool:
        return True


@dataclass
class TryoutServices:
    """DriverServices for one command run: given settings, a store, its own HTTP session."""

    store_view: StoreView
    plugin: Mapping[str, str] = field(default_factory=dict)
    ssl_client_ca_file: Path | None = None
    #: No dispatcher runs a tryout, so nothing bounds a whole transaction.
    push_timeout: float | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def store(self) -> StoreView:
        return self.store_view

    def user_settings(self, user: str) -> Mapping[str, str]:
        return dict(self.plugin)

    def plugin_settings(self) -> Mapping[str, str]:
        return dict(self.plugin)

    def http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def journal_requests(self, driver: str) -> TryoutServices:
        """A tryout has no outbox: failed requests are not kept (`http_resend` is inert)."""
        return self

    def request_journal(self, user: str) -> None:
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def driver_config(
    script: Path, version: str | None, configured: Sequence[DriverConfig] = ()
) -> DriverConfig:
    """`script` with the options of the configured lua driver that runs it (else the first).

    Without a configured lua driver: the defaults.
    """
    lua = [config for config in configured if config.driver == "lua"]
    base = next((config for config in lua if _runs(config, script)), lua[0] if lua else None)
    if base is None:
        options = {"file": str(script)}
        if version:
            options["lua_version"] = version
        return DriverConfig("lua", "lua", options, where="command line")
    options = {key: value for key, value in base.options.items()
               if key not in ("file", "lua_file")}
    options["lua_file" if base.syntax == "2.4" else "file"] = str(script)
    if version:
        options["lua_version"] = version
    return replace(base, options=options, where=f"{base.where or base.instance}, run with {script}")


def _runs(config: DriverConfig, script: Path) -> bool:
    named = config.options.get("lua_file") or config.options.get("file") or ""
    return bool(named.strip()) and Path(named.strip()).resolve() == script.resolve()


async def check_script(
    script: Path, version: str | None, services: DriverServices, user: str = "check"
) -> ScriptReport:
    """Compile (LuaScriptError if that fails), load for `user`, list the functions."""
    driver = LuaDriver(driver_config(script, version), services)
    try:
        state = await driver.state_for(user)
        defined = tuple(name for name in _FUNCTIONS if state.defines(name))
    finally:
        await driver.close()
    missing = tuple(name for name in _FUNCTIONS if name not in defined)
    handlers = [name for name in defined if name.startswith("dovecot_lua_notify_event_")]
    warnings = []
    if BEGIN_TXN not in defined:
        warnings.append(f"{BEGIN_TXN} is missing: every transaction logs an error and is skipped")
    elif not handlers:
        warnings.append("no dovecot_lua_notify_event_* handler: the script is never called")
    if END_TXN not in defined and handlers:
        warnings.append(f"{END_TXN} is missing: every transaction logs an error")
    return ScriptReport(
        str(script), driver.options.version, defined, missing, tuple(warnings), state.disabled
    )


async def run_script(
    script: Path,
    version: str | None,
    services: DriverServices,
    events: Sequence[PushEvent],
    user: str,
    service: str = "lmtp",
    configured: Sequence[DriverConfig] = (),
) -> RunReport:
    """Run one transaction with `events` through the script.

    `configured`: the configuration's drivers, whose lua driver options are used.
    """
    driver = LuaDriver(driver_config(script, version, configured), services)
    txn = PushTransaction(
        id=uuid.uuid4().hex, user=user, mailbox=events[0].mailbox if events else "INBOX",
        service=service, created=time.time(), events=tuple(events),
    )
    try:
        await driver.start()
        state = await driver.begin_txn(txn)
        if state is None:
            return RunReport(ran=False)
        assert isinstance(state, LuaTransaction)
        try:
            for event in txn.events:
                await driver.process_event(state, event)
        finally:
            await driver.end_txn(state, True)
        return RunReport(True, tuple(state.failed), tuple(state.skipped))
    finally:
        await driver.close()


def make_event(name: str, fields: Mapping[str, str]) -> PushEvent:
    """An event from `--event message_new --field subject=Hi …` (names as Dovecot spells them)."""
    event_name = _event_name(name)
    values = dict(fields)
    mailbox = values.pop("mailbox", "INBOX")
    if event_name in MAILBOX_EVENTS:
        old = values.pop("mailbox_old", None)
        _refuse_rest(values, event_name)
        return PushEvent(event_name, mailbox, mailbox_old=old)
    uid = int(values.pop("uid", "1"))
    uid_validity = int(values.pop("uid_validity", str(int(time.time()))))
    flags = tuple(_words(values.pop("flags", "")))
    keywords = tuple(_words(values.pop("keywords", "")))
    flags_old = tuple(_words(values.pop("flags_old", "")))
    keywords_old = tuple(_words(values.pop("keywords_old", "")))
    message = None
    if event_name in ("MessageNew", "MessageAppend"):
        message = MessageData(
            from_=values.pop("from", ""),
            to=values.pop("to", ""),
            from_address=values.pop("from_address", ""),
            from_display_name=values.pop("from_display_name", ""),
            to_address=values.pop("to_address", ""),
            to_display_name=values.pop("to_display_name", ""),
            subject=values.get("subject"),
            subject_raw=values.pop("subject", None),
            date=int(values.pop("date", "0")),
            tz=int(values.pop("tz", "0")),
            message_id=values.pop("message_id", None),
            snippet=values.pop("snippet", ""),
            size=0,
            has_calendar=False,
        )
    _refuse_rest(values, event_name)
    return PushEvent(
        event_name, mailbox, uid=uid, uid_validity=uid_validity, flags=flags,
        keywords=keywords, flags_old=flags_old, keywords_old=keywords_old, message=message,
    )


def _event_name(name: str) -> EventName:
    wanted = name.replace("_", "").lower()
    for known in EVENT_NAMES:
        if known.lower() == wanted:
            return known
    raise MailpushError(
        f"--event {name}: unknown event (known: "
        + ", ".join(handler_name(n).removeprefix("dovecot_lua_notify_event_") for n in EVENT_NAMES)
        + ")"
    )


def _refuse_rest(values: Mapping[str, str], event: str) -> None:
    if values:
        raise MailpushError(f"--field {', '.join(sorted(values))}: not a field of {event} events")


def _words(text: str) -> list[str]:
    return [word for word in text.replace(",", " ").split() if word]
