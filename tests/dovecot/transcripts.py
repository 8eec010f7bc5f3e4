"""One scripted two-session conversation, run against Dovecot and against mailpush.

`tests/imap/two_sessions.py` records a script's exchanges as a transcript; the
differential tests compare Dovecot's with mailpush's, line for line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from bench.dovecot_instance import DovecotInstance

from mailpush.config import load_settings
from mailpush.server import MailpushServer

from ..conftest import free_port, imap_listener, write_config
from ..imap.two_sessions import Script, Session
from .conftest import PASSWORD

__all__ = ["dovecot_transcript", "mailpush_transcript"]

ScriptBody = Callable[[Script], None]


def _transcript(port: int, body: ScriptBody) -> str:
    script = Script(lambda session: Session("127.0.0.1", port, "alice", PASSWORD, session))
    try:
        body(script)
    finally:
        script.close()
    return script.render(uid_in_unsolicited_fetch=False)


async def dovecot_transcript(body: ScriptBody) -> str:
    async with DovecotInstance(users=[("alice", PASSWORD)]) as dovecot:
        return await asyncio.to_thread(_transcript, dovecot.imap_port, body)


async def mailpush_transcript(directory: Path, body: ScriptBody) -> str:
    port = free_port()
    config = write_config(directory, imap_listener(port) + "protocols = imap lmtp\n")
    server = MailpushServer(load_settings(config).settings)
    await server.start()
    try:
        return await asyncio.to_thread(_transcript, port, body)
    finally:
        await server.stop()
