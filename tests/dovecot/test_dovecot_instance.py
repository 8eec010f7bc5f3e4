"""The private Dovecot harness (bench/dovecot_instance.py) runs a real Dovecot 2.3.

Differential tests and the side-by-side benchmark trust it to start a working
Dovecot with the Lua push driver; these tests show it does, and that the
recording script used for the differential test runs under Dovecot unchanged.
"""

from __future__ import annotations

import asyncio
import email
import imaplib
import json
import os
import shutil
import smtplib
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from bench.dovecot_instance import DovecotError, DovecotInstance, dovecot_binary

pytestmark = pytest.mark.skipif(
    dovecot_binary() is None,
    reason="Dovecot is not installed (apt-get install dovecot-core dovecot-imapd "
    "dovecot-lmtpd; .ci/run does this when run as root)",
)

FIXTURES = Path(__file__).parent / "fixtures"

MESSAGE = (
    b"From: Joe Sender <joe@example.net>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: Quarterly plan\r\n"
    b"Date: Mon, 02 Jan 2023 10:00:00 +0200\r\n"
    b"Message-ID: <plan.1@example.net>\r\n"
    b"\r\n"
    b"Body about the quarterly plan.\r\n"
)

# Dovecot 2.3.19 disables the driver unless script_init returns a number (0).
TINY_RECORDER = textwrap.dedent(
    """\
    local out
    function script_init() return 0 end
    function dovecot_lua_notify_begin_txn(user)
      out = io.open(user:plugin_getenv("record_file"), "a")
      out:write('{"call":"begin"}\\n')
      return {}
    end
    function dovecot_lua_notify_event_message_new(ctx, event)
      out:write(string.format('{"call":"MessageNew","mailbox":"%s","subject":"%s"}\\n',
                              event.mailbox, event.subject))
    end
    function dovecot_lua_notify_end_txn(ctx, success)
      out:write(string.format('{"call":"end","success":%s}\\n', tostring(success)))
      out:close()
    end
    """
)


def deliver(port: int, recipient: str, message: bytes = MESSAGE) -> None:
    with smtplib.LMTP("127.0.0.1", port) as lmtp:
        lmtp.sendmail("joe@example.net", [recipient], message)


def fetch_all(port: int, user: str, password: str) -> list[bytes]:
    client = imaplib.IMAP4("127.0.0.1", port)
    try:
        client.login(user, password)
        client.select("INBOX")
        status, data = client.fetch("1:*", "(BODY.PEEK[])")
        assert status == "OK", data
        return [part[1] for part in data if isinstance(part, tuple)]
    finally:
        client.logout()


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_message_delivered_over_lmtp_is_read_over_imap_and_pushed_to_lua(
    tmp_path: Path,
) -> None:
    script = tmp_path / "tiny.lua"
    script.write_text(TINY_RECORDER)
    dovecot = DovecotInstance(users=[("alice", "secret")], lua_script=script)
    record = dovecot.output_dir / "events.jsonl"
    dovecot.plugin_settings["record_file"] = str(record)
    async with dovecot:
        await asyncio.to_thread(deliver, dovecot.lmtp_port, "alice")
        bodies = await asyncio.to_thread(fetch_all, dovecot.imap_port, "alice", "secret")
        lines = read_lines(record)
        log = dovecot.log_text()

    assert len(bodies) == 1, log
    assert email.message_from_bytes(bodies[0])["Subject"] == "Quarterly plan"
    assert {"call": "MessageNew", "mailbox": "INBOX", "subject": "Quarterly plan"} in lines, log
    assert lines[-1] == {"call": "end", "success": True}
    assert "Error" not in log


async def test_recording_script_writes_every_field_under_dovecot() -> None:
    dovecot = DovecotInstance(
        users=[("alice", "secret")], lua_script=FIXTURES / "record_events.lua"
    )
    record = dovecot.output_dir / "events.jsonl"
    dovecot.plugin_settings["record_file"] = str(record)
    async with dovecot:
        await asyncio.to_thread(deliver, dovecot.lmtp_port, "alice")
        lines = read_lines(record)
        log = dovecot.log_text()

    calls = [line["fn"].removeprefix("dovecot_lua_notify_") for line in lines]
    # INBOX is auto-created inside the first delivery: its own txn comes first.
    assert calls == [
        "script_init",
        "begin_txn", "event_mailbox_create", "end_txn",
        "begin_txn", "event_message_new", "end_txn",
        "script_deinit",
    ], log
    begin, new, end = lines[4:7]
    assert begin["user"]["username"] == "alice"
    assert begin["user"]["service"] == "lmtp"
    assert new["ctx_ok"] and new["txn"] == begin["txn"] == end["txn"]
    assert new["event"] | {"uid_validity": None} == {
        "date": 1672646400.0,
        "flags": [],
        "from": "Joe Sender <joe@example.net>",
        "from_address": "joe@example.net",
        "from_display_name": "Joe Sender",
        "keywords": [],
        "mailbox": "INBOX",
        "message_id": "<plan.1@example.net>",
        "name": "MessageNew",
        "snippet": "Body about the quarterly plan.",
        "subject": "Quarterly plan",
        "to": "alice@example.org",
        "to_address": "alice@example.org",
        "to_display_name": "",
        "tz": 120.0,
        "uid": 1.0,
        "uid_validity": None,
    }
    # Dovecot pushes every number as a Lua float; the record keeps that visible.
    assert {new["types"][key] for key in ("uid", "uid_validity", "date", "tz")} == {"float"}
    assert end["success"] is True


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands mail processes to nobody")
async def test_workdir_the_mail_user_cannot_reach_is_refused_with_the_reason() -> None:
    private = Path(tempfile.mkdtemp(prefix="private-"))  # mode 0700, like pytest's tmp_path
    try:
        dovecot = DovecotInstance(private / "dovecot")
        with pytest.raises(DovecotError, match=r"cannot enter .*private-.*pass a workdir"):
            await dovecot.start()
    finally:
        shutil.rmtree(private)
