"""The lua driver's options, read from either configuration syntax and checked at start-up.

2.3: `push_notification_driver = lua:file=/etc/mailpush/push.lua lua_version=5.3`
(the plugin setting `push_notification_lua_script_file` overrides `file=` as in
Dovecot 2.3; `mail_lua_script` is the fallback when neither is set).
2.4: `push_notification lua { lua_file = /etc/mailpush/push.lua  lua_settings { k = v } }`.

Everything beyond the script is mailpush's own: the Lua version, extra
`package.path` entries, the per-call limits and the transaction's deadline.
Their defaults are chosen so a typical script never meets them while a
runaway one is stopped in well under a second of CPU.

Each option is declared once below (`LUA_OPTION_SCHEMA`): the reading here,
the unknown-option warning and docs/drivers/lua.md all come from it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from ...config import parse_duration, parse_size
from ...config.schema import SettingType
from ...errors import InvalidValueError
from ..driver_config import DriverConfig
from ..driver_options import DriverOptions
from ..option_schema import DriverOptionSchema, declare_option
from ..shared_options import RETRY_OPTIONS, SSL_CLIENT_CA_FILE

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_TXN_TIMEOUT",
    "DEFAULT_MAX_INSTRUCTIONS",
    "DEFAULT_MAX_MEMORY",
    "DEFAULT_MAX_STATES",
    "DEFAULT_STATE_IDLE_TIMEOUT",
    "DEFAULT_VERSION",
    "LUA_OPTION_SCHEMA",
    "LUA_VERSIONS",
    "LuaOptions",
    "lua_options",
    "lua_options_for",
]

log = logging.getLogger(__name__)

#: `lua_version` values → the lupa module that embeds that Lua.
LUA_VERSIONS: Mapping[str, str] = {
    "5.1": "lua51",
    "5.2": "lua52",
    "5.3": "lua53",
    "5.4": "lua54",
    "5.5": "lua55",
    "luajit": "luajit21",
    "luajit2.1": "luajit21",
    "luajit2.0": "luajit20",
}
LUA_FILE = declare_option(
    "lua_file",
    SettingType.PATH,
    "",
    "The push script (`file` in the 2.3 driver value). In 2.3 the plugin setting "
    "`push_notification_lua_script_file` replaces it, as in Dovecot.",
    aliases=("file",),
    default_doc="the plugin setting `mail_lua_script`",
)
LUA_VERSION = declare_option(
    "lua_version",
    SettingType.CHOICE,
    "5.4",
    "The Lua the script runs on; `luajit` is LuaJIT 2.1.",
    choices=tuple(LUA_VERSIONS),
)
LUA_PATH = declare_option(
    "lua_path",
    SettingType.STRING,
    "",
    "Extra `package.path` entries, searched after the system's module directories and "
    "`LUA_PATH`, separated by `;`: a directory (`/etc/mailpush/lua` stands for "
    "`.../?.lua` and `.../?/init.lua`) or a template holding `?`.",
)
LUA_MAX_INSTRUCTIONS = declare_option(
    "lua_max_instructions",
    SettingType.LIMIT,
    "10000000",
    "Lua instructions one call (script_init, begin_txn, a handler, end_txn) may run; "
    "`0` is no limit.",
    maximum=10**12,
)
LUA_MAX_MEMORY = declare_option(
    "lua_max_memory",
    SettingType.SIZE,
    "64M",
    "Memory of one user's Lua state, at least `1M`; `0` is no limit. Never enforced on "
    "LuaJIT, whose 64-bit build allocates its own memory.",
)
LUA_CALL_TIMEOUT = declare_option(
    "lua_call_timeout",
    SettingType.DURATION,
    "20s",
    "Time one call may spend running Lua. Inside a transaction, waiting for HTTP or the "
    "store does not count (the HTTP timeouts and `lua_txn_timeout` bound that); in "
    "script_init and script_deinit it does.",
)
LUA_TXN_TIMEOUT = declare_option(
    "lua_txn_timeout",
    SettingType.DURATION,
    "25s",
    "Time per event of a transaction (at least one) for begin_txn and the handlers; "
    "end_txn always runs, for up to a tenth of this more (2s at most). Unset, it is 5/6 "
    "of `mailpush_push_timeout` when that is shorter. Keep it below that setting, or a "
    "transaction is cancelled and run again, sending its requests twice.",
)
LUA_MAX_STATES = declare_option(
    "lua_max_states",
    SettingType.COUNT,
    "1000",
    "Lua states kept, one per user; the least recently used is closed first.",
    minimum=1,
    maximum=10**7,
)
LUA_STATE_IDLE_TIMEOUT = declare_option(
    "lua_state_idle_timeout",
    SettingType.DURATION,
    "10min",
    "A user's state unused this long is closed (script_deinit runs).",
)
HTTP_RESEND = declare_option(
    "http_resend",
    SettingType.BOOL,
    "no",
    "`yes`: a `dovecot.http` request that fails (a 9xxx code or a 5xx) is kept in the "
    "outbox and sent again by mailpush, within the retry options below.",
)
LUA_HTTP_RESPONSE_MAX_SIZE = declare_option(
    "lua_http_response_max_size",
    SettingType.SIZE,
    "1M",
    "The largest HTTP response payload a script gets; a larger one is not read (the "
    "connection is closed) and the script sees status 9006, lib-http's broken payload.",
)

LUA_OPTION_SCHEMA = DriverOptionSchema(
    "lua",
    "Runs Dovecot push-notification Lua scripts unchanged: the script's `dovecot_lua_*` "
    "hooks are called for each transaction and event, in a sandboxed Lua state kept per "
    "user, while its HTTP requests and store lookups wait without blocking the server. "
    "Calls, transactions and memory are bounded, so a runaway script is stopped.",
    (
        LUA_FILE, LUA_VERSION, LUA_PATH, LUA_MAX_INSTRUCTIONS, LUA_MAX_MEMORY,
        LUA_CALL_TIMEOUT, LUA_TXN_TIMEOUT, LUA_MAX_STATES, LUA_STATE_IDLE_TIMEOUT,
        SSL_CLIENT_CA_FILE, HTTP_RESEND, LUA_HTTP_RESPONSE_MAX_SIZE,
        *RETRY_OPTIONS,
    ),
)

DEFAULT_VERSION = LUA_VERSION.default
#: Per call (script_init, begin_txn, each handler, end_txn).
DEFAULT_MAX_INSTRUCTIONS = int(LUA_MAX_INSTRUCTIONS.default)
#: Per Lua state, i.e. per user.
DEFAULT_MAX_MEMORY = parse_size(LUA_MAX_MEMORY.default)
#: Per call, the time it runs Lua (inside a transaction its waits for HTTP and the
#: store do not count: call_runner.py). Below mailpush_push_timeout (30s).
DEFAULT_CALL_TIMEOUT = parse_duration(LUA_CALL_TIMEOUT.default)
#: Per event of a transaction, at least one (begin_txn, every handler, end_txn), plus
#: END_TXN_GRACE. Below mailpush_push_timeout (30s, also per event): past that the
#: dispatcher cancels the transaction and runs it again from begin_txn, and every POST
#: already sent is sent twice.
DEFAULT_TXN_TIMEOUT = parse_duration(LUA_TXN_TIMEOUT.default)
#: The longest end_txn may still run once lua_txn_timeout has passed: scripts
#: send their notifications from end_txn, so it always runs (a tenth of the
#: transaction's time, at most this).
END_TXN_GRACE = 2.0
#: Lua states kept (one per user); the least recently used is closed first.
DEFAULT_MAX_STATES = int(LUA_MAX_STATES.default)
#: A user's state unused this long is closed (script_deinit runs).
DEFAULT_STATE_IDLE_TIMEOUT = parse_duration(LUA_STATE_IDLE_TIMEOUT.default)
#: Bytes of an HTTP response payload a script may get.
DEFAULT_HTTP_RESPONSE_MAX_SIZE = parse_size(LUA_HTTP_RESPONSE_MAX_SIZE.default)


@dataclass(frozen=True, slots=True)
class LuaOptions:
    script: Path
    #: Which setting named the script, for error messages.
    script_setting: str
    version: str
    #: The lupa module name (`lua54`).
    module: str
    #: Searched after the system's module directories and LUA_PATH (module_search.py).
    package_path: tuple[str, ...] = ()
    #: 0 = unlimited.
    max_instructions: int = DEFAULT_MAX_INSTRUCTIONS
    #: Bytes; 0 = unlimited (always unlimited on LuaJIT, whose 64-bit build cannot limit it).
    max_memory: int = DEFAULT_MAX_MEMORY
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    #: Seconds.
    txn_timeout: float = DEFAULT_TXN_TIMEOUT
    max_states: int = DEFAULT_MAX_STATES
    #: Seconds.
    state_idle_timeout: float = DEFAULT_STATE_IDLE_TIMEOUT
    #: 2.4 `lua_settings { }`, handed to `script_init(settings)` after %-expansion.
    init_settings: Mapping[str, str] = field(default_factory=dict)
    syntax: Literal["2.3", "2.4"] = "2.3"
    #: `http_resend`: a `dovecot.http` request that fails (lib-http's 9xxx, or a 5xx) is
    #: journaled in the outbox and sent again by mailpush (dispatch/request_journal.py).
    http_resend: bool = False
    #: `lua_http_response_max_size`: larger HTTP response payloads reach the script as
    #: status 9006 (lib-http's broken payload), the connection closed unread.
    http_response_max_size: int = DEFAULT_HTTP_RESPONSE_MAX_SIZE

    @property
    def end_txn_grace(self) -> float:
        """How long end_txn may run past `txn_timeout`."""
        return min(END_TXN_GRACE, self.txn_timeout / 10)


def lua_options_for(config: DriverConfig, plugin: Mapping[str, str],
                    push_timeout: float | None) -> LuaOptions:
    """`lua_options`, with the time limits checked against mailpush_push_timeout.

    Without `lua_txn_timeout`, a transaction gets 5/6 of the push timeout (25 s of
    30 s). Limits that let a transaction outlive the push timeout are logged:
    the dispatcher would cancel it and run it again, sending its POSTs twice.
    """
    options = lua_options(config, plugin)
    if not push_timeout:
        return options
    if DriverOptions(config).find(LUA_TXN_TIMEOUT) is None:
        options = replace(options, txn_timeout=min(DEFAULT_TXN_TIMEOUT, push_timeout * 5 / 6))
    where = config.where or config.instance
    if options.call_timeout >= push_timeout:
        log.warning(
            "%s: lua_call_timeout (%gs) is not below mailpush_push_timeout (%gs); the"
            " transaction deadline (lua_txn_timeout, %gs) ends calls earlier",
            where, options.call_timeout, push_timeout, options.txn_timeout,
        )
    if options.txn_timeout + options.end_txn_grace >= push_timeout:
        log.warning(
            "%s: lua_txn_timeout (%gs, plus up to %gs for end_txn) is not below"
            " mailpush_push_timeout (%gs): a transaction that long is cancelled and run again"
            " from begin_txn, sending what it already sent twice",
            where, options.txn_timeout, options.end_txn_grace, push_timeout,
        )
    return options


def lua_options(config: DriverConfig, plugin: Mapping[str, str]) -> LuaOptions:
    """The options of one lua driver instance; SettingError names the option at fault."""
    options = DriverOptions(config)
    script, setting = _script(config, options, plugin)
    version = options.text(LUA_VERSION).lower()
    if version not in LUA_VERSION.spec.choices:
        raise options.error(
            LUA_VERSION.name,
            f"unknown Lua version {version!r} (known: {', '.join(LUA_VERSIONS)})",
        )
    module = LUA_VERSIONS[version]
    max_memory = _memory(options)
    if module.startswith("luajit") and max_memory and options.find(LUA_MAX_MEMORY):
        log.warning(
            "%s: lua_max_memory cannot be enforced on LuaJIT (64-bit LuaJIT allocates"
            " its own memory); the script runs without a memory limit", config.instance,
        )
    known = LUA_OPTION_SCHEMA.known_names()
    unknown = sorted(set(config.options) - set(known))
    if unknown:
        log.warning(
            "%s: ignoring unknown lua driver option(s) %s (known: %s)",
            config.where or config.instance, ", ".join(unknown), ", ".join(known),
        )
    return LuaOptions(
        script=script,
        script_setting=setting,
        version=version,
        module=module,
        package_path=_package_path(options),
        max_instructions=options.count(LUA_MAX_INSTRUCTIONS),
        max_memory=0 if module.startswith("luajit") else max_memory,
        call_timeout=options.duration(LUA_CALL_TIMEOUT),
        txn_timeout=options.duration(LUA_TXN_TIMEOUT),
        max_states=options.count(LUA_MAX_STATES),
        state_idle_timeout=options.duration(LUA_STATE_IDLE_TIMEOUT),
        init_settings=dict(config.subsections.get("lua_settings", {})),
        syntax=config.syntax,
        http_resend=options.flag(HTTP_RESEND),
        http_response_max_size=options.size(LUA_HTTP_RESPONSE_MAX_SIZE),
    )


def _script(
    config: DriverConfig, options: DriverOptions, plugin: Mapping[str, str]
) -> tuple[Path, str]:
    """Dovecot 2.3's order: the plugin override, the driver's file, then mail_lua_script."""
    override = plugin.get("push_notification_lua_script_file", "").strip()
    if override and config.syntax == "2.3":
        return Path(override), "push_notification_lua_script_file"
    found = options.find(LUA_FILE)
    if found is not None and found[1].strip():
        return Path(found[1].strip()), f"{config.instance} {found[0]}"
    fallback = plugin.get("mail_lua_script", "").strip()
    if fallback:
        return Path(fallback), "mail_lua_script"
    example = (
        "lua:file=/path/script.lua" if config.syntax == "2.3" else "lua_file = /path/script.lua"
    )
    raise options.error(
        "lua_file" if config.syntax == "2.4" else "file",
        f"no Lua script configured: write {example}"
        " (or set the plugin setting mail_lua_script)",
    )


def _memory(options: DriverOptions) -> int:
    found = options.find(LUA_MAX_MEMORY)
    if found is None:
        return DEFAULT_MAX_MEMORY
    name, value = found
    if value.strip() == "0":
        return 0
    try:
        size = parse_size(value.strip())
    except InvalidValueError as exc:
        raise options.error(name, str(exc)) from None
    if size < 1024 * 1024:
        raise options.error(name, f"at least 1M is needed to run a script, got {value!r}")
    return size


def _package_path(options: DriverOptions) -> tuple[str, ...]:
    """`lua_path=/etc/mailpush/lua` → `/etc/mailpush/lua/?.lua`, `…/?/init.lua`.

    Entries are separated by `;` (2.3 values cannot hold spaces) and may be full
    Lua templates containing `?`.
    """
    entries: list[str] = []
    for entry in options.text(LUA_PATH).split(";"):
        entry = entry.strip()
        if not entry:
            continue
        if "?" in entry:
            entries.append(entry)
        else:
            base = entry.rstrip("/")
            entries.extend((f"{base}/?.lua", f"{base}/?/init.lua"))
    return tuple(entries)

