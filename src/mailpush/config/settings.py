"""The typed settings mailpush runs with, built once at start from a Dovecot-style file.

Values are read through the declarations in `schema.py`; a value that cannot be used
raises `SettingError` naming the setting and its ``file:line``. Settings mailpush does
not know are not fatal - a Dovecot configuration carries many - but they are all
named, with their places, in ONE warning, so that a typo is not silently ignored.

``protocol lmtp|imap|lda { }`` sections are Dovecot's protocol filters: a value
written there wins, for that service only, over the global one wherever either
is written (``doveconf -f protocol=lmtp`` on 2.3.19 shows the same). `Settings`
holds the global values; `Settings.for_protocol` gives what one service sees.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal, TypeVar

from mailpush.config import schema
from mailpush.config.schema import SettingSpec, SettingType
from mailpush.config.syntax import ConfigEntry, ConfigSection, parse_file
from mailpush.config.values import (
    parse_bool,
    parse_duration,
    parse_host_port,
    parse_int,
    parse_list,
    parse_size,
)
from mailpush.errors import InvalidValueError, SettingError

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
    "load_settings",
    "parse_setting_value",
    "settings_from_tree",
]

ServiceName = Literal["lmtp", "imap", "imaps"]
SslMode = Literal["yes", "no", "required"]
FsyncMode = Literal["optimized", "always", "never"]

SUPPORTED_PROTOCOLS = ("imap", "lmtp")
SUPPORTED_PASSDB_DRIVERS = ("passwd-file",)
SUPPORTED_USERDB_DRIVERS = ("passwd-file", "static")
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


@dataclass(frozen=True)
class SslSettings:
    mode: SslMode
    cert_path: Path | None
    key_path: Path | None

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
    """How the dispatcher runs drivers: concurrency, timeouts, retries, retention."""

    concurrency: int
    timeout: float
    retry_initial: float
    retry_max_interval: float
    max_age: float
    retention: float


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
    log_path: Path | None
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
    #: Top-level ``push_notification_<driver>_*`` settings given in the file: in 2.4
    #: they are the defaults of that driver's ``push_notification`` blocks.
    push_notification_defaults: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({})
    )
    #: Per service in `PROTOCOL_SERVICES`: the values its ``protocol { }`` sections give.
    protocol_overrides: Mapping[str, ProtocolOverrides] = field(
        default_factory=lambda: MappingProxyType({})
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
    def fsync_before_ack(self) -> bool:
        """Whether a message must reach the disk before its delivery is acknowledged."""
        return self.mail_fsync != "never"


@dataclass(frozen=True)
class LoadedConfig:
    settings: Settings
    warnings: tuple[str, ...]


def load_settings(path: str | os.PathLike[str] | None) -> LoadedConfig:
    """Read the configuration file at ``path``; ``None`` gives the built-in defaults.

    Raises ConfigFileError (unreadable file), ConfigSyntaxError (malformed file) or
    SettingError (a value mailpush cannot use).
    """
    if path is None:
        empty = ConfigSection("", None, (), (), "<defaults>", 0)
        return settings_from_tree(empty, base_dir=Path.cwd(), source_path=None)
    source = Path(path)
    tree = parse_file(source)
    return settings_from_tree(tree, base_dir=source.absolute().parent, source_path=source)


def settings_from_tree(
    tree: ConfigSection, *, base_dir: Path, source_path: Path | None
) -> LoadedConfig:
    """Typed settings from a parsed tree; relative paths are resolved against ``base_dir``."""
    reader = _Reader(tree, base_dir)
    warnings: list[str] = []

    protocols = reader.protocols()
    ssl = reader.ssl()
    data_dir = reader.path(schema.DATA_DIR)
    assert data_dir is not None  # the declared default is not empty
    passdb = reader.passdb(data_dir, warnings)
    auth = AuthSettings(
        passdb=passdb,
        userdb=reader.userdb(passdb),
        username_format=reader.string(schema.AUTH_USERNAME_FORMAT),
        disable_plaintext_auth=reader.boolean(schema.DISABLE_PLAINTEXT_AUTH),
    )
    settings = Settings(
        protocols=protocols,
        listeners=reader.listeners(protocols, ssl, warnings),
        ssl=ssl,
        auth=auth,
        lmtp=reader.lmtp(None),
        mail_plugins=reader.mail_plugins(None),
        plugin=reader.plugin(None),
        push_notification_blocks=reader.push_notification_blocks(),
        mail_fsync=reader.fsync(),
        mail_debug=reader.boolean(schema.MAIL_DEBUG),
        log_path=reader.path(schema.LOG_PATH),
        imap_max_line_length=reader.size(schema.IMAP_MAX_LINE_LENGTH),
        mail_max_userip_connections=reader.limit(schema.MAIL_MAX_USERIP_CONNECTIONS),
        quota_mailbox_count=reader.limit(schema.QUOTA_MAILBOX_COUNT),
        auth_failure_delay=reader.duration(schema.AUTH_FAILURE_DELAY),
        mail_temp_dir=reader.path(schema.MAIL_TEMP_DIR) or Path("/tmp"),
        imap_max_heavy_commands=reader.count(schema.IMAP_MAX_HEAVY_COMMANDS),
        data_dir=data_dir,
        max_message_size=reader.size(schema.MAX_MESSAGE_SIZE),
        metrics_listen=reader.host_port(schema.METRICS_LISTEN),
        shutdown_timeout=reader.duration(schema.SHUTDOWN_TIMEOUT),
        push=PushSettings(
            concurrency=reader.count(schema.PUSH_CONCURRENCY),
            timeout=reader.duration(schema.PUSH_TIMEOUT),
            retry_initial=reader.duration(schema.PUSH_RETRY_INITIAL),
            retry_max_interval=reader.duration(schema.PUSH_RETRY_MAX_INTERVAL),
            max_age=reader.duration(schema.PUSH_MAX_AGE),
            retention=reader.duration(schema.PUSH_RETENTION),
        ),
        source_path=source_path,
        ssl_client_ca_file=reader.path(schema.SSL_CLIENT_CA_FILE),
        push_notification_defaults=reader.push_notification_defaults(),
        protocol_overrides=MappingProxyType(
            {name: reader.protocol_overrides(name) for name in PROTOCOL_SERVICES}
        ),
    )
    warnings.extend(_protocol_push_driver_warnings(tree))
    unknown = _unknown_settings(tree)
    if unknown:
        warnings.insert(0, "ignoring settings mailpush does not know or use: " + ", ".join(unknown))
    return LoadedConfig(settings, tuple(warnings))


def parse_setting_value(spec: SettingSpec, text: str) -> object:
    """``text`` converted as ``spec`` declares, without the cross-setting checks.

    Raises InvalidValueError; used to check that every declared default is valid.
    """
    parsers: dict[SettingType, Callable[[str], object]] = {
        SettingType.STRING: str,
        SettingType.PATH: str,
        SettingType.BOOL: parse_bool,
        SettingType.PORT: lambda value: parse_int(value, minimum=0, maximum=65535),
        SettingType.SIZE: parse_size,
        SettingType.DURATION: parse_duration,
        SettingType.LIST: parse_list,
        SettingType.CHOICE: lambda value: _parse_choice(spec, value),
        SettingType.COUNT: lambda value: parse_int(value, minimum=1, maximum=1_000_000),
        SettingType.LIMIT: lambda value: parse_int(value, minimum=0, maximum=1_000_000),
    }
    return parsers[spec.type](text)


# --- private -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Raw:
    """A value to convert, with where it came from (None: the declared default)."""

    text: str
    where: str | None
    from_file: bool = False


class _Reader:
    """Converts declared settings from one tree, naming setting and place on failure."""

    def __init__(self, tree: ConfigSection, base_dir: Path) -> None:
        self._tree = tree
        self._base_dir = base_dir

    # generic, by declared type

    def raw(
        self,
        spec: SettingSpec,
        within: Sequence[ConfigSection] | None = None,
        protocol: str | None = None,
    ) -> _Raw:
        """The winning entry of ``spec``; with ``protocol``, its sections win over globals."""
        sections = _sections_at(self._tree, spec.section) if within is None else within
        if protocol is not None:
            sections = [*sections, *self._tree.find("protocol", protocol)]
        entry: ConfigEntry | None = None
        for section in sections:
            entry = section.get(spec.name) or entry
        if entry is None:
            return _Raw(spec.default, None)
        if entry.from_file and spec.type is not SettingType.PATH:
            return _Raw(self._read_value_file(spec, entry), entry.where, True)
        return _Raw(entry.value, entry.where, entry.from_file)

    def _read_value_file(self, spec: SettingSpec, entry: ConfigEntry) -> str:
        """Dovecot's ``key = <path`` for a setting whose value is text, not a path."""
        path = self.resolve(entry.value)
        try:
            return path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingError(
                spec.qualified_name, f"cannot read the value from {path}: {exc}", entry.where
            ) from exc

    def string(
        self,
        spec: SettingSpec,
        within: Sequence[ConfigSection] | None = None,
        protocol: str | None = None,
    ) -> str:
        return self.raw(spec, within, protocol).text

    def boolean(
        self,
        spec: SettingSpec,
        within: Sequence[ConfigSection] | None = None,
        protocol: str | None = None,
    ) -> bool:
        raw = self.raw(spec, within, protocol)
        return _convert(spec, raw, parse_bool)

    def port(self, spec: SettingSpec, within: Sequence[ConfigSection] | None = None) -> int:
        raw = self.raw(spec, within)
        return _convert(spec, raw, lambda text: parse_int(text, minimum=0, maximum=65535))

    def host_port(self, spec: SettingSpec) -> tuple[str, int] | None:
        return _convert(spec, self.raw(spec), parse_host_port)

    def size(self, spec: SettingSpec, protocol: str | None = None) -> int:
        return _convert(spec, self.raw(spec, protocol=protocol), parse_size)

    def count(self, spec: SettingSpec) -> int:
        return _convert(spec, self.raw(spec), lambda text: parse_int(text, minimum=1,
                                                                        maximum=1_000_000))

    def limit(self, spec: SettingSpec) -> int:
        return _convert(spec, self.raw(spec), lambda text: parse_int(text, minimum=0,
                                                                        maximum=1_000_000))

    def duration(self, spec: SettingSpec) -> float:
        return _convert(spec, self.raw(spec), parse_duration)

    def words(self, spec: SettingSpec, within: Sequence[ConfigSection] | None = None) -> _Words:
        raw = self.raw(spec, within)
        return _Words(parse_list(raw.text), raw.where)

    def choice(self, spec: SettingSpec) -> str:
        return _convert(spec, self.raw(spec), lambda text: _parse_choice(spec, text))

    def path(self, spec: SettingSpec) -> Path | None:
        text = self.raw(spec).text.strip()
        return self.resolve(text) if text else None

    def resolve(self, text: str) -> Path:
        return self._base_dir / Path(text).expanduser()

    # settings that need more than their type

    def protocols(self) -> tuple[str, ...]:
        words = self.words(schema.PROTOCOLS)
        for word in words.values:
            if word not in SUPPORTED_PROTOCOLS:
                raise SettingError(
                    "protocols",
                    f"mailpush does not serve {word!r} (it speaks: "
                    f"{', '.join(SUPPORTED_PROTOCOLS)}); remove it from the list",
                    words.where,
                )
        return tuple(dict.fromkeys(words.values))

    def ssl(self) -> SslSettings:
        mode = self.choice(schema.SSL)
        cert, key = self.raw(schema.SSL_CERT), self.raw(schema.SSL_KEY)
        if bool(cert.text.strip()) != bool(key.text.strip()):
            missing, given = (schema.SSL_KEY, cert) if cert.text.strip() else (schema.SSL_CERT, key)
            raise SettingError(
                missing.name,
                "ssl_cert and ssl_key must be set together; only one of them is set",
                given.where,
            )
        settings = SslSettings(
            mode="yes" if mode == "yes" else "no" if mode == "no" else "required",
            cert_path=self.path(schema.SSL_CERT),
            key_path=self.path(schema.SSL_KEY),
        )
        if mode == "required" and not settings.enabled:
            raise SettingError(
                "ssl",
                "'required' needs ssl_cert and ssl_key (e.g. ssl_cert = </etc/ssl/cert.pem)",
                self.raw(schema.SSL).where,
            )
        return settings

    def fsync(self) -> FsyncMode:
        mode = self.choice(schema.MAIL_FSYNC)
        return "always" if mode == "always" else "never" if mode == "never" else "optimized"

    def listeners(
        self, protocols: tuple[str, ...], ssl: SslSettings, warnings: list[str]
    ) -> tuple[Listener, ...]:
        listen = self.words(schema.LISTEN)
        plan: list[tuple[ServiceName, SettingSpec, SettingSpec, SettingSpec | None]] = []
        if "lmtp" in protocols:
            plan.append(("lmtp", schema.LMTP_ADDRESS, schema.LMTP_PORT, None))
        if "imap" in protocols:
            plan.append(("imap", schema.IMAP_ADDRESS, schema.IMAP_PORT, schema.IMAP_SSL))
            plan.append(("imaps", schema.IMAPS_ADDRESS, schema.IMAPS_PORT, schema.IMAPS_SSL))
        result: list[Listener] = []
        for service, address_spec, port_spec, ssl_spec in plan:
            port = self.port(port_spec)
            implicit_tls = False if ssl_spec is None else self.boolean(ssl_spec)
            if port == 0:
                continue
            if implicit_tls and not ssl.enabled:
                configured = _sections_at(self._tree, port_spec.section)
                if configured:
                    warnings.append(
                        f"{configured[0].where}: inet_listener {service} is not started: "
                        "it uses TLS and ssl_cert/ssl_key are not set (or ssl = no)"
                    )
                continue
            addresses = self.words(address_spec)
            chosen = addresses if addresses.values else listen
            for address in chosen.values:
                result.append(Listener(service, _bind_address(address), port, implicit_tls))
        return tuple(result)

    def passdb(self, data_dir: Path, warnings: list[str]) -> PassdbSettings:
        blocks = self._tree.find("passdb")
        if not blocks:
            return PassdbSettings(
                "passwd-file", data_dir / "users", None, None, MappingProxyType({})
            )
        if len(blocks) > 1:
            ignored = ", ".join(block.where for block in blocks[1:])
            warnings.append(f"only the first passdb block is used; ignoring those at {ignored}")
        driver = self.raw(schema.PASSDB_DRIVER, blocks[:1])
        if driver.text not in SUPPORTED_PASSDB_DRIVERS:
            raise SettingError(
                schema.PASSDB_DRIVER.qualified_name,
                f"unsupported driver {driver.text!r} "
                f"(supported: {', '.join(SUPPORTED_PASSDB_DRIVERS)})",
                driver.where or blocks[0].where,
            )
        args = self.raw(schema.PASSDB_ARGS, blocks[:1])
        options, file = _passwd_file_args(args.text)
        if file is None:
            raise SettingError(
                schema.PASSDB_ARGS.qualified_name,
                "passwd-file needs the path of the users file, e.g. "
                "'args = scheme=SHA512-CRYPT /etc/dovecot/users'",
                args.where or blocks[0].where,
            )
        return PassdbSettings(
            driver=driver.text,
            path=self.resolve(file),
            scheme=options.get("scheme"),
            username_format=options.get("username_format"),
            args=MappingProxyType(options),
        )

    def userdb(self, passdb: PassdbSettings) -> UserdbSettings:
        blocks = self._tree.find("userdb")
        if not blocks:
            return UserdbSettings("passwd-file", passdb.path, MappingProxyType({}))
        driver = self.raw(schema.USERDB_DRIVER, blocks[:1])
        args = self.raw(schema.USERDB_ARGS, blocks[:1])
        if driver.text == "passwd-file":
            options, file = _passwd_file_args(args.text)
            path = passdb.path if file is None else self.resolve(file)
            return UserdbSettings("passwd-file", path, MappingProxyType(options))
        if driver.text == "static":
            options = {}
            for word in args.text.split():
                key, equals, value = word.partition("=")
                if not equals or not key:
                    raise SettingError(
                        schema.USERDB_ARGS.qualified_name,
                        f"static userdb args are key=value words "
                        f"(e.g. uid=vmail gid=vmail home=/var/vmail/%u), got {word!r}",
                        args.where,
                    )
                options[key] = value
            return UserdbSettings("static", None, MappingProxyType(options))
        raise SettingError(
            schema.USERDB_DRIVER.qualified_name,
            f"unsupported driver {driver.text!r} "
            f"(supported: {', '.join(SUPPORTED_USERDB_DRIVERS)})",
            driver.where or blocks[0].where,
        )

    def lmtp(self, protocol: str | None) -> LmtpSettings:
        return LmtpSettings(
            recipient_delimiter=self.string(schema.RECIPIENT_DELIMITER, protocol=protocol),
            save_to_detail_mailbox=self.boolean(
                schema.LMTP_SAVE_TO_DETAIL_MAILBOX, protocol=protocol
            ),
            mailbox_autocreate=self.boolean(schema.LDA_MAILBOX_AUTOCREATE, protocol=protocol),
            mailbox_autosubscribe=self.boolean(
                schema.LDA_MAILBOX_AUTOSUBSCRIBE, protocol=protocol
            ),
        )

    def protocol_overrides(self, protocol: str) -> ProtocolOverrides:
        return ProtocolOverrides(
            mail_plugins=self.mail_plugins(protocol),
            plugin=self.plugin(protocol),
            lmtp=self.lmtp(protocol),
            imap_max_line_length=self.size(schema.IMAP_MAX_LINE_LENGTH, protocol),
        )

    def mail_plugins(self, protocol: str | None) -> tuple[str, ...]:
        """The plugins the global scope (``None``) or service ``protocol`` loads.

        The declared default counts only while `mail_plugins` is written nowhere;
        otherwise the global value is what the file says (empty if only protocol
        sections set it), as in Dovecot. A protocol section's value was expanded
        from the global one by the parser and replaces it; its 2.4 block edits it.
        """
        sections = self._tree.find("protocol", protocol) if protocol is not None else ()
        plugins = dict.fromkeys(self._global_mail_plugins())
        _apply_plugin_blocks(plugins, self._tree.find("mail_plugins"))
        for section in sections:
            entry = section.get(schema.MAIL_PLUGINS.name)
            if entry is not None:
                plugins = dict.fromkeys(parse_list(entry.value))
            _apply_plugin_blocks(plugins, section.find("mail_plugins"))
        return tuple(plugins)

    def _global_mail_plugins(self) -> tuple[str, ...]:
        name = schema.MAIL_PLUGINS.name
        written = any(
            section.get(name) is not None or section.find(name)
            for section in (self._tree, *self._tree.find("protocol"))
        )
        if not written:
            return parse_list(schema.MAIL_PLUGINS.default)
        entry = self._tree.get(name)
        return () if entry is None else parse_list(entry.value)

    def plugin(self, protocol: str | None) -> Mapping[str, str]:
        """Global ``plugin { }`` values, with ``protocol``'s own ``plugin { }`` merged over them."""
        values: dict[str, str] = {}
        blocks = list(self._tree.find("plugin"))
        if protocol is not None:
            for section in self._tree.find("protocol", protocol):
                blocks.extend(section.find("plugin"))
        for block in blocks:
            for entry in block.settings:
                values[entry.key] = entry.value
        return MappingProxyType(values)

    def push_notification_defaults(self) -> Mapping[str, str]:
        values = {}
        for spec in schema.PUSH_NOTIFICATION_DEFAULTS:
            raw = self.raw(spec)
            if raw.where is not None:
                values[spec.name] = raw.text
        return MappingProxyType(values)

    def push_notification_blocks(self) -> tuple[PushNotificationBlock, ...]:
        blocks: list[PushNotificationBlock] = []
        for block in self._tree.find("push_notification"):
            subsections: dict[str, Mapping[str, str]] = {}
            _collect_subsections(block, "", subsections)
            blocks.append(
                PushNotificationBlock(
                    name=block.name or "",
                    settings=MappingProxyType({e.key: e.value for e in block.settings}),
                    subsections=MappingProxyType(subsections),
                    file=block.file,
                    line=block.line,
                )
            )
        return tuple(blocks)


