"""What SIGHUP cannot apply to a running server, and so names instead of applying."""

from __future__ import annotations

from dataclasses import replace

from mailpush.config import load_settings
from mailpush.reload_scope import restart_only_changes


def test_the_same_settings_need_nothing() -> None:
    defaults = load_settings(None).settings
    assert restart_only_changes(defaults, load_settings(None).settings) == []


def test_the_worker_count_and_the_store_are_named_as_needing_a_restart() -> None:
    """The supervisor forks its workers once, and every open session holds the
    store it started with: neither changes under a running server."""
    running = load_settings(None).settings
    new = replace(running, workers=running.workers + 1, store="postgresql://mail@db/mail")
    assert restart_only_changes(running, new) == ["mailpush_store", "mailpush_workers"]


def test_the_claim_lease_is_applied_by_a_reload_not_held() -> None:
    """Each claim carries the end of its own lease: a new length needs only a renewal,
    which the dispatcher makes at once (`Dispatcher.replace_drivers`)."""
    running = load_settings(None).settings
    new = replace(running, push=replace(running.push, claim_lease=5.0))
    assert new != running
    assert restart_only_changes(running, new) == []
