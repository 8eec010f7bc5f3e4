"""What an admin meets when something is wrong: one line naming the path or setting and the
fix, a documented exit status, never a Python traceback.

Exit statuses: 1 for an operation that failed, 2 for a bad command line
(argparse), 75 (EX_TEMPFAIL) for `deliver`, so the MTA keeps the mail queued.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from mailpush.auth import PasswdFile, verify_password
from mailpush.config import load_settings
from mailpush.server import UserDirectory, build_push, open_store
from tests.cli.cli_process import COMMAND, mailpush
from tests.conftest import write_config

PUSH_TO_DLOG = (
    "mail_plugins = $mail_plugins push_notification\n"
    "plugin {\n  push_notification_driver = dlog\n}\n"
)


def assert_one_clean_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in message, message


def with_config(command: tuple[str, ...], config: Path) -> list[str]:
    """`-c FILE` after the (sub)command's name: `serve -c F`, `queue status -c F ARGS`."""
    groups = ("queue", "events", "metadata", "mailbox", "user", "config")
    split = 2 if command[0] in groups else 1
    return [*command[:split], "-c", str(config), *command[split:]]


# --- the data directory -------------------------------------------------------------------


def config_under_a_file(tmp_path: Path) -> Path:
    """A data directory that cannot be created: its parent is a regular file (even for root)."""
    config = write_config(tmp_path)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    text = config.read_text().replace(str(tmp_path / "data"), str(blocker / "data"))
    config.write_text(text)
    return config


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (("serve",), 1),
        (("queue", "status"), 1),
        (("events", "tail", "--count", "1"), 1),
        (("metadata", "set", "alice", "/private/comment", "hi"), 1),
        (("mailbox", "list", "alice"), 1),
        (("deliver", "-d", "alice"), 75),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else str(value),
)
def test_a_data_dir_that_cannot_be_created_is_one_line_naming_it(
    tmp_path: Path, command: tuple[str, ...], status: int
) -> None:
    config = config_under_a_file(tmp_path)
    result = mailpush(*with_config(command, config), stdin=b"Subject: x\r\n\r\nx\r\n")
    assert result.returncode == status, result.stderr
    assert_one_clean_line(
        result, str(tmp_path / "not-a-directory" / "data"), "mailpush_data_dir", str(config)
    )


def run_on_read_only_data_dir(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`mailpush ARGS` with `data_dir` read-only: a read-only bind mount for root (whom file
    modes do not stop), the directory's mode otherwise."""
    if os.geteuid() != 0:
        data_dir.chmod(0o500)
        try:
            return mailpush(*args)
        finally:
            data_dir.chmod(0o700)
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount the data directory read-only as root")
    script = (
        'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    )
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, str(data_dir), *COMMAND, *args],
        capture_output=True, text=True, timeout=60,
    )
    if "mount:" in result.stderr or "unshare:" in result.stderr:
        pytest.skip(f"cannot mount read-only here: {result.stderr.strip()}")
    return result