_T = TypeVar("_T")


@dataclass(frozen=True)
class _Words:
    values: tuple[str, ...]
    where: str | None


def _apply_plugin_blocks(plugins: dict[str, None], blocks: Sequence[ConfigSection]) -> None:
    """Dovecot 2.4 ``mail_plugins { name = yes|no }``: add or remove, in written order."""
    for block in blocks:
        for entry in block.settings:
            try:
                enabled = parse_bool(entry.value)
            except InvalidValueError as exc:
                raise SettingError(
                    f"mail_plugins {{ {entry.key} }}", str(exc), entry.where
                ) from exc
            if enabled:
                plugins[entry.key] = None
            else:
                plugins.pop(entry.key, None)


def _protocol_push_driver_warnings(tree: ConfigSection) -> list[str]:
    """Push drivers named in a protocol's ``plugin { }`` are not per service in mailpush."""
    warnings = []
    for section in tree.find("protocol"):
        for block in section.find("plugin"):
            for entry in block.settings:
                if entry.key.startswith(("push_notification_driver", "push_notification_backend")):
                    warnings.append(
                        f"{entry.where}: {entry.key} inside protocol {section.name} {{ plugin "
                        "{ } } is not read: mailpush takes push drivers from the global plugin "
                        "{ } and chooses per service with mail_plugins; move it there"
                    )
    return warnings


