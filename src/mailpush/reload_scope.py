"""Which setting changes a reload (SIGHUP, `mailpush reload`) cannot apply: they need a restart.

A reload rebuilds what new connections and new deliveries use (users, Sieve,
TLS certificate, IMAP and LMTP limits, push drivers and their options, the
dispatcher's timeouts and claim lease: each claim carries the end of its own
lease, so a new length needs nothing but a renewal). It does not re-open what
the process holds from start to end: listening sockets, the store, the log,
the worker pool. Rebinding on reload was considered and left out: a
privileged port cannot be bound again by a server that no longer runs as
root, and a rebind failing half-way would leave some listeners moved and
others not. Each such change is named in the log, the running value is
kept, and the rest of the new configuration is applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .config import Settings

__all__ = ["restart_only_changes"]


@dataclass(frozen=True, slots=True)
class _Held:
    setting: str
    value: Callable[[Settings], object]


def _listeners(settings: Settings) -> object:
    return sorted(
        (listener.service, listener.address, listener.port, listener.ssl)
        for listener in settings.listeners
    )


_HELD = (
    _Held("protocols", lambda s: s.protocols),
    _Held("listeners (service inet_listener address/port)", _listeners),
    _Held("mailpush_data_dir", lambda s: s.data_dir),
    _Held("mailpush_store", lambda s: s.store),
    _Held("mailpush_workers", lambda s: s.workers),
    _Held("mailpush_event_loop", lambda s: s.event_loop),
    _Held("mailpush_dispatcher_lmtp", lambda s: s.dispatcher_lmtp),
    _Held("mailpush_metrics_listen", lambda s: s.metrics_listen),
    _Held("mail_fsync", lambda s: s.mail_fsync),
    _Held("quota_mailbox_count", lambda s: s.quota_mailbox_count),
    _Held("imap_max_heavy_commands", lambda s: s.imap_max_heavy_commands),
    _Held("log_path, info_log_path, debug_log_path, syslog_facility, log_timestamp, "
          "deliver_log_format", lambda s: s.log),
    _Held("mail_debug", lambda s: s.mail_debug),
    # TLS on or off changes what a listener is (imaps without TLS would be plaintext);
    # a new certificate and key are applied.
    _Held("ssl (on/off)", lambda s: s.ssl.enabled),
)


def restart_only_changes(running: Settings, new: Settings) -> list[str]:
    """The settings that differ between `running` and `new` and need a restart to apply."""
    return [held.setting for held in _HELD if held.value(running) != held.value(new)]
