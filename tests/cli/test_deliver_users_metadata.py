"""The `mailpush` command line: deliver (like dovecot-lda) and user management."""

from __future__ import annotations

import asyncio
import json
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


def test_metadata_set_get_list_unset_reach_the_entries_imap_and_drivers_see(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    opt_in = "/private/vendor/vendor.dovecot/http-notify"

    async def prepare() -> None:
        store = open_store(load_settings(config).settings)
        try:
            await store.create_mailbox("alice", "INBOX")
        finally:
            store.close()

    asyncio.run(prepare())
    c = ("-c", str(config))
    assert mailpush("metadata", "set", *c, "alice", opt_in, "user=11@3").returncode == 0
    assert mailpush("metadata", "set", *c, "alice@example.org", "/shared/comment",
                    "line 1\nline 2", "--mailbox", "inbox").returncode == 0
    got = mailpush("metadata", "get", *c, "alice", opt_in.upper())
    assert (got.returncode, got.stdout) == (0, b"user=11@3\n")
    listed = mailpush("metadata", "list", *c, "alice", "/private")
    assert listed.stdout.decode() == f"{opt_in}\tuser=11@3\n"
    boxed = mailpush("metadata", "list", *c, "alice", "--mailbox", "INBOX")
    assert boxed.stdout.decode() == "/shared/comment\tline 1\\nline 2\n"
    as_json = mailpush("metadata", "list", *c, "alice", "-m", "INBOX", "--json")
    assert json.loads(as_json.stdout) == {"/shared/comment": "line 1\nline 2"}

    async def read_back() -> tuple[str | None, str | None]:
        store = open_store(load_settings(config).settings)
        try:
            return (await store.get_metadata("alice", None, opt_in),
                    await store.get_metadata("alice", "INBOX", "/shared/comment"))
        finally:
            store.close()

    assert asyncio.run(read_back()) == ("user=11@3", "line 1\nline 2")
    assert mailpush("metadata", "unset", *c, "alice", opt_in).returncode == 0
    gone = mailpush("metadata", "get", *c, "alice", opt_in)
    assert gone.returncode == 1 and b"is not set" in gone.stderr
    assert mailpush("metadata", "list", *c, "alice").stdout == b""


def test_metadata_errors_are_one_clear_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    c = ("-c", str(config))
    unknown = mailpush("metadata", "set", *c, "ghost", "/private/comment", "x")
    bad_name = mailpush("metadata", "set", *c, "alice", "comment", "x")
    no_box = mailpush("metadata", "get", *c, "alice", "/private/comment", "--mailbox", "Nope")
    for result, words in (
        (unknown, b"unknown user 'ghost'"),
        (bad_name, b"invalid metadata entry name 'comment'"),
        (no_box, b"Mailbox doesn't exist: Nope"),
    ):
        assert result.returncode == 1
        assert words in result.stderr
        assert len(result.stderr.splitlines()) == 1
