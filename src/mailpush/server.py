"""Starting and stopping the configured services in one asyncio process.

`MailpushServer` builds every part once from the one `Settings` object and
passes it down; nothing is kept in module globals. Stopping is ordered so
that nothing acknowledged is lost: listeners stop accepting, in-flight
deliveries finish (bounded by `mailpush_shutdown_timeout`), then the store
drains its write queue and closes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from dataclasses import dataclass
from typing import Literal

from .auth import AuthPenalty, PasswdFile, PasswdFileAuthenticator, resolve_user
from .config import Settings
from .delivery import DefaultFilingPlanner, DeliveryAgent
from .dispatch import (
    Dispatcher,
    FrameworkServices,
    MetricsEndpoint,
    PushMetrics,
    PushRecorder,
    RetryPolicy,
)
from .dispatch.outbox_recorder import PushServicePlan, push_service_plan
from .drivers import DriverRegistry, PushDriver, default_registry, driver_configs
from .errors import SettingError
from .imap import ImapOptions, ImapServer
from .imap.heavy_work import HeavyWork
from .imap.user_ip_connections import UserIpConnections
from .lmtp import LmtpOptions, LmtpServer
from .sieve import build_sieve_planner
from .store import SqliteStore

log = logging.getLogger(__name__)

STORE_FILE = "mail.sqlite"


@dataclass(frozen=True, slots=True)
class BoundListener:
    service: str
    address: str
    port: int


def open_store(settings: Settings) -> SqliteStore:
    """The store the settings name, opened (schema created or checked)."""
    store = SqliteStore(
        settings.data_dir / STORE_FILE,
        fsync=settings.mail_fsync,
        mailbox_count_limit=settings.quota_mailbox_count,
    )
    store.open()
    return store


class UserDirectory:
    """Recipient and login lookup against the configured passwd-file."""

    def __init__(self, settings: Settings) -> None:
        self._passwd = PasswdFile(settings.auth.passdb.path)
        self._format = settings.auth.passdb.username_format or settings.auth.username_format
        self._scheme = settings.auth.passdb.scheme
        # Dovecot's passwd-file default scheme is CRYPT.
        self._logins = PasswdFileAuthenticator(self._passwd, self._format, self._scheme or "CRYPT")

    def resolve(self, address: str) -> str | None:
        record = resolve_user(self._passwd, address, self._format)
        return None if record is None else record.username

    async def authenticate(self, login: str, password: str) -> str | None:
        """The user name for a correct login and password, else None.

        Hash verification runs off the event loop (Argon2 takes tens of ms), and
        an unknown user costs the same verification (see `PasswdFileAuthenticator`).
        """
        return await self._logins.authenticate(login, password)

    def has_users(self) -> bool:
        return bool(self._passwd.users())

    def home(self, user: str) -> str | None:
        """The home directory (`~` in Sieve paths): userdb_home, else the passwd-file field."""
        record = self._passwd.lookup(user)
        if record is None:
            return None
        return record.userdb_fields.get("home") or record.home or None

    def user_settings(self, user: str) -> dict[str, str]:
        """Per-user userdb fields: the passwd-file's uid, gid and home (userdb fields in
        Dovecot too, read by Lua's `mail_user`), then `userdb_KEY=VALUE` fields, which win.
        They override the global `plugin {}` settings."""
        record = self._passwd.lookup(user)
        if record is None:
            return {}
        columns = (("uid", record.uid), ("gid", record.gid), ("home", record.home))
        fields = {key: str(value) for key, value in columns if value}
        fields.update(record.userdb_fields)
        return fields


@dataclass
class PushSetup:
    """The configured drivers and what feeds them; empty when no driver is configured."""

    drivers: dict[str, PushDriver]
    services: FrameworkServices
    metrics: PushMetrics
    recorder: PushRecorder | None
    #: Which drivers each service (lmtp, imap, lda) pushes to, from its `mail_plugins`.
    plan: PushServicePlan


def build_push(
    settings: Settings,
    store: SqliteStore,
    users: UserDirectory,
    registry: DriverRegistry | None = None,
    delivery_service: str = "lmtp",
) -> PushSetup:
    """Instantiate every configured driver (bad driver settings stop start-up here)
    and install the outbox recorder in the store.

    ``delivery_service`` is the service this process delivers as: ``lmtp`` for the
    server, ``lda`` for `mailpush deliver`."""
    registry = registry or default_registry()
    services = FrameworkServices(
        store,
        settings.plugin,
        users.user_settings,
        ssl_client_ca_file=settings.ssl_client_ca_file,
        push_concurrency=settings.push.concurrency,
        push_timeout=settings.push.timeout,
        outbox=store.outbox,
    )
    drivers: dict[str, PushDriver] = {}
    for config in driver_configs(settings):
        driver_class = registry.get(config.driver, "push_notification_driver", config.where)
        drivers[config.instance] = driver_class(config, services)
    metrics = PushMetrics()
    plan = push_service_plan(settings, {name: driver.name for name, driver in drivers.items()})
    recorder = (
        PushRecorder(drivers, metrics, plan=plan, delivery_service=delivery_service)
        if drivers
        else None
    )
    store.set_recorder(recorder)
    return PushSetup(drivers, services, metrics, recorder, plan)


def build_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server TLS context for IMAPS and STARTTLS, or None when TLS is off.

    A certificate or key that cannot be loaded stops start-up: a server that
    silently drops TLS would push clients to plaintext.
    """
    tls = settings.ssl
    if not tls.enabled or tls.cert_path is None or tls.key_path is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_path, tls.key_path)
    except (OSError, ssl.SSLError) as exc:
        raise SettingError(
            "ssl_cert",
            f"cannot load certificate {tls.cert_path} with key {tls.key_path}: {exc}",
            str(settings.source_path or ""),
        ) from exc
    return context


