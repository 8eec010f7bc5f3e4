"""Everything `mailpush serve` checks before it opens a port or the store.

`mailpush config check` runs the very same function, so a configuration it
accepts is one `serve` starts with, and one it refuses stops `serve` with the
same message. The checks: listeners that would take the same port, the TLS
certificate and key (loaded, not just named), every push driver built from its
options (a Lua script compiled), and every global Sieve script
(`sieve_before…`, `sieve_after…`) compiled. Each failure is a `ConfigError`
whose message names the ``file:line`` to fix (for a Lua or Sieve script that
does not compile, the script's own line).

Building a driver here touches neither the store nor the network: drivers
read their options and compile their scripts in their constructor, and open
connections only when they first push.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .config import Settings
from .dispatch import FrameworkServices
from .drivers import DriverRegistry, DriverServices, PushDriver, default_registry, driver_configs
from .errors import SettingError, SieveScriptError
from .sieve.cache import ScriptCache
from .sieve.locations import script_locations
from .store import SqliteStore

__all__ = ["StartupPlan", "build_tls_context", "check_startup", "instantiate_drivers"]


#: Addresses that bind every interface of their family (empty: every family).
_WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class StartupPlan:
    """What the checks produced that start-up then uses."""

    #: The server TLS context for IMAPS and STARTTLS, None when TLS is off or IMAP is not served.
    tls: ssl.SSLContext | None
    #: Each configured driver instance → its driver name.
    drivers: Mapping[str, str]


def check_startup(settings: Settings, registry: DriverRegistry | None = None) -> StartupPlan:
    """Run every start-up check; raises ConfigError (with ``file:line``) on the first failure.

    Nothing is created on disk and no port is opened.
    """
    check_listeners(settings)
    tls = build_tls_context(settings) if "imap" in settings.protocols else None
    services = FrameworkServices(
        # Never opened: drivers keep the store for later and do not read it when built.
        SqliteStore(settings.data_dir / "unopened"),
        settings.plugin,
        lambda user: {},
        ssl_client_ca_file=settings.ssl_client_ca_file,
        push_concurrency=settings.push.concurrency,
        push_timeout=settings.push.timeout,
    )
    drivers = instantiate_drivers(settings, services, registry)
    check_global_sieve_scripts(settings)
    names = MappingProxyType({instance: driver.name for instance, driver in drivers.items()})
    return StartupPlan(tls, names)


def instantiate_drivers(
    settings: Settings, services: DriverServices, registry: DriverRegistry | None = None
) -> dict[str, PushDriver]:
    """Each configured driver instance, built from its options (bad options raise here)."""
    registry = registry or default_registry()
    drivers: dict[str, PushDriver] = {}
    for config in driver_configs(settings):
        driver_class = registry.get(config.driver, "push_notification_driver", config.where)
        drivers[config.instance] = driver_class(config, services)
    return drivers


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
            f"cannot load certificate {tls.cert_path} with key {tls.key_path}: {exc}"
            " (check both paths and that the key matches the certificate)",
            tls.cert_where or str(settings.source_path or "") or None,
        ) from exc
    return context


def check_listeners(settings: Settings) -> None:
    """No two listeners (IMAP, IMAPS, LMTP, metrics) may take the same port and address."""
    sockets: list[tuple[str, str, int, str | None]] = [
        (listener.service, listener.address, listener.port, listener.where)
        for listener in settings.listeners
    ]
    if settings.metrics_listen is not None:
        address, port = settings.metrics_listen
        sockets.append(("metrics", address, port, settings.metrics_where))
    taken: list[tuple[str, str, int, str | None]] = []
    for service, address, port, where in sockets:
        if port == 0:
            continue  # a free port chosen by the kernel never collides
        for other, other_address, other_port, other_where in taken:
            if other_port == port and _overlap(other_address, address):
                setting = "mailpush_metrics_listen" if service == "metrics" else f"{service} port"
                elsewhere = f", {other_where}" if other_where else ""
                raise SettingError(
                    setting,
                    f"{address}:{port} is also where {other} listens"
                    f" ({other_address}:{other_port}{elsewhere}); give one of them another port",
                    where,
                )
        taken.append((service, address, port, where))


def check_global_sieve_scripts(settings: Settings) -> None:
    """Compile the `sieve_before…` and `sieve_after…` scripts that are the same for every user.

    Locations with `~` or `%` variables depend on the user and are compiled at
    delivery. A missing script is not an error (Dovecot skips it too); one that
    does not compile is, since every delivery would silently skip the filter.
    """
    shared = {
        key: value
        for key, value in settings.plugin.items()
        if key.startswith(("sieve_before", "sieve_after")) and not _per_user(value)
    }
    cache = ScriptCache()
    for location in script_locations(shared, "", None):
        for loaded in cache.scripts_at(location, max_size=0):
            if isinstance(loaded, SieveScriptError):
                raise SettingError(
                    location.setting, str(loaded), settings.plugin_places.get(location.setting)
                )


def _per_user(location: str) -> bool:
    return "%" in location or "~" in location


def _overlap(first: str, second: str) -> bool:
    """Whether binding both would collide: the same address, or a wildcard of the same family.

    IPv4 and IPv6 never collide: asyncio binds IPv6 sockets with IPV6_V6ONLY, so
    Dovecot's `listen = *, ::` gives two listeners on each port.
    """
    if first == second or "" in (first, second):
        return True
    if (":" in first) != (":" in second):
        return False
    return first in _WILDCARDS or second in _WILDCARDS
