"""Reading a Dovecot-style configuration file into `Settings`.

Values are read through the declarations in `schema.py`; a value that cannot be used
raises `SettingError` naming the setting and its ``file:line``. Settings mailpush does
not know are not fatal - a Dovecot configuration carries many - but they are all
named, with their places, in ONE warning, so that a typo is not silently ignored.
What the nested sections (``plugin``, ``protocol``, ``push_notification``) mean is
decided in `dovecot_sections.py`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal, TypeVar

from mailpush.config import schema
from mailpush.config.dovecot_sections import (
    mail_plugins,
    plugin_places,
    plugin_values,
    protocol_push_driver_warnings,
    push_notification_blocks,
    sections_at,
    unknown_settings,
)
from mailpush.config.schema import SettingSpec, SettingType
from mailpush.config.settings import (
    PROTOCOL_SERVICES,
    AuthSettings,
    DispatcherLmtp,
    EventLoopKind,
    FsyncMode,
    Listener,
    LmtpSettings,
    LoadedConfig,
    PassdbSettings,
    ProtocolOverrides,
    PushSettings,
    ServiceName,
    Settings,
    SslSettings,
    UserdbSettings,
)
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
from mailpush.logs.settings import SYSLOG, LogDestination, LogSettings
from mailpush.logs.text import mask_secrets

__all__ = ["load_settings", "parse_setting_value", "settings_from_tree"]

SUPPORTED_PROTOCOLS = ("imap", "lmtp")
SUPPORTED_PASSDB_DRIVERS = ("passwd-file",)
SUPPORTED_USERDB_DRIVERS = ("passwd-file", "static")


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
        mail_plugins=mail_plugins(tree, None),
        plugin=plugin_values(tree, None),
        plugin_places=plugin_places(tree),
        push_notification_blocks=push_notification_blocks(tree),
        mail_fsync=reader.fsync(),
        mail_debug=reader.boolean(schema.MAIL_DEBUG),
        log=reader.log_settings(),
        imap_max_line_length=reader.size(schema.IMAP_MAX_LINE_LENGTH),
        mail_max_userip_connections=reader.limit(schema.MAIL_MAX_USERIP_CONNECTIONS),
        quota_mailbox_count=reader.limit(schema.QUOTA_MAILBOX_COUNT),
        auth_failure_delay=reader.duration(schema.AUTH_FAILURE_DELAY),
        mail_temp_dir=reader.path(schema.MAIL_TEMP_DIR) or Path("/tmp"),
        imap_max_heavy_commands=reader.count(schema.IMAP_MAX_HEAVY_COMMANDS),
        workers=_convert(schema.WORKERS, reader.raw(schema.WORKERS), _parse_workers),
        event_loop=reader.event_loop(),
        dispatcher_lmtp=reader.dispatcher_lmtp(),
        data_dir=data_dir,
        max_message_size=reader.size(schema.MAX_MESSAGE_SIZE),
        metrics_listen=reader.host_port(schema.METRICS_LISTEN),
        metrics_where=reader.raw(schema.METRICS_LISTEN).where,
        shutdown_timeout=reader.duration(schema.SHUTDOWN_TIMEOUT),
        push=PushSettings(
            concurrency=reader.count(schema.PUSH_CONCURRENCY),
            timeout=reader.duration(schema.PUSH_TIMEOUT),
            retry_initial=reader.duration(schema.PUSH_RETRY_INITIAL),
            retry_max_interval=reader.duration(schema.PUSH_RETRY_MAX_INTERVAL),
            max_age=reader.duration(schema.PUSH_MAX_AGE),
            retention=reader.duration(schema.PUSH_RETENTION),
            claim_lease=_convert(
                schema.PUSH_CLAIM_LEASE, reader.raw(schema.PUSH_CLAIM_LEASE), _parse_claim_lease
            ),
        ),
        source_path=source_path,
        ssl_client_ca_file=reader.path(schema.SSL_CLIENT_CA_FILE),
        store=_convert(schema.STORE, reader.raw(schema.STORE), _parse_store_uri),
        push_notification_defaults=reader.push_notification_defaults(),
        protocol_overrides=MappingProxyType(
            {name: reader.protocol_overrides(name) for name in PROTOCOL_SERVICES}
        ),
    )
    warnings.extend(protocol_push_driver_warnings(tree))
    unknown = unknown_settings(tree)
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
        sections = sections_at(self._tree, spec.section) if within is None else within
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
            cert_where=cert.where,
        )
        if mode == "required" and not settings.enabled:
            raise SettingError(
                "ssl",
                "'required' needs ssl_cert and ssl_key (e.g. ssl_cert = </etc/ssl/cert.pem)",
                self.raw(schema.SSL).where,
            )
        return settings

    def log_settings(self) -> LogSettings:
        return LogSettings.of(
            self._log_destination(schema.LOG_PATH) or None,
            self._log_destination(schema.INFO_LOG_PATH),
            self._log_destination(schema.DEBUG_LOG_PATH),
            syslog_facility=self.choice(schema.SYSLOG_FACILITY),
            timestamp=self.string(schema.LOG_TIMESTAMP),
            deliver_log_format=self.string(schema.DELIVER_LOG_FORMAT),
        )

    def _log_destination(self, spec: SettingSpec) -> LogDestination | Literal[""]:
        """`syslog`, a file, None for standard error, "" when not set."""
        text = self.raw(spec).text.strip()
        if text == SYSLOG:
            return SYSLOG
        if text in ("/dev/stderr", "/dev/fd/2"):
            return None
        return self.resolve(text) if text else ""

    def event_loop(self) -> EventLoopKind:
        return "asyncio" if self.choice(schema.EVENT_LOOP) == "asyncio" else "uvloop"

    def dispatcher_lmtp(self) -> DispatcherLmtp:
        choice = self.choice(schema.DISPATCHER_LMTP)
        return "yes" if choice == "yes" else "no" if choice == "no" else "auto"

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
                configured = sections_at(self._tree, port_spec.section)
                if configured:
                    warnings.append(
                        f"{configured[0].where}: inet_listener {service} is not started: "
                        "it uses TLS and ssl_cert/ssl_key are not set (or ssl = no)"
                    )
                continue
            addresses = self.words(address_spec)
            chosen = addresses if addresses.values else listen
            where = self.raw(port_spec).where or chosen.where
            for address in chosen.values:
                result.append(
                    Listener(service, _bind_address(address), port, implicit_tls, where)
                )
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
            mail_plugins=mail_plugins(self._tree, protocol),
            plugin=plugin_values(self._tree, protocol),
            lmtp=self.lmtp(protocol),
            imap_max_line_length=self.size(schema.IMAP_MAX_LINE_LENGTH, protocol),
        )

    def push_notification_defaults(self) -> Mapping[str, str]:
        values = {}
        for spec in schema.PUSH_NOTIFICATION_DEFAULTS:
            raw = self.raw(spec)
            if raw.where is not None:
                values[spec.name] = raw.text
        return MappingProxyType(values)


_T = TypeVar("_T")


@dataclass(frozen=True)
class _Words:
    values: tuple[str, ...]
    where: str | None


def _convert(spec: SettingSpec, raw: _Raw, parse: Callable[[str], _T]) -> _T:
    try:
        return parse(raw.text)
    except InvalidValueError as exc:
        raise SettingError(spec.qualified_name, str(exc), raw.where) from exc


#: URI schemes libpq reads as PostgreSQL connection URIs.
_STORE_SCHEMES = ("postgresql://", "postgres://")


def _parse_store_uri(text: str) -> str:
    """`mailpush_store`: empty (SQLite) or a libpq URI; the password never echoed back."""
    uri = text.strip()
    if uri and not uri.lower().startswith(_STORE_SCHEMES):
        raise InvalidValueError(
            f"expected a postgresql://user@host:port/database URI, or nothing for the SQLite"
            f" store in mailpush_data_dir; got {mask_secrets(uri)!r}"
        )
    return uri


#: The most `mailpush_workers` takes: far beyond any core count that helps one store.
MAX_WORKERS = 256


def _parse_workers(text: str) -> int:
    """`mailpush_workers`: a count, or `0`/`auto` for one per core this process may use."""
    word = text.strip().lower()
    if word in ("auto", "0"):
        return len(os.sched_getaffinity(0)) or 1
    try:
        return parse_int(word, minimum=1, maximum=MAX_WORKERS)
    except InvalidValueError as exc:
        raise InvalidValueError(f"{exc}, or auto (0) for one process per core") from exc


#: The shortest `mailpush_push_claim_lease`: renewed every second, so a renewal up to
#: two seconds late (a busy writer, a slow round trip) still keeps the claims.
MIN_CLAIM_LEASE = 3.0
#: The longest: past an hour a dead node's claimed pushes are news no longer.
MAX_CLAIM_LEASE = 3600.0


def _parse_claim_lease(text: str) -> float:
    """`mailpush_push_claim_lease`: a duration the dispatcher can renew in time, and one
    that does not hold a dead node's claimed pushes back for hours."""
    lease = parse_duration(text)
    if MIN_CLAIM_LEASE <= lease <= MAX_CLAIM_LEASE:
        return lease
    if lease < MIN_CLAIM_LEASE:
        why = (
            "too short to renew safely: claims are renewed every third of the lease, and a"
            " renewal a moment late would let another node send them a second time"
        )
    else:
        why = "a dead node's claimed pushes would wait that long before another node sends them"
    raise InvalidValueError(
        f"expected a lease from {MIN_CLAIM_LEASE:g}s to {MAX_CLAIM_LEASE / 3600:g}h, got"
        f" {text.strip()!r}: {why}"
    )


def _parse_choice(spec: SettingSpec, text: str) -> str:
    word = text.strip().lower()
    if word not in spec.choices:
        raise InvalidValueError(f"expected one of {', '.join(spec.choices)}, got {text!r}")
    return word


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