def imap_options(
    settings: Settings, address: str, port: int, implicit_tls: bool, tls: ssl.SSLContext | None
) -> ImapOptions:
    """One IMAP listener's options: TLS from the first byte (imaps) or STARTTLS when possible."""
    return ImapOptions(
        address=address,
        port=port,
        tls=tls if implicit_tls else None,
        starttls=None if implicit_tls else tls,
        allow_plaintext_auth=plaintext_auth_policy(settings),
        max_line_length=settings.imap_max_line_length,
        max_literal_size=settings.max_message_size,
        max_heavy_commands_per_user=settings.imap_max_heavy_commands,
        temp_dir=str(settings.mail_temp_dir),
        mail_max_userip_connections=settings.mail_max_userip_connections,
        auth_failure_delay=settings.auth_failure_delay,
    )


def plaintext_auth_policy(settings: Settings) -> Literal["always", "loopback", "never"]:
    """Where LOGIN and AUTHENTICATE PLAIN work without TLS.

    `ssl = required` refuses them everywhere, loopback included: stricter than
    Dovecot, which counts a connection whose remote IP equals its local IP as
    secured, because an admin who requires TLS should not find a plaintext
    login path left open. `disable_plaintext_auth` alone keeps loopback open.
    """
    if settings.ssl.mode == "required":
        return "never"
    return "loopback" if settings.auth.disable_plaintext_auth else "always"


def build_delivery_agent(
    settings: Settings, store: SqliteStore, users: UserDirectory
) -> DeliveryAgent:
    """Sieve (`sieve_before`, `sieve`, `sieve_after`) first; INBOX / +detail for the keep.

    Raises SettingError for a bad global `sieve_max_actions` / `sieve_max_script_size`.
    """
    fallback = DefaultFilingPlanner(
        store,
        save_to_detail_mailbox=settings.lmtp.save_to_detail_mailbox,
        autocreate=settings.lmtp.mailbox_autocreate,
    )
    planner = build_sieve_planner(settings, store, fallback, users.user_settings, users.home)
    return DeliveryAgent(store, planner)


