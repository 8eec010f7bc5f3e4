"""Each message is parsed once for push, before its write, and its summary kept with the body.

A COPY or MOVE carries the stored summaries and reads no body. A store with
no push driver (no outbox recorder) skips the parse — nothing would read it —
and a COPY made once a recorder is installed makes the missing summaries then,
once, storing them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from mailpush.mime import summarize
from mailpush.store import (
    Change,
    DeliveryTarget,
    MessagesSaved,
    NewMessage,
    OutboxEntry,
    SqliteStore,
)
from mailpush.store.message_summaries import (
    SummaryFormatError,
    summary_from_text,
    summary_to_text,
)
from mailpush.store.outbox import StatusAt
from mailpush.store.sqlite_writer import WriteContext

RAW = (
    b"From: =?UTF-8?Q?Ren=C3=A9?= <rene@example.net>\r\nTo: alice@example.org\r\n"
    b"Subject: Invitation\r\nMessage-ID: <inv@example.net>\r\n"
    b"Content-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
)


class Seen:
    """An outbox recorder that keeps the saved records it is handed (and queues nothing)."""

    def __init__(self) -> None:
        self.saved: list[MessagesSaved] = []

    def __call__(self, changes: Sequence[Change], status: StatusAt) -> list[OutboxEntry]:
        self.saved += [c for c in changes if isinstance(c, MessagesSaved)]
        return []


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "mail.sqlite", fsync="never")
    store.open()
    yield store
    await asyncio.to_thread(store.close)


def stored_summaries(store: SqliteStore) -> list[str]:
    with sqlite3.connect(store.path) as conn:
        return [row[0] for row in conn.execute("SELECT summary FROM bodies ORDER BY id")]


async def test_a_recorded_delivery_stores_its_summary_and_a_copy_carries_it(
    store: SqliteStore,
) -> None:
    seen = Seen()
    store.set_recorder(seen)
    await store.deliver("alice", RAW, [DeliveryTarget("INBOX")])
    await store.create_mailbox("alice", "Archive")
    await store.copy("alice", "INBOX", [1], "Archive")

    assert stored_summaries(store) == [summary_to_text(summarize(RAW))]
    delivered, copied = seen.saved
    assert delivered.messages[0].summary == copied.messages[0].summary == summarize(RAW)
    assert copied.messages[0].summary is not None and copied.messages[0].summary.has_calendar


async def test_without_push_the_parse_is_skipped_and_a_later_copy_makes_it_once(
    store: SqliteStore,
) -> None:
    saved = (await store.deliver("alice", RAW, [DeliveryTarget("INBOX")]))[0]
    assert saved.messages[0].summary is None
    assert stored_summaries(store) == [""]

    seen = Seen()
    store.set_recorder(seen)
    await store.create_mailbox("alice", "Archive")
    await store.copy("alice", "INBOX", [1], "Archive")
    (copied,) = seen.saved
    assert copied.messages[0].summary == summarize(RAW)
    assert stored_summaries(store) == [summary_to_text(summarize(RAW))]  # shared body, once


async def test_a_save_queued_before_a_recorder_came_still_carries_its_summary(
    store: SqliteStore,
) -> None:
    """The parse is skipped when the save is submitted; the recorder may be installed (a
    reload) before its write runs. The write then makes the summary itself."""
    started, release = threading.Event(), threading.Event()

    def hold_the_writer(ctx: WriteContext) -> None:
        started.set()
        release.wait(10)

    holding = asyncio.create_task(store._writer.submit(hold_the_writer))
    await asyncio.to_thread(started.wait, 10)
    append = asyncio.create_task(store.append("alice", "INBOX", [NewMessage(RAW)]))
    await asyncio.sleep(0.05)  # submitted, waiting behind the held writer
    seen = Seen()
    store.set_recorder(seen)
    release.set()
    await holding
    saved = await append

    assert saved.messages[0].summary == summarize(RAW)
    assert [s.messages[0].summary for s in seen.saved] == [summarize(RAW)]
    assert stored_summaries(store) == [summary_to_text(summarize(RAW))]


def test_the_stored_form_reads_back_exactly_and_refuses_anything_else() -> None:
    summary = summarize(RAW)
    assert summary_from_text(summary_to_text(summary)) == summary
    for bad in ("", "{}", "[1, 2]", summary_to_text(summary).replace("true]", "1]")):
        with pytest.raises(SummaryFormatError):
            summary_from_text(bad)
