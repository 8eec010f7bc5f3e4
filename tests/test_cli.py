"""The `mailpush` command line: deliver (like dovecot-lda) and user management."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from mailpush.auth import PasswdFile, verify_password
from mailpush.config import load_settings
from mailpush.server import open_store
from tests.conftest import write_config

MESSAGE = b"From: a@example.net\r\nSubject: piped\r\n\r\nvia deliver\r\n"


def mailpush(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mailpush.cli", *args],
        input=stdin, capture_output=True, timeout=60,
    )


def inbox_count(config: Path, user: str, mailbox: str = "INBOX") -> int:
    async def count() -> int:
        store = open_store(load_settings(config).settings)
        try:
            return (await store.status(user, mailbox)).messages
        finally:
            store.close()

    return asyncio.run(count())


def test_deliver_files_a_piped_message_into_inbox(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = mailpush("deliver", "-c", str(config), "-d", "alice@example.org", stdin=MESSAGE)
    assert result.returncode == 0, result.stderr
    assert inbox_count(config, "alice") == 1


def test_deliver_to_a_named_mailbox_falls_back_to_inbox_when_missing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert mailpush("deliver", "-c", str(config), "-d", "bob", "-m", "Nope",
                    stdin=MESSAGE).returncode == 0
    assert inbox_count(config, "bob") == 1


def test_deliver_to_unknown_user_exits_with_ex_nouser(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = mailpush("deliver", "-c", str(config), "-d", "ghost", stdin=MESSAGE)
    assert result.returncode == 67
    assert b"unknown user 'ghost'" in result.stderr


def test_deliver_refuses_empty_and_oversized_input(tmp_path: Path) -> None:
    config = write_config(tmp_path, "mailpush_max_message_size = 1k\n")
    assert mailpush("deliver", "-c", str(config), "-d", "alice").returncode == 65
    big = mailpush("deliver", "-c", str(config), "-d", "alice", stdin=b"x" * 2048)
    assert big.returncode == 65
    assert b"mailpush_max_message_size" in big.stderr


def test_user_add_list_passwd_del_edit_the_configured_passwd_file(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    passwd = load_settings(config).settings.auth.passdb.path
    added = mailpush("user", "add", "-c", str(config), "dave", "--password-stdin",
                     "--field", "userdb_push_lua_url=http://push.example/x", stdin=b"pw1\n")
    assert added.returncode == 0, added.stderr
    record = PasswdFile(passwd).lookup("dave")
    assert record is not None
    assert record.password.startswith("{ARGON2ID}")
    assert verify_password(record.password, "pw1")
    assert record.userdb_fields == {"push_lua_url": "http://push.example/x"}

    listed = mailpush("user", "list", "-c", str(config))
    assert listed.stdout.decode().split() == ["alice", "bob", "carol", "dave"]

    changed = mailpush("user", "passwd", "-c", str(config), "dave", "--scheme", "SHA512-CRYPT",
                       "--password-stdin", stdin=b"pw2\n")
    assert changed.returncode == 0, changed.stderr
    record = PasswdFile(passwd).lookup("dave")
    assert record is not None and verify_password(record.password, "pw2")

    assert mailpush("user", "del", "-c", str(config), "dave").returncode == 0
    assert PasswdFile(passwd).lookup("dave") is None


def test_user_errors_are_one_clear_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    again = mailpush("user", "add", "-c", str(config), "alice", "--password-stdin", stdin=b"x\n")
    assert again.returncode == 1
    assert again.stderr.count(b"\n") == 1 and b"alice" in again.stderr
    missing = mailpush("user", "del", "-c", str(config), "nobody")
    assert missing.returncode == 1 and b"nobody" in missing.stderr
    empty = mailpush("user", "add", "-c", str(config), "erin", "--password-stdin", stdin=b"\n")
    assert empty.returncode == 1 and b"empty password" in empty.stderr


def test_config_check_reports_unknown_settings_once(tmp_path: Path) -> None:
    config = write_config(tmp_path, "frobnicate = yes\nmail_location = maildir:~/Maildir\n")
    result = mailpush("config", "check", "-c", str(config))
    assert result.returncode == 0
    warnings = [line for line in result.stderr.decode().splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "frobnicate" in warnings[0] and "mail_location" in warnings[0]


def test_concurrent_deliver_processes_never_duplicate_uids(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mailpush.cli", "deliver", "-c", str(config), "-d", "alice"],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for _ in range(8)
    ]
    for index, proc in enumerate(procs):
        proc.communicate(MESSAGE + b"process %d\r\n" % index, timeout=60)
        assert proc.returncode == 0

    async def uids() -> list[int]:
        store = open_store(load_settings(config).settings)
        try:
            return [m.uid for m in await store.messages("alice", "INBOX")]
        finally:
            store.close()

    assert asyncio.run(uids()) == list(range(1, 9))