class MailpushServer:
    """Every service of one mailpush process."""

    def __init__(self, settings: Settings, registry: DriverRegistry | None = None) -> None:
        self.settings = settings
        #: Which drivers can be configured (tests register their own).
        self.registry = registry
        self.store: SqliteStore | None = None
        self.push: PushSetup | None = None
        self.dispatcher: Dispatcher | None = None
        self.lmtp: list[LmtpServer] = []
        self.imap: list[ImapServer] = []
        self._imap_heavy: HeavyWork | None = None
        self.metrics_endpoint: MetricsEndpoint | None = None
        self.listeners: list[BoundListener] = []

    async def start(self) -> None:
        settings = self.settings
        # Certificate problems stop start-up before any port is opened.
        tls = build_tls_context(settings) if "imap" in settings.protocols else None
        self.store = open_store(settings)
        log.info("store: %s (mail_fsync=%s)", self.store.path, settings.mail_fsync)
        users = UserDirectory(settings)
        log.info("users: passwd-file %s", settings.auth.passdb.path)
        if not users.has_users():
            log.warning(
                "no users in %s yet: add one with `mailpush user add NAME%s`",
                settings.auth.passdb.path,
                f" --config {settings.source_path}" if settings.source_path else "",
            )
        try:
            # Deliveries see `protocol lmtp { }` values (Sieve's plugin settings...).
            agent = build_delivery_agent(settings.for_protocol("lmtp"), self.store, users)
            await self._start_push(settings, self.store, users)
            await self._start_metrics(settings)
            for listener in settings.listeners:
                if listener.service != "lmtp" or "lmtp" not in settings.protocols:
                    continue
                options = LmtpOptions(
                    address=listener.address,
                    port=listener.port,
                    max_message_size=settings.max_message_size,
                    recipient_delimiter=settings.for_protocol("lmtp").lmtp.recipient_delimiter,
                )
                server = LmtpServer(agent, users.resolve, options)
                host, port = await server.start()
                self.lmtp.append(server)
                self.listeners.append(BoundListener("lmtp", host, port))
                log.info("lmtp: listening on %s:%d", host, port)
            await self._start_imap(settings, self.store, users, tls)
        except BaseException:
            await self.stop()
            raise

    async def _start_imap(
        self,
        settings: Settings,
        store: SqliteStore,
        users: UserDirectory,
        tls: ssl.SSLContext | None,
    ) -> None:
        if "imap" not in settings.protocols:
            return
        # One failure penalty and one connection count for all IMAP listeners, as in Dovecot.
        penalty = AuthPenalty(initial=settings.auth_failure_delay)
        user_ip_connections = UserIpConnections()
        # One worker pool and one heavy-command bound per user across IMAP and IMAPS.
        heavy = HeavyWork(settings.for_protocol("imap").imap_max_heavy_commands)
        self._imap_heavy = heavy
        for listener in settings.listeners:
            if listener.service not in ("imap", "imaps"):
                continue
            options = imap_options(
                settings.for_protocol("imap"), listener.address, listener.port, listener.ssl, tls
            )
            server = ImapServer(
                store,
                users.authenticate,
                options,
                penalty=penalty,
                user_ip_connections=user_ip_connections,
                heavy=heavy,
            )
            host, port = await server.start()
            self.imap.append(server)
            self.listeners.append(BoundListener(listener.service, host, port))
            log.info(
                "%s: listening on %s:%d%s",
                listener.service,
                host,
                port,
                " (STARTTLS offered)" if options.starttls is not None else "",
            )

    async def _start_metrics(self, settings: Settings) -> None:
        if settings.metrics_listen is None or self.push is None:
            return
        address, port = settings.metrics_listen
        refresh = None if self.dispatcher is None else self.dispatcher.refresh_queue_depth
        self.metrics_endpoint = MetricsEndpoint(
            self.push.metrics.registry, address, port, refresh
        )
        host, bound = await self.metrics_endpoint.start()
        self.listeners.append(BoundListener("metrics", host, bound))
        log.info("metrics: http://%s:%d/metrics", host, bound)

    async def _start_push(
        self, settings: Settings, store: SqliteStore, users: UserDirectory
    ) -> None:
        self.push = build_push(settings, store, users, self.registry)
        if not self.push.drivers:
            log.info("push: no push_notification drivers configured")
            return
        log.info("push: %s", self.push.plan.describe())
        if not self.push.plan.pushes:
            log.warning(
                "push: drivers are configured but no service's mail_plugins loads them"
                " (push_notification, and mail_lua push_notification_lua for lua):"
                " nothing will be pushed"
            )
        push = settings.push
        policy = RetryPolicy(push.retry_initial, push.retry_max_interval, push.max_age)
        self.dispatcher = Dispatcher(
            store.outbox,
            self.push.drivers,
            policy=policy,
            concurrency=push.concurrency,
            call_timeout=push.timeout,
            retention=push.retention,
            metrics=self.push.metrics,
        )
        await self.dispatcher.start()
        store.hub.subscribe(self.dispatcher.wake)
        for name, driver in self.push.drivers.items():
            log.info("push: driver %s (%s) ready", name, driver.name)

    async def stop(self) -> None:
        timeout = self.settings.shutdown_timeout
        await asyncio.gather(
            *(server.stop(timeout) for server in self.lmtp),
            *(server.stop(timeout) for server in self.imap),
        )
        self.lmtp.clear()
        self.imap.clear()
        if self._imap_heavy is not None:
            self._imap_heavy.close()
            self._imap_heavy = None
        if self.metrics_endpoint is not None:
            await self.metrics_endpoint.stop()
            self.metrics_endpoint = None
        self.listeners.clear()
        if self.dispatcher is not None:
            await self.dispatcher.stop(timeout)
            self.dispatcher = None
        if self.push is not None:
            await self.push.services.close()
            self.push = None
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None
        log.info("stopped")


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly."""
    server = MailpushServer(settings)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("mailpush ready")
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await server.stop()