@pytest.mark.parametrize(
    "command",
    [
        ("serve",),
        ("queue", "status"),
        ("events", "tail", "--count", "1"),
        ("metadata", "set", "alice", "/private/comment", "hi"),
        ("mailbox", "create", "alice", "Archive"),
    ],
    ids=" ".join,
)
def test_a_read_only_data_dir_is_one_line_naming_it(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    config = write_config(tmp_path)
    assert mailpush("queue", "status", "-c", str(config)).returncode == 0  # store created
    result = run_on_read_only_data_dir(tmp_path / "data", *with_config(command, config))
    assert result.returncode == 1, result.stderr
    assert_one_clean_line(result, str(tmp_path / "data"), "mailpush_data_dir")
    assert "read-only" in result.stderr or "not writable" in result.stderr


def test_user_add_before_the_first_serve_creates_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    config = tmp_path / "mailpush.conf"
    config.write_text(f"protocols = lmtp\nmailpush_data_dir = {data}\n")
    result = mailpush("user", "add", "dave", "-c", str(config), "--password-stdin",
                      stdin=b"s3cret\n")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    record = PasswdFile(data / "users").lookup("dave")
    assert record is not None and verify_password(record.password, "s3cret")


def test_user_add_into_a_missing_directory_elsewhere_names_it(tmp_path: Path) -> None:
    config = tmp_path / "mailpush.conf"
    config.write_text(
        f"mailpush_data_dir = {tmp_path / 'data'}\n"
        f"passdb {{\n  driver = passwd-file\n  args = {tmp_path / 'etc' / 'users'}\n}}\n"
    )
    result = mailpush("user", "add", "dave", "-c", str(config), "--password-stdin",
                      stdin=b"s3cret\n")
    assert result.returncode == 1
    assert_one_clean_line(result, str(tmp_path / "etc" / "users"), "passdb")


# --- passwords -----------------------------------------------------------------------------


def test_user_passwd_keeps_the_scheme_unless_told(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    users = tmp_path / "users"
    assert mailpush("user", "add", "dave", "-c", str(config), "--scheme", "SHA256.HEX",
                    "--password-stdin", stdin=b"one\n").returncode == 0

    def stored() -> str:
        record = PasswdFile(users).lookup("dave")
        assert record is not None
        return record.password

    kept = mailpush("user", "passwd", "dave", "-c", str(config), "--password-stdin",
                    stdin=b"two\n")
    assert kept.returncode == 0, kept.stderr
    assert stored().startswith("{SHA256.HEX}") and verify_password(stored(), "two")

    changed = mailpush("user", "passwd", "dave", "-c", str(config), "--scheme", "ARGON2ID",
                       "--password-stdin", stdin=b"three\n")
    assert changed.returncode == 0, changed.stderr
    assert stored().startswith("{ARGON2ID}") and verify_password(stored(), "three")


# --- the queue and events commands ------------------------------------------------------------


def make_dead_letter(config: Path) -> int:
    """One real dead letter: a change recorded for dlog, claimed, then given up on."""

    async def run() -> int:
        settings = load_settings(config).settings
        store = open_store(settings)
        try:
            build_push(settings, store, UserDirectory(settings))
            await store.create_mailbox("alice", "Dead")
            claims = await store.outbox.claim_due(time.time() + 1, 10)
            await store.outbox.bury(claims[0], "given up in a test")
            return claims[0].outbox_id
        finally:
            store.close()

    return asyncio.run(run())


def test_queue_replay_refuses_ids_that_are_not_dead_letters(tmp_path: Path) -> None:
    config = write_config(tmp_path, PUSH_TO_DLOG)
    dead = make_dead_letter(config)
    result = mailpush("queue", "replay", "-c", str(config), str(dead), "99999")
    assert result.returncode == 1
    assert_one_clean_line(result, "99999", "mailpush queue dead")
    assert str(dead) in mailpush("queue", "dead", "-c", str(config)).stdout  # nothing changed

    replayed = mailpush("queue", "replay", "-c", str(config), str(dead))
    assert replayed.returncode == 0, replayed.stderr
    assert "replaying 1 dead letter" in replayed.stdout
    assert mailpush("queue", "dead", "-c", str(config)).stdout == ""


@pytest.mark.parametrize("action", [("dead",), ("replay", "--all")], ids=" ".join)
def test_queue_commands_refuse_an_unknown_driver(tmp_path: Path, action: tuple[str, ...]) -> None:
    config = write_config(tmp_path, PUSH_TO_DLOG)
    result = mailpush("queue", *action, "-c", str(config), "--driver", "nosuch")
    assert result.returncode == 1
    assert_one_clean_line(result, "'nosuch'", "dlog")
    known = mailpush("queue", *action, "-c", str(config), "--driver", "dlog")
    assert known.returncode == 0, known.stderr


@pytest.mark.parametrize("count", ["0", "-3", "many"])
def test_events_tail_refuses_a_count_that_would_never_end(tmp_path: Path, count: str) -> None:
    config = write_config(tmp_path)
    result = mailpush("events", "tail", "-c", str(config), "--count", count, timeout=10)
    assert result.returncode == 2
    assert_one_clean_line(result, "--count")


def test_events_tail_refuses_an_unknown_user(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = mailpush("events", "tail", "-c", str(config), "--user", "ghost", timeout=10)
    assert result.returncode == 1
    assert_one_clean_line(result, "'ghost'", "mailpush user list")


def test_events_tail_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """`mailpush events tail | head -1`: once head is gone, the next line ends tail, status 0."""
    config = write_config(tmp_path, PUSH_TO_DLOG)
    assert mailpush("mailbox", "create", "-c", str(config), "alice", "One").returncode == 0
    tail = subprocess.Popen(
        [*COMMAND, "events", "tail", "--from-start", "-c", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert tail.stdout is not None
        assert '"MailboxCreate"' in tail.stdout.readline()
        tail.stdout.close()  # what head does after its line
        assert mailpush("mailbox", "create", "-c", str(config), "alice", "Two").returncode == 0
        assert tail.wait(timeout=30) == 0
        assert tail.stderr is not None
        stderr = tail.stderr.read()
        assert stderr == "", stderr
    finally:
        tail.kill()
        tail.wait()
