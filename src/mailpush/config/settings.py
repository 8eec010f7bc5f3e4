"""The typed settings mailpush runs with: what the rest of the program reads.

`reader.py` builds them once at start from a Dovecot-style file; they never
change afterwards. ``protocol lmtp|imap|lda { }`` sections are Dovecot's
protocol filters: a value written there wins, for that service only, over the
global one wherever either is written (``doveconf -f protocol=lmtp`` on 2.3.19
shows the same). `Settings` holds the global values; `Settings.for_protocol`
gives what one service sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from mailpush.logs.settings import LogDestination, LogSettings

__all__ = [
    "AuthSettings",
    "Listener",
    "LmtpSettings",
    "LoadedConfig",
    "PROTOCOL_SERVICES",
    "PassdbSettings",
    "ProtocolOverrides",
    "PushNotificationBlock",
    "Settings",
    "SslSettings",
    "UserdbSettings",
]

ServiceName = Literal["lmtp", "imap", "imaps"]
SslMode = Literal["yes", "no", "required"]
FsyncMode = Literal["optimized", "always", "never"]
EventLoopKind = Literal["uvloop", "asyncio"]
DispatcherLmtp = Literal["auto", "yes", "no"]

#: Services whose ``protocol NAME { }`` sections are read: the two front ends, and
#: ``lda``, the service `mailpush deliver` runs as (dovecot-lda's name).
PROTOCOL_SERVICES = ("lmtp", "imap", "lda")


@dataclass(frozen=True)
class Listener:
    """One socket to open: ``ssl`` means TLS from the first byte (imaps)."""

    service: ServiceName
    address: str
    port: int
    ssl: bool
    #: ``file:line`` of the port (or address) setting; None for the built-in default.
    #: Where a value is written is not part of it: equality (and reload) ignores it.
    where: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SslSettings:
    mode: SslMode
    cert_path: Path | None
    key_path: Path | None
    #: ``file:line`` of ``ssl_cert``, for a certificate that cannot be loaded.
    cert_where: str | None = field(default=None, compare=False)

    @property
    def enabled(self) -> bool:
        """Whether TLS can be offered at all: a certificate and key, and ssl not ``no``."""
        return self.mode != "no" and self.cert_path is not None and self.key_path is not None


@dataclass(frozen=True)
class PassdbSettings:
    """A passwd-file password database; ``args`` holds every ``key=value`` option."""

    driver: str
    path: Path
    scheme: str | None
    username_format: str | None
    args: Mapping[str, str]


@dataclass(frozen=True)
class UserdbSettings:
    """``passwd-file`` (with ``path``) or ``static`` (``args`` such as uid, gid, home)."""

    driver: str
    path: Path | None
    args: Mapping[str, str]


@dataclass(frozen=True)
class AuthSettings:
    passdb: PassdbSettings
    userdb: UserdbSettings
    username_format: str
    disable_plaintext_auth: bool


@dataclass(frozen=True)
class LmtpSettings:
    recipient_delimiter: str
    save_to_detail_mailbox: bool
    #: `lda_mailbox_autocreate` / `lda_mailbox_autosubscribe` (LMTP and `mailpush deliver`).
    mailbox_autocreate: bool = False
    mailbox_autosubscribe: bool = False


@dataclass(frozen=True)
class PushSettings:
    """How the dispatcher runs drivers: concurrency, timeouts, retries, retention, and
    the lease its claims are held under."""

    concurrency: int
    timeout: float
    retry_initial: float
    retry_max_interval: float
    max_age: float
    retention: float
    #: Seconds a claim is held without renewal (`mailpush_push_claim_lease`).
    claim_lease: float


@dataclass(frozen=True)
class PushNotificationBlock:
    """A Dovecot 2.4 ``push_notification NAME { }`` block, kept for the drivers to check.

    Nested blocks (``lua_settings { }``) are in ``subsections`` under their label;
    blocks nested deeper are keyed by their labels joined with ``/``.
    """

    name: str
    settings: Mapping[str, str]
    subsections: Mapping[str, Mapping[str, str]]
    file: str
    line: int


@dataclass(frozen=True)
class ProtocolOverrides:
    """What one service sees of the settings a ``protocol NAME { }`` section may set.

    Absolute values (globals with the section applied), not differences, so that
    applying them needs no knowledge of how they were computed.
    """

    mail_plugins: tuple[str, ...]
    plugin: Mapping[str, str]
    lmtp: LmtpSettings
    imap_max_line_length: int


@dataclass(frozen=True)
class Settings:
    """Everything mailpush reads from its configuration, typed and checked.

    The fields hold the global values; `for_protocol` gives one service's view.
    """

    protocols: tuple[str, ...]
    listeners: tuple[Listener, ...]
    ssl: SslSettings
    auth: AuthSettings
    lmtp: LmtpSettings
    mail_plugins: tuple[str, ...]
    plugin: Mapping[str, str]
    push_notification_blocks: tuple[PushNotificationBlock, ...]
    mail_fsync: FsyncMode
    mail_debug: bool
    #: `log_path`, `info_log_path`, `debug_log_path`, `syslog_facility`, `log_timestamp`,
    #: `deliver_log_format`.
    log: LogSettings
    imap_max_line_length: int
    data_dir: Path
    max_message_size: int
    #: Where Prometheus metrics are served (`mailpush_metrics_listen`), or None.
    metrics_listen: tuple[str, int] | None
    shutdown_timeout: float
    push: PushSettings
    source_path: Path | None
    #: CAs HTTPS push drivers trust besides the system ones (``ssl_client_ca_file``).
    ssl_client_ca_file: Path | None = None
    #: `mailpush_store`: a `postgresql://` URI, or "" for SQLite in `data_dir`.
    store: str = ""
    #: Top-level ``push_notification_<driver>_*`` settings given in the file: in 2.4
    #: they are the defaults of that driver's ``push_notification`` blocks.
    push_notification_defaults: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({})
    )
    #: Per service in `PROTOCOL_SERVICES`: the values its ``protocol { }`` sections give.
    protocol_overrides: Mapping[str, ProtocolOverrides] = field(
        default_factory=lambda: MappingProxyType({})
    )
    #: ``file:line`` of `mailpush_metrics_listen`, for a port another listener takes.
    metrics_where: str | None = field(default=None, compare=False)
    #: ``file:line`` of each global ``plugin { }`` key, for messages about its value.
    plugin_places: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), compare=False
    )
    #: Logged-in IMAP connections per user and IP (0: unlimited).
    mail_max_userip_connections: int = 10
    #: Most mailboxes per user (`quota_mailbox_count`, 0: unlimited).
    quota_mailbox_count: int = 10000
    #: Seconds a failed login waits; also the unit of the per-IP failure penalty.
    auth_failure_delay: float = 2.0
    #: Where IMAP spools large APPEND literals (``mail_temp_dir``).
    mail_temp_dir: Path = Path("/tmp")
    #: Heavy IMAP commands one user runs at once (``mailpush_imap_max_heavy_commands``).
    imap_max_heavy_commands: int = 4
    #: Serving processes (``mailpush_workers``, `auto` resolved): 1 is one process.
    workers: int = 1
    #: What `mailpush serve` runs on (``mailpush_event_loop``).
    event_loop: EventLoopKind = "uvloop"
    #: Whether worker 0, the dispatching one, accepts LMTP (``mailpush_dispatcher_lmtp``).
    dispatcher_lmtp: DispatcherLmtp = "auto"

    def for_protocol(self, protocol: str) -> Settings:
        """The settings as service ``protocol`` (``lmtp``, ``imap``, ``lda``) sees them.

        A service without overrides (or an unknown name) sees the global values.
        """
        view = self.protocol_overrides.get(protocol)
        if view is None:
            return self
        return replace(
            self,
            mail_plugins=view.mail_plugins,
            plugin=view.plugin,
            lmtp=view.lmtp,
            imap_max_line_length=view.imap_max_line_length,
        )

    @property
    def log_path(self) -> LogDestination:
        """Where errors go: a file, `syslog`, or None for standard error."""
        return self.log.path

    @property
    def fsync_before_ack(self) -> bool:
        """Whether a message must reach the disk before its delivery is acknowledged."""
        return self.mail_fsync != "never"


@dataclass(frozen=True)
class LoadedConfig:
    settings: Settings
    warnings: tuple[str, ...]
