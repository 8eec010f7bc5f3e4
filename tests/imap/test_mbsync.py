"""End to end with an independent client: `mbsync` (isync) syncing a Maildir both ways."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from mailpush.store import flags as F

from .conftest import PASSWORD, ImapStack

MBSYNC = shutil.which("mbsync")
pytestmark = pytest.mark.skipif(
    MBSYNC is None, reason="mbsync not installed (Debian package isync; .ci/run installs it)"
)

COUNT = 200


def write_maildir(root: Path) -> dict[bytes, str]:
    """200 messages, every fifth flagged and every third seen; returns Message-ID → flags."""
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    expected: dict[bytes, str] = {}
    for i in range(COUNT):
        flags = ("F" if i % 5 == 0 else "") + ("S" if i % 3 == 0 else "")
        message_id = f"<msg{i}@example.net>".encode()
        raw = (
            b"From: sender@example.net\r\nTo: alice@example.org\r\n"
            b"Subject: message %d\r\nMessage-ID: %s\r\n\r\nbody %d\r\n" % (i, message_id, i)
        )
        (root / "cur" / f"{1700000000 + i}.M{i}P1.host:2,{flags}").write_bytes(raw)
        expected[message_id] = flags
    return expected


def read_maildir(root: Path) -> dict[bytes, str]:
    found: dict[bytes, str] = {}
    for sub in ("cur", "new"):
        for path in (root / sub).iterdir():
            raw = path.read_bytes()
            message_id = next(
                line.split(b":", 1)[1].strip()
                for line in raw.splitlines()
                if line.lower().startswith(b"message-id:")
            )
            assert message_id not in found, f"duplicate {message_id!r}"
            flags = path.name.partition(":2,")[2] if ":2," in path.name else ""
            found[message_id] = "".join(sorted(flags.replace("T", "")))
    return found


def write_config(path: Path, stack: ImapStack, maildir: Path, state: Path) -> None:
    path.write_text(
        f"""IMAPAccount mailpush
Host {stack.host}
Port {stack.port}
User alice
Pass {PASSWORD}
SSLType None
AuthMechs PLAIN LOGIN

IMAPStore remote
Account mailpush

MaildirStore local
Path {maildir.parent}/
Inbox {maildir}
SubFolders Verbatim

Channel inbox
Far :remote:INBOX
Near :local:INBOX
Create Both
Expunge Both
Sync All
SyncState {state}/
"""
    )


def run_mbsync(config: Path) -> None:
    assert MBSYNC is not None
    result = subprocess.run(
        [MBSYNC, "-c", str(config), "-a"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_mbsync_round_trips_200_messages_with_flags(
    stack: ImapStack, tmp_path: Path
) -> None:
    upload = tmp_path / "up" / "INBOX"
    expected = write_maildir(upload)
    (tmp_path / "state-up").mkdir()
    up_config = tmp_path / "up.rc"
    write_config(up_config, stack, upload, tmp_path / "state-up")
    await asyncio.to_thread(run_mbsync, up_config)

    infos = await stack.store.messages("alice", "INBOX")
    assert len(infos) == COUNT
    assert sum(1 for i in infos if i.flags & F.FLAGGED) == COUNT // 5
    assert sum(1 for i in infos if i.flags & F.SEEN) == len(range(0, COUNT, 3))

    download = tmp_path / "down" / "INBOX"
    download.parent.mkdir()
    (tmp_path / "state-down").mkdir()
    down_config = tmp_path / "down.rc"
    write_config(down_config, stack, download, tmp_path / "state-down")
    await asyncio.to_thread(run_mbsync, down_config)
    assert read_maildir(download) == {k: "".join(sorted(v)) for k, v in expected.items()}

    # A second sync in each direction changes nothing: no duplicates appear.
    await asyncio.to_thread(run_mbsync, up_config)
    await asyncio.to_thread(run_mbsync, down_config)
    assert len(await stack.store.messages("alice", "INBOX")) == COUNT
    assert len(read_maildir(download)) == COUNT