def _convert(spec: SettingSpec, raw: _Raw, parse: Callable[[str], _T]) -> _T:
    try:
        return parse(raw.text)
    except InvalidValueError as exc:
        raise SettingError(spec.qualified_name, str(exc), raw.where) from exc


def _parse_choice(spec: SettingSpec, text: str) -> str:
    word = text.strip().lower()
    if word not in spec.choices:
        raise InvalidValueError(f"expected one of {', '.join(spec.choices)}, got {text!r}")
    return word


def _sections_at(tree: ConfigSection, path: tuple[str, ...]) -> list[ConfigSection]:
    """All sections at ``path``; Dovecot merges repeated blocks, later values winning."""
    current = [tree]
    for element in path:
        current = [sub for section in current for sub in section.sections if _matches(sub, element)]
    return current


def _matches(section: ConfigSection, element: str) -> bool:
    type_, _, name = element.partition(" ")
    return section.type == type_ and (not name or section.name == name)


def _bind_address(address: str) -> str:
    if address == "*":
        return "0.0.0.0"
    if address.startswith("[") and address.endswith("]"):
        return address[1:-1]
    return address


def _passwd_file_args(text: str) -> tuple[dict[str, str], str | None]:
    """Options and path of Dovecot passwd-file args: the path is the last word without ``=``."""
    options: dict[str, str] = {}
    path: str | None = None
    for word in text.split():
        key, equals, value = word.partition("=")
        if equals:
            options[key] = value
        else:
            path = word
    return options, path


