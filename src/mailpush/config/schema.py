"""Every setting mailpush reads, declared once: name, type, default and meaning.

The loader (`settings.py`) reads values through these declarations, the unknown-setting
warning is derived from them, and `docs/settings.md` is generated from them
(`python -m mailpush.config.docs > docs/settings.md`), so the three cannot disagree.

Defaults are written as configuration text and go through the same parser as an
admin's values, so the documented default is exactly what a file would say.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "BlockSpec",
    "FREEFORM_BLOCKS",
    "SETTINGS",
    "SettingSpec",
    "SettingType",
]


class SettingType(enum.Enum):
    """How a value is written; the value is the name shown in the docs."""

    STRING = "string"
    BOOL = "boolean"
    PORT = "port"
    SIZE = "size"
    DURATION = "time"
    LIST = "list"
    PATH = "path"
    CHOICE = "choice"
    COUNT = "count"
    #: A count where 0 means "no limit".
    LIMIT = "limit"
    #: A whole number from 0 (push driver options such as `max_retries`).
    NUMBER = "number"


@dataclass(frozen=True)
class SettingSpec:
    """One setting. ``section`` is the path of blocks it lives in, outermost first.

    A path element is ``type`` (any name matches, as for ``passdb``) or
    ``type name`` (as for ``service lmtp``).
    """

    name: str
    type: SettingType
    default: str
    doc: str
    section: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()

    @property
    def qualified_name(self) -> str:
        """The setting as an admin finds it in the file: ``service lmtp { ... { port } }``."""
        text = self.name
        for element in reversed(self.section):
            text = f"{element} {{ {text} }}"
        return text


@dataclass(frozen=True)
class BlockSpec:
    """A top-level block whose contents mailpush keeps without validating them."""

    type: str
    named: bool
    doc: str


_DECLARED: list[SettingSpec] = []


def _declare(
    name: str,
    type: SettingType,
    default: str,
    doc: str,
    *,
    section: tuple[str, ...] = (),
    choices: tuple[str, ...] = (),
) -> SettingSpec:
    spec = SettingSpec(name, type, default, doc, section, choices)
    _DECLARED.append(spec)
    return spec


_LMTP_LISTENER = ("service lmtp", "inet_listener lmtp")
_IMAP_LISTENER = ("service imap-login", "inet_listener imap")
_IMAPS_LISTENER = ("service imap-login", "inet_listener imaps")

# --- services and listeners ------------------------------------------------------------

PROTOCOLS = _declare(
    "protocols",
    SettingType.LIST,
    "imap lmtp",
    "Services to start. mailpush speaks `imap` and `lmtp`; other Dovecot protocols "
    "(pop3, submission, sieve) are refused rather than silently not served.",
)
LISTEN = _declare(
    "listen",
    SettingType.LIST,
    "127.0.0.1",
    "Addresses listeners bind to when they set no `address`. `*` is every IPv4 address, "
    "`::` every IPv6 address. Dovecot's default is `*, ::`; mailpush defaults to "
    "loopback so that a fresh install is not reachable from the network.",
)
LMTP_ADDRESS = _declare(
    "address",
    SettingType.LIST,
    "",
    "Addresses of the LMTP listener; empty means the addresses in `listen`.",
    section=_LMTP_LISTENER,
)
LMTP_PORT = _declare(
    "port",
    SettingType.PORT,
    "2424",
    "LMTP port. The default is unprivileged so mailpush runs without root; "
    "set `port = 24` for the standard LMTP port. `0` disables the listener.",
    section=_LMTP_LISTENER,
)
IMAP_ADDRESS = _declare(
    "address",
    SettingType.LIST,
    "",
    "Addresses of the IMAP (STARTTLS) listener; empty means the addresses in `listen`.",
    section=_IMAP_LISTENER,
)
IMAP_PORT = _declare(
    "port",
    SettingType.PORT,
    "1143",
    "IMAP port (unprivileged default; the standard port is 143). `0` disables it.",
    section=_IMAP_LISTENER,
)
IMAP_SSL = _declare(
    "ssl",
    SettingType.BOOL,
    "no",
    "Speak TLS from the first byte on this listener instead of offering STARTTLS.",
    section=_IMAP_LISTENER,
)
IMAPS_ADDRESS = _declare(
    "address",
    SettingType.LIST,
    "",
    "Addresses of the IMAPS listener; empty means the addresses in `listen`.",
    section=_IMAPS_LISTENER,
)
IMAPS_PORT = _declare(
    "port",
    SettingType.PORT,
    "1993",
    "IMAPS port (unprivileged default; the standard port is 993). `0` disables it. "
    "The listener starts only when `ssl_cert` and `ssl_key` are set and `ssl` is not `no`.",
    section=_IMAPS_LISTENER,
)
IMAPS_SSL = _declare(
    "ssl",
    SettingType.BOOL,
    "yes",
    "Speak TLS from the first byte (implicit TLS); `no` makes it a second STARTTLS listener.",
    section=_IMAPS_LISTENER,
)

# --- TLS and authentication ------------------------------------------------------------

SSL = _declare(
    "ssl",
    SettingType.CHOICE,
    "yes",
    "`yes`: offer TLS when a certificate is configured; `required`: also refuse "
    "authentication without TLS (a certificate must then be set), from loopback too "
    "(stricter than Dovecot, which lets a client on the server's own IP log in); `no`: "
    "never TLS.",
    choices=("yes", "no", "required"),
)
SSL_CERT = _declare(
    "ssl_cert",
    SettingType.PATH,
    "",
    "PEM certificate chain. Both Dovecot's `</path` form and a plain path are accepted.",
)
SSL_KEY = _declare(
    "ssl_key",
    SettingType.PATH,
    "",
    "PEM private key for `ssl_cert`, as `</path` or a plain path.",
)
SSL_CLIENT_CA_FILE = _declare(
    "ssl_client_ca_file",
    SettingType.PATH,
    "",
    "PEM file of CA certificates that HTTPS push endpoints (chronos, ox, webhook drivers, "
    "Lua `dovecot.http`) may be signed by, trusted in addition to the system CAs: for "
    "endpoints with certificates from an internal CA. A driver's own `ssl_client_ca_file` "
    "option replaces it for that driver. Certificates are always verified; there is no "
    "setting to turn verification off.",
)
DISABLE_PLAINTEXT_AUTH = _declare(
    "disable_plaintext_auth",
    SettingType.BOOL,
    "yes",
    "Refuse LOGIN and AUTHENTICATE PLAIN on connections without TLS. Connections from "
    "loopback are always allowed, as in Dovecot, so local tools keep working.",
)
AUTH_FAILURE_DELAY = _declare(
    "auth_failure_delay",
    SettingType.DURATION,
    "2s",
    "How long a failed IMAP login waits before its `NO`. It is also the unit of the "
    "per-IP failure penalty (Dovecot's auth_penalty, whose unit is fixed at 2 s): after "
    "1, 2, 3 failures the next login from that IP, on any connection, waits 2, 4, 8 "
    "times this value (at most 15 s; with the default 4, 8, 15 s) before its password "
    "is checked, until a success or until that longest wait passed without failures. "
    "`0` turns both off.",
)
AUTH_USERNAME_FORMAT = _declare(
    "auth_username_format",
    SettingType.STRING,
    "%Lu",
    "How a login name is normalised before lookup (`%Lu`: lowercased full user name).",
)
PASSDB_DRIVER = _declare(
    "driver",
    SettingType.STRING,
    "passwd-file",
    "Password database. Only the first `passdb` block is used, and only `passwd-file` "
    "is supported. Without any `passdb` block, the users file is `<mailpush_data_dir>/users`.",
    section=("passdb",),
)
PASSDB_ARGS = _declare(
    "args",
    SettingType.STRING,
    "",
    "Options and path of the passwd-file, e.g. `scheme=SHA512-CRYPT username_format=%u "
    "/etc/dovecot/users`: the path is the last word without `=`; `scheme` and "
    "`username_format` are kept, relative paths are relative to the configuration file.",
    section=("passdb",),
)
USERDB_DRIVER = _declare(
    "driver",
    SettingType.STRING,
    "passwd-file",
    "User database: `passwd-file` or `static`. Without a `userdb` block, the passdb's "
    "passwd-file is also the userdb.",
    section=("userdb",),
)
USERDB_ARGS = _declare(
    "args",
    SettingType.STRING,
    "",
    "For `passwd-file`: options and path as for passdb (empty: the passdb's file). "
    "For `static`: `key=value` words such as `uid=vmail gid=vmail home=/var/vmail/%u`.",
    section=("userdb",),
)

# --- delivery and mail -----------------------------------------------------------------

RECIPIENT_DELIMITER = _declare(
    "recipient_delimiter",
    SettingType.STRING,
    "+",
    "Characters that separate a user from an address detail (`user+detail@domain`). "
    "Empty turns detail handling off.",
)
LMTP_SAVE_TO_DETAIL_MAILBOX = _declare(
    "lmtp_save_to_detail_mailbox",
    SettingType.BOOL,
    "no",
    "Deliver `user+detail` mail into the mailbox named `detail` when it exists.",
)
LDA_MAILBOX_AUTOCREATE = _declare(
    "lda_mailbox_autocreate",
    SettingType.BOOL,
    "no",
    "Create a missing mailbox that delivery files into (a Sieve `fileinto`, a `+detail` "
    "mailbox) instead of saving to INBOX. Sieve's `fileinto :create` creates it either way.",
)
LDA_MAILBOX_AUTOSUBSCRIBE = _declare(
    "lda_mailbox_autosubscribe",
    SettingType.BOOL,
    "no",
    "Subscribe to a mailbox that delivery has just created, so IMAP clients that list "
    "only subscribed folders show it.",
)
MAIL_PLUGINS = _declare(
    "mail_plugins",
    SettingType.LIST,
    "push_notification mail_lua push_notification_lua",
    "Plugins to load, e.g. `$mail_plugins notify push_notification`. The Dovecot 2.4 "
    "block form `mail_plugins { notify = yes  old = no }` adds the plugins set to `yes` "
    "and removes those set to `no`. A `protocol lmtp|imap|lda { mail_plugins = ... }` "
    "section sets it for that service only (`lda` is `mailpush deliver`), and a change "
    "is pushed only when the service that made it loads `push_notification` (for the Lua "
    "driver also `mail_lua` and `push_notification_lua`). The default applies only while "
    "`mail_plugins` is written nowhere (not globally, not in a `protocol` section, not as "
    "a block), so that short configurations push from every service; once it is written "
    "anywhere, only what is written is loaded, as in Dovecot, and `$mail_plugins` starts "
    "from empty.",
)
MAIL_FSYNC = _declare(
    "mail_fsync",
    SettingType.CHOICE,
    "optimized",
    "`optimized` and `always`: a message is on disk before LMTP or IMAP acknowledges it. "
    "`never`: faster, and a crash may lose acknowledged mail.",
    choices=("optimized", "always", "never"),
)
MAIL_DEBUG = _declare(
    "mail_debug",
    SettingType.BOOL,
    "no",
    "Log debug detail about mail delivery, lookups and push notifications.",
)
LOG_PATH = _declare(
    "log_path",
    SettingType.PATH,
    "",
    "Where errors and warnings go (and, unless `info_log_path` / `debug_log_path` say "
    "otherwise, every other line): a file to append to, `syslog` (the local syslog "
    "socket /dev/log, with `syslog_facility`), or empty / `/dev/stderr` for standard "
    "error. Dovecot's default is `syslog`; mailpush's is standard error, which a service "
    "manager collects. Lines are written in Dovecot's shape (`Dec 05 08:00:00 "
    "imap-login: Info: Login: ...`), so fail2ban's `dovecot` filter reads them "
    "(docs/operations.md#logs).",
)
INFO_LOG_PATH = _declare(
    "info_log_path",
    SettingType.PATH,
    "",
    "Where informational lines (logins, deliveries) go: a file, `syslog` or "
    "`/dev/stderr`; empty means as `log_path`.",
)
DEBUG_LOG_PATH = _declare(
    "debug_log_path",
    SettingType.PATH,
    "",
    "Where debug lines (`mail_debug = yes`) go: a file, `syslog` or `/dev/stderr`; "
    "empty means as `info_log_path`.",
)
SYSLOG_FACILITY = _declare(
    "syslog_facility",
    SettingType.CHOICE,
    "mail",
    "Syslog facility of the lines a `syslog` log setting sends; the ident is `dovecot`, "
    "as Dovecot's, so syslog rules and fail2ban read them alike.",
    choices=("auth", "authpriv", "cron", "daemon", "ftp", "kern", "local0", "local1",
             "local2", "local3", "local4", "local5", "local6", "local7", "lpr", "mail",
             "news", "syslog", "user", "uucp"),  # fmt: skip
)
LOG_TIMESTAMP = _declare(
    "log_timestamp",
    SettingType.STRING,
    "%b %d %H:%M:%S ",
    "strftime format put before each line written to a file or standard error (not to "
    "syslog, which stamps its own), trailing space included: quote it, "
    '`log_timestamp = "%Y-%m-%d %H:%M:%S.%{usecs} "`. `%{usecs}` is the microseconds, '
    "as in Dovecot.",
)
DELIVER_LOG_FORMAT = _declare(
    "deliver_log_format",
    SettingType.STRING,
    "msgid=%m, size=%p, rip=%{rip}: %$",
    "The line logged for each message LMTP or `mailpush deliver` files (after the "
    "`lmtp(user)<pid><session>: Info: ` prefix). Dovecot's variables: `%$` what was done "
    "(`saved mail to INBOX`), `%m` Message-ID, `%s` Subject, `%f` From address, `%e` "
    "envelope sender, `%p` size, `%w` virtual size (LF counted as CRLF), also by long name "
    "(`%{msgid}`, `%{subject}`, `%{from}`, `%{from_envelope}`, `%{size}`, `%{vsize}`); "
    "mailpush adds `%{rip}`, `%{lip}` and `%{session}`. Dovecot's default is `msgid=%m: %$`; "
    "mailpush's adds the size and the client's address, because its one process's pid "
    "does not lead to the connection the way a Dovecot lmtp process's does. Only the "
    "global value is read.",
)
IMAP_MAX_LINE_LENGTH = _declare(
    "imap_max_line_length",
    SettingType.SIZE,
    "64k",
    "Longest IMAP command line accepted; longer lines are refused. Literals count towards "
    "it except APPEND's (as in Dovecot): a longer one gets `* BYE Literal size too large`.",
)
MAIL_TEMP_DIR = _declare(
    "mail_temp_dir",
    SettingType.PATH,
    "/tmp",
    "Directory for temporary files: an IMAP APPEND literal over 1 MB is written to an "
    "unlinked file there as it arrives instead of being held in memory.",
)
MAIL_MAX_USERIP_CONNECTIONS = _declare(
    "mail_max_userip_connections",
    SettingType.LIMIT,
    "10",
    "Most IMAP connections one user may have logged in from one IP address; a login "
    "beyond it is answered `NO [UNAVAILABLE] Maximum number of connections from user+IP "
    "exceeded` and disconnected, as in Dovecot. `0` means no limit. Only the global "
    "value is read (not one inside `protocol imap { }`).",
)
QUOTA_MAILBOX_COUNT = _declare(
    "quota_mailbox_count",
    SettingType.LIMIT,
    "10000",
    "Most mailboxes one user may have (the name of Dovecot 2.4's quota setting; Dovecot "
    "2.3 has no such limit). CREATE beyond it is answered `NO [LIMIT] Maximum "
    "number of mailboxes reached`, as in Dovecot; a delivery that would create a mailbox "
    "(`lda_mailbox_autocreate`, Sieve `fileinto :create`) saves into INBOX instead. "
    "Mailboxes from `mailbox NAME { auto = create }` are not refused. `0` means no limit, "
    "Dovecot's default; mailpush limits by default because LIST's cost grows with it.",
)

# --- mailpush's own ---------------------------------------------------------------------

IMAP_MAX_HEAVY_COMMANDS = _declare(
    "mailpush_imap_max_heavy_commands",
    SettingType.COUNT,
    "4",
    "IMAP commands that parse stored mail (SEARCH on headers or text, FETCH of ENVELOPE, "
    "BODYSTRUCTURE or a BODY[] section) one user may run at once; more wait their turn. "
    "They run in worker processes, off the event loop.",
)

DATA_DIR = _declare(
    "mailpush_data_dir",
    SettingType.PATH,
    "./mailpush-data",
    "Where mailpush keeps its store and, by default, its users file. A relative path is "
    "relative to the configuration file's directory (to the current directory when "
    "mailpush runs without a configuration file); this includes the default.",
)
STORE = _declare(
    "mailpush_store",
    SettingType.STRING,
    "",
    "Where mail, mailboxes and the push outbox are kept. Empty: an SQLite file in "
    "`mailpush_data_dir`. A libpq URI `postgresql://user@host:port/db` (query parameters "
    "as libpq takes them, e.g. `?sslmode=require`; a password is better kept in "
    "`~/.pgpass` or `PGPASSWORD` than here): a PostgreSQL database several mailpush nodes "
    "can share (docs/postgresql.md). Its schema is created or migrated at start.",
)
MAX_MESSAGE_SIZE = _declare(
    "mailpush_max_message_size",
    SettingType.SIZE,
    "50mb",
    "Largest message accepted. LMTP advertises it with SIZE and answers 552 above it; "
    "IMAP APPEND refuses larger messages.",
)
METRICS_LISTEN = _declare(
    "mailpush_metrics_listen",
    SettingType.STRING,
    "",
    "`address:port` (e.g. `127.0.0.1:9100`, `[::1]:9100`) where Prometheus metrics are "
    "served at `/metrics`; empty means no metrics listener.",
)
SHUTDOWN_TIMEOUT = _declare(
    "mailpush_shutdown_timeout",
    SettingType.DURATION,
    "30s",
    "On SIGTERM, how long deliveries, IMAP commands and running push drivers may take to "
    "finish before mailpush stops anyway. A bare number is seconds.",
)
WORKERS = _declare(
    "mailpush_workers",
    SettingType.STRING,
    "auto",
    "How many processes serve LMTP and IMAP: `auto` (the default, or `0`) is one per CPU "
    "core this process may use; N > 1 starts a supervisor and N worker processes sharing "
    "the listening ports (SO_REUSEPORT; Linux), one of them dispatching push transactions; "
    "1 runs everything in one process. A worker that dies is restarted. Changing it needs "
    "a restart (docs/operations.md#workers).",
)
EVENT_LOOP = _declare(
    "mailpush_event_loop",
    SettingType.CHOICE,
    "uvloop",
    "The event loop `mailpush serve` runs on: `uvloop` (the default; libuv, installed with "
    "mailpush) spends about a tenth less CPU per delivery than `asyncio`, Python's own "
    "loop, which stays available should uvloop misbehave on a platform. Changing it needs "
    "a restart (docs/operations.md#event-loop).",
    choices=("uvloop", "asyncio"),
)
DISPATCHER_LMTP = _declare(
    "mailpush_dispatcher_lmtp",
    SettingType.CHOICE,
    "auto",
    "Whether worker 0, which runs the push dispatcher, also accepts LMTP connections: "
    "`auto` (the default) is no when push drivers are configured at start and there are "
    "several workers (the dispatcher then has that process's core to itself, and LMTP's "
    "writers share the store with one process fewer), yes otherwise; `yes` and `no` say "
    "so outright. Every worker serves IMAP either way. Changing it needs a restart "
    "(docs/operations.md#workers).",
    choices=("auto", "yes", "no"),
)
PUSH_CONCURRENCY = _declare(
    "mailpush_push_concurrency",
    SettingType.COUNT,
    "64",
    "How many users' push transactions drivers work on at once. Transactions of one user "
    "run one after another, in commit order, for the drivers that keep order (lua, dlog, a "
    "webhook with `ordered = yes`); for chronos, ox and an unordered webhook a failing one "
    "is retried on its own, without holding back the later ones.",
)
PUSH_TIMEOUT = _declare(
    "mailpush_push_timeout",
    SettingType.DURATION,
    "30s",
    "How long one driver may take for one push transaction, per event it carries (at "
    "least one; summed over the transactions of one operation, which run together), before "
    "the attempt counts as failed (and is retried). Per event because a script's work is: "
    "the simple example script of Dovecot's Lua push documentation POSTs each copied "
    "message from `end_txn`.",
)
PUSH_RETRY_INITIAL = _declare(
    "mailpush_push_retry_initial",
    SettingType.DURATION,
    "1s",
    "Delay before the first retry of a failed push transaction; it doubles at each further "
    "failure (with ±20% jitter) up to `mailpush_push_retry_max_interval`. A driver's "
    "`retry_initial` option replaces it for that driver (chronos: 30s, ox: 10s).",
)
PUSH_RETRY_MAX_INTERVAL = _declare(
    "mailpush_push_retry_max_interval",
    SettingType.DURATION,
    "5min",
    "Longest delay between two attempts of a failing push transaction. A driver's "
    "`retry_max_interval` option replaces it for that driver (chronos: 5min, ox: 1min).",
)
PUSH_MAX_AGE = _declare(
    "mailpush_push_max_age",
    SettingType.DURATION,
    "1d",
    "A push transaction still failing this long after its first attempt becomes a dead "
    "letter (`mailpush queue dead` lists them, `mailpush queue replay` sends them again). A "
    "driver's `max_age` option replaces it for that driver (chronos: 1h, ox: 15min), and "
    "its `delivery_attempts` limits the attempts (chronos, ox: 3).",
)
PUSH_RETENTION = _declare(
    "mailpush_push_retention",
    SettingType.DURATION,
    "1h",
    "How long delivered push transactions stay in the outbox (for `mailpush events tail` "
    "and debugging) before they are purged. Dead letters stay until replayed.",
)
PUSH_CLAIM_LEASE = _declare(
    "mailpush_push_claim_lease",
    SettingType.DURATION,
    "30s",
    "How long the push transactions a node's dispatcher claimed stay its own without a "
    "renewal; it renews them every third of this while it runs. When a node dies, hangs or "
    "loses the database, the other nodes send what it had claimed once its lease ran out: "
    "a shorter lease sends them sooner, a longer one spares them a second sending when a "
    "live dispatcher only stalls (a slow database, a paused VM) for less than two thirds "
    "of it (docs/postgresql.md#dispatch-across-nodes). From 3s (renewed every second) to "
    "1h. A reload applies it at once, to the claims already held too.",
)
CHRONOS_URL = _declare(
    "push_notification_chronos_url",
    SettingType.STRING,
    "",
    "Dovecot 2.4 / Pro 3.1 top-level form of the chronos driver's `url`: the default for "
    "every `push_notification chronos { }` block, as top-level settings carry into "
    "driver blocks in 2.4; a `url` in the block wins. Basic-auth credentials go in the URL "
    "(`https://LOGIN:PASS@HOST:8009/chronos/v1/itip/pushmail`); passwords are masked in "
    "logs and errors.",
)
CHRONOS_MSG_MAX_SIZE = _declare(
    "push_notification_chronos_msg_max_size",
    SettingType.SIZE,
    "1M",
    "Dovecot 2.4 / Pro 3.1 top-level form of the chronos driver's `msg_max_size`: larger "
    "invitations are not pushed. The default for every `push_notification chronos { }` "
    "block; an `msg_max_size` in the block wins.",
)
#: Top-level settings that are defaults of a driver's 2.4 blocks (`push_notification_<driver>_*`).
PUSH_NOTIFICATION_DEFAULTS = (CHRONOS_URL, CHRONOS_MSG_MAX_SIZE)
#: Settings a `protocol lmtp|imap|lda { }` section may set for that service alone
#: (Dovecot's protocol filter); anything else written there is reported as unused.
PROTOCOL_SETTINGS = (
    MAIL_PLUGINS,
    RECIPIENT_DELIMITER,
    LMTP_SAVE_TO_DETAIL_MAILBOX,
    LDA_MAILBOX_AUTOCREATE,
    LDA_MAILBOX_AUTOSUBSCRIBE,
    IMAP_MAX_LINE_LENGTH,
)

FREEFORM_BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(
        "plugin",
        named=False,
        doc="Dovecot 2.3 plugin settings (`push_notification_driver`, `push_notification_driver2`, "
        "values read by Lua scripts through `plugin_getenv`...). Kept as written, in "
        "order; each plugin or driver checks its own keys. Sieve reads `sieve` (the user's "
        "active script), `sieve_before`/`sieve_before2`... and `sieve_after`/`sieve_after2`... "
        "(a script file, or a directory whose `*.sieve` files run in name order), "
        "`sieve_max_actions` (default 32) and `sieve_max_script_size` (default 1M); "
        "userdb fields override them per user.",
    ),
    BlockSpec(
        "push_notification",
        named=True,
        doc="Dovecot 2.4 push-notification driver blocks, e.g. `push_notification chronos { "
        "driver = chronos  url = ...  msg_max_size = 500kb }`, with any nested blocks such as "
        "`lua_settings { }`. Kept as written; the push-notification drivers check them.",
    ),
    BlockSpec(
        "mail_plugins",
        named=False,
        doc="Dovecot 2.4 block form of `mail_plugins`: each key is a plugin, set to `yes` or `no`.",
    ),
    BlockSpec(
        "protocol",
        named=True,
        doc="`protocol lmtp { }`, `protocol imap { }` and `protocol lda { }` (`mailpush "
        "deliver`): values for that service only, winning over the global ones wherever "
        "they are written, as Dovecot's protocol filters. They may set `mail_plugins` "
        "(`$mail_plugins` there is the global value, or that of an earlier section for the "
        "same protocol), `recipient_delimiter`, `lmtp_save_to_detail_mailbox`, "
        "`lda_mailbox_autocreate`, `lda_mailbox_autosubscribe`, `imap_max_line_length`, a "
        "`mail_plugins { }` block and a `plugin { }` block merged over the global one "
        "(Sieve reads it for deliveries; push drivers are read from the global `plugin { }` "
        "only). Sections for other protocols (pop3, submission...) are reported as unused.",
    ),
)

SETTINGS: tuple[SettingSpec, ...] = tuple(_DECLARED)
