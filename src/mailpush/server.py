"""Starting, reloading and stopping the configured services in one asyncio process.

`MailpushServer` builds every part once from the one `Settings` object and
passes it down; nothing is kept in module globals. Stopping is ordered so
that nothing acknowledged is lost: listeners stop accepting, in-flight
deliveries finish (bounded by `mailpush_shutdown_timeout`), then the store
drains its write queue and closes.

A reload (SIGHUP, or `mailpush reload` over the control socket) reads the
file again and runs the same checks as start-up; a configuration that fails
them is refused with one log line (`file:line: why`) and nothing changes.
Otherwise everything that depends on it is built anew first (users, Sieve,
TLS context, push drivers) and only then swapped in: new connections and new
deliveries use it, open connections stay, running pushes finish on the
drivers they began with (see `Dispatcher.replace_drivers`). What a process
holds from start to end (sockets, store, log) needs a restart: reload_scope.py.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from prometheus_client import generate_latest

from .auth import AuthPenalty, PasswdFile, PasswdFileAuthenticator, resolve_user
from .config import Settings, load_settings
from .control_socket import (
    ConnectedSession,
    ControlSocket,
    ReloadOutcome,
    control_socket_path,
)
from .delivery import DefaultFilingPlanner, DeliveryAgent
from .dispatch import (
    Dispatcher,
    FrameworkServices,
    MetricsEndpoint,
    PushMetrics,
    PushRecorder,
    RetryPolicy,
)
from .dispatch.metrics_endpoint import Readiness
from .dispatch.outbox_recorder import PushServicePlan, push_service_plan
from .drivers import DriverRegistry, PushDriver
from .drivers.base import StoreView
from .errors import ConfigError, ServiceError, StoreError
from .event_loop import running_loop_name
from .imap import ImapOptions, ImapServer
from .imap.heavy_work import HeavyWork
from .imap.user_ip_connections import UserIpConnections
from .lmtp import LmtpOptions, LmtpServer
from .logging_config import mask_secrets
from .logs.worker_tag import name_worker_in_log
from .reload_scope import restart_only_changes
from .service_metrics import ServiceMetrics
from .sieve import build_sieve_planner
from .startup_checks import check_startup, instantiate_drivers
from .store import ChangeHub, MailStore
from .store.feed_protocol import ChangeFeed, link_feed
from .store.open_feed import configured_feed
from .store.open_store import SQLITE_STORE_FILE, store_location
from .store.open_store import open_store as open_configured_store
from .worker_metrics import workers_exposition
from .worker_readiness import workers_readiness
from .worker_role import WorkerRole, accepts_lmtp

log = logging.getLogger(__name__)

STORE_FILE = SQLITE_STORE_FILE
#: Seconds `/readyz` waits for the store's writer to take the write lock.
READY_STORE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class BoundListener:
    service: str
    address: str
    port: int


class ServedStore(MailStore, StoreView, Protocol):
    """What a process that runs push drivers asks of its store beyond `MailStore`: the
    drivers' view (`StoreView`: the Chronos Message-ID claims), commit metrics and the
    readiness check. Both backends have them; MailStore may take them in later."""

    def observe_commits(self, observer: Callable[[int, float], None] | None) -> None: ...
    async def check_writable(self) -> None: ...


def open_store(settings: Settings) -> ServedStore:
    """The store the settings name, opened (schema created or migrated); which backend
    is `store/open_store.py`'s choice, and nothing else here names one."""
    return open_configured_store(settings)


