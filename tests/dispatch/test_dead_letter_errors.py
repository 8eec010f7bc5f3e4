"""What a dead letter keeps of its error is bounded: a script's reason can be any size."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable
from pathlib import Path

from mailpush.dispatch.dispatcher import MAX_ERROR_LENGTH
from mailpush.server import MailpushServer
from tests.conftest import lmtp_port

SCRIPT = """
function dovecot_lua_notify_begin_txn(user) return {} end
function dovecot_lua_notify_event_message_new(ctx, event)
  mailpush.dead_letter("too long: " .. string.rep("x", 1000000))
end
function dovecot_lua_notify_end_txn(ctx, success) end
"""


async def test_a_megabyte_dead_letter_reason_is_kept_cut_to_its_first_kilobyte(
    make_server: Callable[..., object], tmp_path: Path
) -> None:
    script = tmp_path / "push.lua"
    script.write_text(SCRIPT)
    server = await make_server(  # type: ignore[operator]
        "mail_plugins = $mail_plugins notify push_notification mail_lua push_notification_lua\n"
        f"plugin {{\n  push_notification_driver = lua:file={script}\n}}\n"
    )
    assert isinstance(server, MailpushServer) and server.store is not None

    def deliver() -> None:
        with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
            client.sendmail("s@example.net", ["alice"], b"Subject: hi\r\n\r\nbody\r\n")

    await asyncio.to_thread(deliver)
    async with asyncio.timeout(10):
        while not (letters := await server.store.outbox.dead_letters()):
            await asyncio.sleep(0.05)
    (letter,) = letters
    error = letter.last_error or ""
    assert "asked for dead letter: too long: xxxx" in error
    assert len(error) == MAX_ERROR_LENGTH and error.endswith("…")