def _collect_subsections(
    section: ConfigSection, prefix: str, into: dict[str, Mapping[str, str]]
) -> None:
    for sub in section.sections:
        label = f"{prefix}{sub.label}"
        into[label] = MappingProxyType({entry.key: entry.value for entry in sub.settings})
        _collect_subsections(sub, f"{label}/", into)


def _unknown_settings(tree: ConfigSection) -> list[str]:
    """Every setting and block no declaration covers, as ``name (file:line)``."""
    found: list[str] = []
    freeform = {block.type for block in schema.FREEFORM_BLOCKS}
    _walk_unknown(tree, (), freeform, found)
    return found


def _walk_unknown(
    section: ConfigSection, path: tuple[str, ...], freeform: set[str], found: list[str]
) -> None:
    known_keys = {spec.name for spec in schema.SETTINGS if spec.section == path}
    for entry in section.settings:
        if entry.key not in known_keys:
            found.append(f"{entry.key} ({entry.where})")
    child_elements = {
        spec.section[len(path)]
        for spec in schema.SETTINGS
        if len(spec.section) > len(path) and spec.section[: len(path)] == path
    }
    for sub in section.sections:
        if not path and sub.type == "protocol":
            if sub.name in PROTOCOL_SERVICES:
                _walk_unknown_protocol(sub, found)
            else:
                found.append(f"{sub.label} {{ }} ({sub.where})")
            continue
        if not path and sub.type in freeform:
            continue
        element = next((e for e in sorted(child_elements) if _matches(sub, e)), None)
        if element is None:
            found.append(f"{sub.label} {{ }} ({sub.where})")
        else:
            _walk_unknown(sub, (*path, element), freeform, found)


def _walk_unknown_protocol(section: ConfigSection, found: list[str]) -> None:
    """Inside ``protocol lmtp|imap|lda { }`` only the per-service settings are read."""
    known_keys = {spec.name for spec in schema.PROTOCOL_SETTINGS}
    for entry in section.settings:
        if entry.key not in known_keys:
            found.append(f"{entry.key} ({entry.where})")
    for sub in section.sections:
        if sub.type not in ("plugin", "mail_plugins"):
            found.append(f"{sub.label} {{ }} ({sub.where})")