def open_change_feed(settings: Settings, hub: ChangeHub) -> ChangeFeed:
    """The change feed of the store the settings name (docs/operations.md#the-change-feed).

    UNIX datagrams in the data directory, which reach every process of this host
    that shares it; PostgreSQL's LISTEN/NOTIFY when `mailpush_store` names a
    database, which reaches every node (`store/open_feed.py` chooses). `hub`
    says who "every user" is when a listening process must assume any user
    changed (an overflowed missed file, a listening connection found again)."""
    return configured_feed(settings, hub.users)


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
    store: ServedStore,
    users: UserDirectory,
    registry: DriverRegistry | None = None,
    delivery_service: str = "lmtp",
    *,
    metrics: PushMetrics | None = None,
    install: bool = True,
) -> PushSetup:
    """Instantiate every configured driver (bad driver settings stop start-up here)
    and install the outbox recorder in the store.

    ``delivery_service`` is the service this process delivers as: ``lmtp`` for the
    server, ``lda`` for `mailpush deliver`. A reload passes the running `metrics`
    (the counters go on) and installs the recorder itself (``install=False``),
    once the new drivers have started."""
    services = FrameworkServices(
        store,
        settings.plugin,
        users.user_settings,
        ssl_client_ca_file=settings.ssl_client_ca_file,
        push_concurrency=settings.push.concurrency,
        push_timeout=settings.push.timeout,
        outbox=store.outbox,
    )
    drivers = instantiate_drivers(settings, services, registry)
    metrics = metrics or PushMetrics()
    plan = push_service_plan(settings, {name: driver.name for name, driver in drivers.items()})
    recorder = (
        PushRecorder(drivers, metrics, plan=plan, delivery_service=delivery_service)
        if drivers
        else None
    )
    if install:
        store.set_recorder(recorder)
    return PushSetup(drivers, services, metrics, recorder, plan)


def lmtp_options(settings: Settings, address: str, port: int) -> LmtpOptions:
    """One LMTP listener's options."""
    return LmtpOptions(
        address=address,
        port=port,
        max_message_size=settings.max_message_size,
        recipient_delimiter=settings.for_protocol("lmtp").lmtp.recipient_delimiter,
    )


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
    settings: Settings, store: MailStore, users: UserDirectory
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
    return DeliveryAgent(store, planner, settings.log.deliver_log_format)


