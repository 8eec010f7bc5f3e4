"""The Sieve planner against a real store: actions become delivery targets, mail is never lost."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from mailpush.delivery import DefaultFilingPlanner, DeliveryRequest
from mailpush.errors import PasswdFileError, SettingError
from mailpush.sieve import SieveFilingPlanner, cache, runner
from mailpush.store import DeliveryTarget, SqliteStore
from mailpush.store import flags as F

MESSAGE = b"From: boss@example.org\r\nSubject: Report due\r\n\r\nPlease.\r\n"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "mail.db")
    s.open()
    yield s
    s.close()


def request(detail: str | None = None) -> DeliveryRequest:
    return DeliveryRequest("alice", MESSAGE, "alice@example.org", detail, sender="boss@example.org")


def script(tmp_path: Path, text: str, name: str = "user.sieve") -> Path:
    path = tmp_path / name
    path.write_text(
        'require ["fileinto", "mailbox", "copy", "imap4flags"];\n' + text, encoding="utf-8"
    )
    return path


def planner(
    store: SqliteStore,
    plugin: Mapping[str, str],
    userdb: Mapping[str, Mapping[str, str]] | None = None,
    *,
    detail_mailbox: bool = False,
    **options: bool,
) -> SieveFilingPlanner:
    fallback = DefaultFilingPlanner(store, save_to_detail_mailbox=detail_mailbox)
    fields = userdb or {}
    return SieveFilingPlanner(
        store, fallback, plugin, lambda user: fields.get(user, {}), **options
    )


async def test_without_sieve_settings_the_default_plan_applies(store: SqliteStore) -> None:
    targets = await planner(store, {"push_notification_driver": "dlog"}).plan(request())
    assert targets == [DeliveryTarget("INBOX")]


async def test_fileinto_an_existing_mailbox(store: SqliteStore, tmp_path: Path) -> None:
    await store.create_mailbox("alice", "Work")
    path = script(tmp_path, 'fileinto "Work";')
    assert await planner(store, {"sieve": str(path)}).plan(request()) == [DeliveryTarget("Work")]


async def test_fileinto_a_missing_mailbox_keeps_in_inbox(
    store: SqliteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = script(tmp_path, 'fileinto "Nowhere";')
    with caplog.at_level(logging.INFO, logger="mailpush.sieve"):
        targets = await planner(store, {"sieve": str(path)}).plan(request())
    assert targets == [DeliveryTarget("INBOX")]
    assert f"{path}:2: fileinto 'Nowhere': mailbox doesn't exist" in caplog.text


async def test_fileinto_create_or_autocreate_creates(store: SqliteStore, tmp_path: Path) -> None:
    create = script(tmp_path, 'fileinto :create "New";', "create.sieve")
    plain = script(tmp_path, 'fileinto "Auto";', "plain.sieve")
    assert await planner(store, {"sieve": str(create)}).plan(request()) == [
        DeliveryTarget("New", create=True)
    ]
    auto = planner(store, {"sieve": str(plain)}, autocreate=True)
    assert await auto.plan(request()) == [DeliveryTarget("Auto", create=True)]


async def test_autosubscribe_creates_and_subscribes_before_saving(
    store: SqliteStore, tmp_path: Path
) -> None:
    path = script(tmp_path, 'fileinto :create "Lists/dev";')
    subscribing = planner(store, {"sieve": str(path)}, autosubscribe=True)
    assert await subscribing.plan(request()) == [DeliveryTarget("Lists/dev", create=True)]
    assert "Lists/dev" in await store.subscriptions("alice")


async def test_one_target_per_mailbox_with_merged_flags(
    store: SqliteStore, tmp_path: Path
) -> None:
    await store.create_mailbox("alice", "A")
    path = script(
        tmp_path,
        'fileinto :copy :flags "\\\\Seen" "A";\n'
        'fileinto :copy :flags "$Work" "A";\n'
        'fileinto :flags "\\\\Flagged" "inbox";\n'
        'keep :flags "\\\\Answered";\n',
    )
    targets = await planner(store, {"sieve": str(path)}).plan(request())
    assert targets == [
        DeliveryTarget("A", F.SEEN, ("$Work",)),
        DeliveryTarget("INBOX", F.FLAGGED | F.ANSWERED),
    ]


async def test_flags_imap_cannot_store_are_dropped(store: SqliteStore, tmp_path: Path) -> None:
    path = script(tmp_path, 'addflag ["\\\\Seen", "\\\\Recent", "\\\\Bogus", "a(b", "ok"];')
    targets = await planner(store, {"sieve": str(path)}).plan(request())
    assert targets == [DeliveryTarget("INBOX", F.SEEN, ("ok",))]


async def test_discard_plans_nothing(store: SqliteStore, tmp_path: Path) -> None:
    path = script(tmp_path, "discard;")
    assert await planner(store, {"sieve": str(path)}).plan(request()) == []


async def test_keep_follows_the_default_plan(store: SqliteStore, tmp_path: Path) -> None:
    await store.create_mailbox("alice", "work")
    path = script(tmp_path, 'addflag "\\\\Flagged";')
    detail = planner(store, {"sieve": str(path)}, detail_mailbox=True)
    assert await detail.plan(request("work")) == [DeliveryTarget("work", F.FLAGGED)]


async def test_userdb_fields_override_the_global_script(
    store: SqliteStore, tmp_path: Path
) -> None:
    await store.create_mailbox("alice", "Alice")
    await store.create_mailbox("alice", "Global")
    global_script = script(tmp_path, 'fileinto "Global";', "global.sieve")
    alice_script = script(tmp_path, 'fileinto "Alice";', "alice.sieve")
    sieve = planner(store, {"sieve": str(global_script)}, {"alice": {"sieve": str(alice_script)}})
    assert await sieve.plan(request()) == [DeliveryTarget("Alice")]


async def test_unexpandable_setting_keeps_and_logs(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="mailpush.sieve"):
        targets = await planner(store, {"sieve": "~/.dovecot.sieve"}).plan(request())
    assert targets == [DeliveryTarget("INBOX")]
    assert any(m.startswith("delivery to alice: sieve: '~/.dovecot.sieve' needs")
               for m in caplog.messages), caplog.messages


async def test_bad_global_limit_stops_start_up(store: SqliteStore) -> None:
    with pytest.raises(SettingError) as caught:
        planner(store, {"sieve": "/x.sieve", "sieve_max_actions": "lots"})
    assert caught.value.setting == "sieve_max_actions"


async def test_redirect_is_logged_and_the_message_kept(
    store: SqliteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = script(tmp_path, 'redirect "other@example.net";')
    with caplog.at_level(logging.WARNING, logger="mailpush.sieve"):
        targets = await planner(store, {"sieve": str(path)}).plan(request())
    assert targets == [DeliveryTarget("INBOX")]
    assert "redirect to <other@example.net> not performed" in caplog.text


async def test_too_deeply_nested_script_keeps_in_inbox_and_is_logged(
    store: SqliteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await store.create_mailbox("alice", "Deep")
    path = script(tmp_path, 'if true {\n' * 600 + 'fileinto "Deep";\n' + '}\n' * 600)
    with caplog.at_level(logging.ERROR, logger="mailpush.sieve"):
        targets = await planner(store, {"sieve": str(path)}).plan(request())
    assert targets == [DeliveryTarget("INBOX")]
    assert f"{path}:34: cannot nest command blocks deeper than 32 levels" in caplog.text


async def test_unexpected_error_in_the_runner_keeps_in_inbox_and_is_logged(
    store: SqliteStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    await store.create_mailbox("alice", "work")
    path = script(tmp_path, 'fileinto "work";')
    monkeypatch.setattr(runner._Execution, "run_block", broken)
    with caplog.at_level(logging.ERROR, logger="mailpush.sieve"):
        targets = await planner(store, {"sieve": str(path)}).plan(request())
    assert targets == [DeliveryTarget("INBOX")]
    assert f"{path}: unexpected error" in caplog.text
    assert "RecursionError" in caplog.text


async def test_unexpected_error_while_loading_keeps_in_inbox_and_names_the_scripts(
    store: SqliteStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(source: bytes, name: str) -> None:
        raise MemoryError

    path = script(tmp_path, "discard;")
    monkeypatch.setattr(cache, "compile_script", broken)
    with caplog.at_level(logging.ERROR, logger="mailpush.sieve"):
        targets = await planner(store, {"sieve": str(path)}).plan(request())
    assert targets == [DeliveryTarget("INBOX")]
    assert f"delivery to alice: unexpected error with the script(s) {path}" in caplog.text


async def test_unreadable_passwd_file_keeps_in_inbox_and_is_logged(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    def fields(user: str) -> Mapping[str, str]:
        raise PasswdFileError("/etc/mailpush/passwd: Permission denied")

    fallback = DefaultFilingPlanner(store)
    sieve = SieveFilingPlanner(store, fallback, {"sieve": "/nowhere.sieve"}, fields)
    with caplog.at_level(logging.ERROR, logger="mailpush.sieve"):
        assert await sieve.plan(request()) == [DeliveryTarget("INBOX")]
    assert "delivery to alice: /etc/mailpush/passwd: Permission denied" in caplog.text


async def test_only_a_user_with_sieve_settings_costs_a_thread_hop(
    store: SqliteStore, tmp_path: Path
) -> None:
    """The fields are read on the loop (RCPT's lookup of the same user read them there a
    moment before); the scripts are located, loaded and run on Sieve's threads."""
    await store.create_mailbox("bob", "Work")
    path = script(tmp_path, 'fileinto "Work";')
    fields_read: list[threading.Thread] = []
    scripts_run: list[threading.Thread] = []

    def fields(user: str) -> Mapping[str, str]:
        fields_read.append(threading.current_thread())
        return {"sieve": str(path)} if user == "bob" else {}

    sieve = SieveFilingPlanner(store, DefaultFilingPlanner(store), {}, fields)
    evaluate = sieve._evaluate

    def watched(*arguments: object) -> object:
        scripts_run.append(threading.current_thread())
        return evaluate(*arguments)  # type: ignore[arg-type]

    sieve._evaluate = watched  # type: ignore[method-assign]
    assert await sieve.plan(request()) == [DeliveryTarget("INBOX")]
    assert not scripts_run
    bob = DeliveryRequest("bob", MESSAGE, "bob@example.org", None, sender="boss@example.org")
    assert await sieve.plan(bob) == [DeliveryTarget("Work")]
    assert fields_read == [threading.main_thread()] * 2
    assert len(scripts_run) == 1 and scripts_run[0] is not threading.main_thread()