class MailpushServer:
    """Every service of one mailpush process."""

    #: Seconds between the dispatcher's looks at the outbox when nothing woke it (retries
    #: that fell due; rows of other processes whose announcement is late).
    dispatch_poll_interval = 1.0

    def __init__(
        self,
        settings: Settings,
        registry: DriverRegistry | None = None,
        *,
        role: WorkerRole | None = None,
    ) -> None:
        self.settings = settings
        #: Which drivers can be configured (tests register their own).
        self.registry = registry
        #: Which worker this is when `mailpush_workers` > 1 (None: the only process).
        self.role = role
        self.store: ServedStore | None = None
        #: Hears other processes' commits, announces this one's (None until started).
        self.feed: ChangeFeed | None = None
        self.push: PushSetup | None = None
        self.dispatcher: Dispatcher | None = None
        self.lmtp: list[LmtpServer] = []
        #: Whether this process takes LMTP connections (worker_role.accepts_lmtp).
        self._lmtp_here = True
        self.imap: list[ImapServer] = []
        self._imap_heavy: HeavyWork | None = None
        self.metrics_endpoint: MetricsEndpoint | None = None
        self.listeners: list[BoundListener] = []
        #: Every service's metrics; the push metrics share its registry.
        self.metrics = ServiceMetrics()
        self.push_metrics = PushMetrics(self.metrics.registry)
        #: The settings the process started with: what a reload cannot change is kept.
        self._started_settings = settings
        #: Each IMAP listener's service (imap or imaps), for rebuilding its options.
        self._imap_services: list[tuple[str, ImapServer]] = []
        self._tls: ReloadableTls | None = None
        self.control: ControlSocket | None = None
        self._reload_lock = asyncio.Lock()
        #: Replaced push services, closed once the deliveries using them ended.
        self._retiring: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        settings = self.settings
        # Every check `mailpush config check` runs, before any port or the store is opened.
        tls = check_startup(settings, self.registry).tls
        if tls is not None:
            self._tls = ReloadableTls(tls)
        log.info("event loop: %s", running_loop_name())
        self.store = open_store(settings)
        self.store.observe_commits(self.metrics.store.committed)
        log.info("store: %s (mail_fsync=%s)", store_location(settings), settings.mail_fsync)
        users = UserDirectory(settings)
        log.info("users: passwd-file %s", settings.auth.passdb.path)
        if not users.has_users():
            log.warning(
                "no users in %s yet: add one with `mailpush user add NAME%s`",
                settings.auth.passdb.path,
                f" --config {settings.source_path}" if settings.source_path else "",
            )
        try:
            await self._start_feed(settings, self.store)
            # Deliveries see `protocol lmtp { }` values (Sieve's plugin settings...).
            agent = build_delivery_agent(settings.for_protocol("lmtp"), self.store, users)
            await self._start_push(settings, self.store, users)
            await self._start_metrics(settings)
            # Decided by the drivers configured now: a reload opens or closes no listener.
            self._lmtp_here = lmtp_here = accepts_lmtp(
                self.role, settings.dispatcher_lmtp, bool(self.push and self.push.drivers)
            )
            if not lmtp_here and "lmtp" in settings.protocols:
                log.info(
                    "lmtp: worker 0 runs the push dispatcher and takes no LMTP connections;"
                    " the other workers do (mailpush_dispatcher_lmtp = %s)",
                    settings.dispatcher_lmtp,
                )
            for listener in settings.listeners:
                if listener.service != "lmtp" or "lmtp" not in settings.protocols or not lmtp_here:
                    continue
                options = lmtp_options(settings, listener.address, listener.port)
                server = LmtpServer(agent, users.resolve, options, self.metrics.lmtp)
                host, port = await server.start()
                self.lmtp.append(server)
                self.listeners.append(BoundListener("lmtp", host, port))
                log.info("lmtp: listening on %s:%d", host, port)
            await self._start_imap(settings, self.store, users, tls)
            await self._start_control(settings)
        except BaseException:
            await self.stop()
            raise

    async def _start_imap(
        self,
        settings: Settings,
        store: MailStore,
        users: UserDirectory,
        tls: ssl.SSLContext | None,
    ) -> None:
        if "imap" not in settings.protocols:
            return
        # One failure penalty and one connection count for all IMAP listeners, as in Dovecot.
        penalty = AuthPenalty(initial=settings.auth_failure_delay)
        user_ip_connections = UserIpConnections()
        # One worker pool and one heavy-command bound per user across IMAP and IMAPS.
        heavy = HeavyWork(
            settings.for_protocol("imap").imap_max_heavy_commands,
            sharing=settings.workers if self.role is not None else 1,
        )
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
                metrics=self.metrics.imap,
            )
            host, port = await server.start()
            self.imap.append(server)
            self._imap_services.append((listener.service, server))
            self.listeners.append(BoundListener(listener.service, host, port))
            log.info(
                "%s: listening on %s:%d%s",
                listener.service,
                host,
                port,
                " (STARTTLS offered)" if options.starttls is not None else "",
            )

    async def _start_feed(self, settings: Settings, store: MailStore) -> None:
        """Hear other processes' commits as `ChangedElsewhere` in the hub (IMAP sessions
        and the dispatcher subscribe there) and announce this process's own."""
        feed = open_change_feed(settings, store.hub)
        self.feed = feed
        await feed.listen(store.hub.publish)
        link_feed(store.hub, feed)

    async def _start_metrics(self, settings: Settings) -> None:
        if settings.metrics_listen is None or (
            self.role is not None and not self.role.serves_metrics
        ):
            return
        address, port = settings.metrics_listen
        exposition = None
        readiness: Readiness = self.readiness_problems
        if self.role is not None and settings.workers > 1:
            registry, data_dir, workers = self.metrics.registry, settings.data_dir, settings.workers

            async def exposition() -> bytes:
                return await workers_exposition(registry, data_dir, workers)

            async def readiness() -> list[str]:
                return await workers_readiness(self.readiness_problems, data_dir, workers)

        self.metrics_endpoint = MetricsEndpoint(
            self.metrics.registry, address, port, self._refresh_gauges, readiness,
            exposition=exposition,
        )
        host, bound = await self.metrics_endpoint.start()
        self.listeners.append(BoundListener("metrics", host, bound))
        log.info("metrics: http://%s:%d/metrics (/healthz, /readyz)", host, bound)

    async def _refresh_gauges(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.refresh_queue_depth()

    async def readiness_problems(self) -> list[str]:
        """What keeps the server from taking work (`/readyz`); empty when ready.

        Ready: every configured listener is bound, the store takes a write (its
        writer thread answers and gets the write lock within
        `READY_STORE_TIMEOUT`), and the push dispatcher, when drivers are
        configured, runs (in the worker that dispatches). With workers, this is
        one worker's answer (its control socket's `ready`); worker 0's
        `/readyz` gathers them all (`worker_readiness`).
        """
        problems: list[str] = []
        lmtp = "lmtp" in self.settings.protocols and self._lmtp_here
        wanted = sum(
            1 for listener in self.settings.listeners
            if (listener.service == "lmtp" and lmtp)
            or (listener.service in ("imap", "imaps") and "imap" in self.settings.protocols)
        )  # fmt: skip
        bound = len(self.lmtp) + len(self.imap)
        if bound < wanted:
            problems.append(f"listeners: {bound} of {wanted} bound")
        if self.store is None:
            problems.append("store: not open")
        else:
            try:
                await asyncio.wait_for(self.store.check_writable(), READY_STORE_TIMEOUT)
            except TimeoutError:
                problems.append(f"store: no write lock within {READY_STORE_TIMEOUT:g}s")
            except StoreError as exc:
                problems.append(f"store: {exc}")
        if self.push is not None and self.push.drivers and self._dispatches and (
            self.dispatcher is None or not self.dispatcher.running
        ):
            problems.append("push: the dispatcher is not running")
        return problems

    async def _start_control(self, settings: Settings) -> None:
        """The control socket; without it (path too long, another server answering on
        it) the server still runs, SIGHUP still reloads, and the log says why."""
        path = control_socket_path(settings.data_dir)
        if self.role is not None:
            path = self.role.control_path
        control = ControlSocket(path, self)
        try:
            await control.start()
        except ServiceError as exc:
            log.warning("%s; `mailpush who|kick|reload` cannot reach this server", exc)
            return
        self.control = control
        log.info("control socket: %s", control.path)

    async def _start_push(
        self, settings: Settings, store: ServedStore, users: UserDirectory
    ) -> None:
        self.push = build_push(settings, store, users, self.registry, metrics=self.push_metrics)
        if not self.push.drivers:
            log.info("push: no push_notification drivers configured")
            return
        self._describe_push(self.push)
        if not self._dispatches:
            log.info("push: this worker records push transactions; worker 0 sends them")
            return
        await self._start_dispatcher(settings, store, self.push)

    @property
    def _dispatches(self) -> bool:
        """Whether this process runs the push dispatcher: the only process, or worker 0."""
        return self.role is None or self.role.dispatches

    async def _start_dispatcher(
        self, settings: Settings, store: MailStore, push: PushSetup
    ) -> None:
        self.dispatcher = Dispatcher(
            store.outbox,
            push.drivers,
            policy=retry_policy(settings),
            concurrency=settings.push.concurrency,
            call_timeout=settings.push.timeout,
            retention=settings.push.retention,
            poll_interval=self.dispatch_poll_interval,
            metrics=push.metrics,
            claim_lease=settings.push.claim_lease,
        )
        await self.dispatcher.start()
        # Every record wakes it, ChangedElsewhere too: rows `mailpush deliver` or another
        # worker wrote are claimed at once, not at the next poll_interval.
        store.hub.subscribe(self.dispatcher.wake)

    @staticmethod
    def _describe_push(push: PushSetup) -> None:
        log.info("push: %s", push.plan.describe())
        if not push.plan.pushes:
            log.warning(
                "push: drivers are configured but no service's mail_plugins loads them"
                " (push_notification, and mail_lua push_notification_lua for lua):"
                " nothing will be pushed"
            )
        for name, driver in push.drivers.items():
            log.info("push: driver %s (%s) ready", name, driver.name)

    # --- what the control socket offers ---------------------------------------------

    def sessions(self) -> list[ConnectedSession]:
        """The open IMAP and LMTP connections, oldest first (`mailpush who`)."""
        found: list[ConnectedSession] = []
        for service, imap in self._imap_services:
            for connection in imap.connections:
                found.append(ConnectedSession(
                    service, connection.user or "", connection.peer_host,
                    connection.connected_at,
                ))  # fmt: skip
        for lmtp in self.lmtp:
            for protocol in list(lmtp.handler.connections):
                peer = protocol.session.peer if protocol.session is not None else None
                found.append(ConnectedSession(
                    "lmtp", ",".join(dict.fromkeys(protocol.recipients)),
                    str(peer[0]) if peer else "unknown", protocol.connected_at,
                ))  # fmt: skip
        return sorted(found, key=lambda session: session.since)

    def kick(self, user: str) -> int:
        """End `user`'s IMAP connections with `* BYE` (after a running command); how many."""
        kicked = 0
        for imap in self.imap:
            for connection in imap.connections:
                if connection.user == user:
                    connection.shutdown_when_idle("Disconnected by administrator.")
                    kicked += 1
        log.info("kick: user=<%s>: %d IMAP connection(s) disconnected", user, kicked)
        return kicked

    def metrics_text(self) -> str:
        """This process's metrics, for worker 0's `/metrics` (`worker_metrics`)."""
        return generate_latest(self.metrics.registry).decode()

    async def reload(self) -> ReloadOutcome:
        """Read the configuration file again and apply it; refused (and logged) if it fails
        the start-up checks, in which case the running configuration stays whole."""
        async with self._reload_lock:
            outcome = await self._reload()
        if not outcome.applied:
            log.error("reload refused, keeping the running configuration: %s", outcome.message)
            return outcome
        log.info("reload: %s", outcome.message)
        for setting in outcome.restart_needed:
            log.warning(
                "reload: %s changed but needs a restart to apply; the running value stays",
                setting,
            )
        return outcome

    async def _reload(self) -> ReloadOutcome:
        store = self.store
        if store is None:
            return ReloadOutcome(False, "the server is not running")
        source = self.settings.source_path
        try:
            loaded = await asyncio.to_thread(load_settings, source)
            new = loaded.settings
            plan = await asyncio.to_thread(check_startup, new, self.registry)
            users = UserDirectory(new)
            agent = build_delivery_agent(new.for_protocol("lmtp"), store, users)
            push = build_push(
                new, store, users, self.registry, metrics=self.push_metrics, install=False
            )
        except ConfigError as exc:
            return ReloadOutcome(False, mask_secrets(str(exc)))
        for warning in loaded.warnings:
            log.warning("reload: %s", warning)
        try:
            await self._switch_push(new, store, push)
        except Exception as exc:
            await push.services.close()
            return ReloadOutcome(
                False, mask_secrets(f"push drivers could not start: {exc}")
            )
        held = restart_only_changes(self._started_settings, new)
        # TLS switched on or off needs a restart (held); a new certificate applies now.
        if self._tls is not None and plan.tls is not None:
            self._tls.replace(plan.tls)
        tls = None if self._tls is None else self._tls.listening
        for lmtp in self.lmtp:
            lmtp.reconfigure(agent, users.resolve, lmtp_options(
                new, lmtp.options.address, lmtp.options.port
            ))  # fmt: skip
        imap_settings = new.for_protocol("imap")
        for service, imap in self._imap_services:
            imap.reconfigure(imap_options(
                imap_settings, imap.options.address, imap.options.port, service == "imaps", tls
            ), users.authenticate)  # fmt: skip
        self.settings = new
        shown = source or "built-in defaults"
        return ReloadOutcome(
            True, f"configuration reloaded from {shown}", tuple(held)
        )

    async def _switch_push(self, new: Settings, store: ServedStore, push: PushSetup) -> None:
        """New claims go to the new drivers, new commits are recorded for them; the old
        ones finish what they run and are closed after."""
        old = self.push
        if self.dispatcher is not None:
            retired = await self.dispatcher.replace_drivers(
                push.drivers,
                retry_policy(new),
                concurrency=new.push.concurrency,
                call_timeout=new.push.timeout,
                retention=new.push.retention,
                claim_lease=new.push.claim_lease,
            )
        else:
            retired = None
            if push.drivers and self._dispatches:
                await self._start_dispatcher(new, store, push)
        store.set_recorder(push.recorder)
        self.push = push
        if push.drivers:
            self._describe_push(push)
        if old is not None:
            await self._note_removed_drivers(store, old, push)
            task = asyncio.create_task(_close_after(retired, old.services))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _note_removed_drivers(store: MailStore, old: PushSetup, new: PushSetup) -> None:
        removed = sorted(set(old.drivers) - set(new.drivers))
        if not removed:
            return
        try:
            rows = await store.outbox.stats(time.time())
        except StoreError as exc:
            log.warning("reload: cannot count the removed drivers' queued transactions: %s", exc)
            rows = []
        waiting = {row.driver: row.pending + row.inflight + row.retrying for row in rows}
        for name in removed:
            log.warning(
                "reload: push driver instance %s was removed; its %d queued transaction(s)"
                " stay pending in the outbox (mailpush queue status) and are sent if an"
                " instance named %s is configured again; dead letters stay dead letters",
                name, waiting.get(name, 0), name,
            )  # fmt: skip

    async def stop(self) -> None:
        timeout = self.settings.shutdown_timeout
        if self.control is not None:
            await self.control.stop()
            self.control = None
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
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        self._imap_services.clear()
        if self.push is not None:
            await self.push.services.close()
            self.push = None
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None
        if self.feed is not None:
            # After the store: the last commits it drained are announced too.
            await self.feed.close()
            self.feed = None
        log.info("stopped")


class ReloadableTls:
    """The TLS context the listeners were started with, handing each new handshake the
    context of the latest (re)load.

    An IMAPS socket keeps the context it was bound with; a reload cannot give it
    another. The context's SNI callback, which OpenSSL calls at every
    ClientHello (with or without a server name), switches the connection to
    the current context, as a server choosing a certificate by name does.
    Handshakes already done keep their certificate.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self.listening = context
        self._current = context
        context.sni_callback = self._choose

    def replace(self, context: ssl.SSLContext) -> None:
        self._current = context

    def _choose(
        self, connection: ssl.SSLSocket | ssl.SSLObject, server_name: str | None,
        context: ssl.SSLContext,
    ) -> None:
        if self._current is not context:
            connection.context = self._current


def retry_policy(settings: Settings) -> RetryPolicy:
    push = settings.push
    return RetryPolicy(push.retry_initial, push.retry_max_interval, push.max_age)


async def _close_after(retired: asyncio.Task[None] | None, services: FrameworkServices) -> None:
    if retired is not None:
        await retired
    await services.close()


async def serve(
    settings: Settings, ready: asyncio.Event | None = None, role: WorkerRole | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly; reload on SIGHUP.

    SIGHUP is caught from before start-up on (its default action ends the
    process): one that comes while starting is applied once the server runs.
    `role`: this process is one worker of several (workers.py starts them);
    its log lines say which (`logs/worker_tag.py`).
    """
    if role is not None:
        name_worker_in_log(role.index)
    server = MailpushServer(settings, role=role)
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[ReloadOutcome]] = set()
    running = False
    reload_wanted = False

    def reload() -> None:
        nonlocal reload_wanted
        if not running:
            reload_wanted = True
            return
        log.info("SIGHUP: reloading the configuration")
        task = loop.create_task(server.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        await server.start()
    except BaseException:
        loop.remove_signal_handler(signal.SIGHUP)
        raise
    running = True
    if reload_wanted:
        reload()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("mailpush ready")
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        if reloads:
            await asyncio.gather(*reloads, return_exceptions=True)
        await server.stop()
