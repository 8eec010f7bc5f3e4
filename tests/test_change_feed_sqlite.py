"""The SQLite change feed: UNIX datagrams between the processes of one data directory.

Each `DatagramChangeFeed` here stands for one process; they talk over real
sockets in a temporary `feed/` directory (docs/operations.md#the-change-feed).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from mailpush.store import (
    ChangedElsewhere,
    ChangeHub,
    MailboxRenamed,
    MessagesExpunged,
    feed_sqlite,
)
from mailpush.store.feed_protocol import link_feed
from mailpush.store.feed_sqlite import MISSED_FILE_LIMIT, DatagramChangeFeed


class Ear:
    """What one listening feed heard, in order."""

    def __init__(self) -> None:
        self.records: list[ChangedElsewhere] = []
        self._arrived = asyncio.Event()

    def __call__(self, records: Sequence[ChangedElsewhere]) -> None:
        self.records.extend(records)
        self._arrived.set()

    async def until(self, count: int, timeout: float = 2.0) -> list[ChangedElsewhere]:
        async with asyncio.timeout(timeout):
            while len(self.records) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.records


@pytest.fixture
def feed_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "feed"


@pytest.fixture
async def feeds(feed_dir: Path) -> AsyncIterator[list[DatagramChangeFeed]]:
    made: list[DatagramChangeFeed] = []
    yield made
    for feed in made:
        await feed.close()


async def listening(
    feed_dir: Path, feeds: list[DatagramChangeFeed], hub: ChangeHub | None = None
) -> tuple[DatagramChangeFeed, Ear]:
    feed = DatagramChangeFeed(feed_dir, everyone=hub.users if hub else tuple)
    ear = Ear()
    await feed.listen(ear)
    feeds.append(feed)
    return feed, ear


def announcer(feed_dir: Path, feeds: list[DatagramChangeFeed]) -> DatagramChangeFeed:
    feed = DatagramChangeFeed(feed_dir)
    feeds.append(feed)
    return feed


async def test_an_announcement_reaches_a_listening_process_as_changed_elsewhere(
    feed_dir: Path, feeds: list[DatagramChangeFeed]
) -> None:
    _, ear = await listening(feed_dir, feeds)
    announcer(feed_dir, feeds).announce("alice", "INBOX")
    assert await ear.until(1) == [ChangedElsewhere("alice", "INBOX")]


async def test_every_listening_process_hears_it_but_never_its_own(
    feed_dir: Path, feeds: list[DatagramChangeFeed]
) -> None:
    first, first_ear = await listening(feed_dir, feeds)
    _, second_ear = await listening(feed_dir, feeds)
    first.announce("alice", "INBOX")
    assert await second_ear.until(1) == [ChangedElsewhere("alice", "INBOX")]
    await asyncio.sleep(0.05)
    assert first_ear.records == []


async def test_announcements_of_one_loop_turn_are_coalesced_per_user(
    feed_dir: Path, feeds: list[DatagramChangeFeed]
) -> None:
    _, ear = await listening(feed_dir, feeds)
    feed = announcer(feed_dir, feeds)
    feed.announce("alice", "INBOX")
    feed.announce("alice", "Sent")
    feed.announce("alice", "INBOX")
    feed.announce("bob", "INBOX")
    feed.announce("bob", None)
    heard = await ear.until(3)
    await asyncio.sleep(0.05)
    assert sorted(heard, key=repr) == sorted(
        [
            ChangedElsewhere("alice", "INBOX"),
            ChangedElsewhere("alice", "Sent"),
            ChangedElsewhere("bob", None),
        ],
        key=repr,
    )


async def test_close_sends_what_is_pending(feed_dir: Path, feeds: list[DatagramChangeFeed]) -> None:
    """A command exits right after its commit: closing its feed must not drop it."""
    _, ear = await listening(feed_dir, feeds)
    feed = DatagramChangeFeed(feed_dir)
    feed.announce("alice", "INBOX")
    await feed.close()
    assert await ear.until(1) == [ChangedElsewhere("alice", "INBOX")]


async def test_a_linked_hub_announces_its_commits_but_not_what_it_heard(
    feed_dir: Path, feeds: list[DatagramChangeFeed]
) -> None:
    _, ear = await listening(feed_dir, feeds)
    hub = ChangeHub()
    link_feed(hub, announcer(feed_dir, feeds))
    hub.publish([ChangedElsewhere("carol", "INBOX")])
    hub.publish(
        [MailboxRenamed("alice", "Old", "New"), MessagesExpunged("bob", "INBOX", 1, (3,), 9)]
    )
    heard = await ear.until(3)
    await asyncio.sleep(0.05)
    assert set(heard) == {
        ChangedElsewhere("alice", "Old"),
        ChangedElsewhere("alice", "New"),
        ChangedElsewhere("bob", "INBOX"),
    }


async def test_the_directory_is_private_and_the_socket_owner_only(
    feed_dir: Path, feeds: list[DatagramChangeFeed]
) -> None:
    feed_dir.mkdir(parents=True, mode=0o755)
    os.chmod(feed_dir, 0o755)
    feed, _ = await listening(feed_dir, feeds)
    assert stat.S_IMODE(feed_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(feed.socket_path.stat().st_mode) == 0o600


async def test_closing_removes_the_socket(feed_dir: Path) -> None:
    feed = DatagramChangeFeed(feed_dir)
    await feed.listen(Ear())
    assert feed.socket_path.exists()
    await feed.close()
    assert list(feed_dir.iterdir()) == []


async def test_a_socket_whose_process_is_gone_is_removed_by_the_next_announcer(
    feed_dir: Path, feeds: list[DatagramChangeFeed]
) -> None:
    feed_dir.mkdir(parents=True, mode=0o700)
    stale = feed_dir / "99999-deadbeef.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dead:
        dead.bind(str(stale))
    (feed_dir / "99999-deadbeef.missed").write_text('"alice"\n')
    _, ear = await listening(feed_dir, feeds)
    announcer(feed_dir, feeds).announce("alice", "INBOX")
    assert await ear.until(1) == [ChangedElsewhere("alice", "INBOX")]
    assert not stale.exists()
    assert not (feed_dir / "99999-deadbeef.missed").exists()


async def test_announcements_that_find_the_queue_full_are_heard_from_the_missed_file(
    feed_dir: Path, feeds: list[DatagramChangeFeed]
) -> None:
    """Linux queues few datagrams per socket (net.unix.max_dgram_qlen); a busy receiver
    loses none: the sender never blocks, and the users land in the missed file."""
    _, ear = await listening(feed_dir, feeds)
    feed = announcer(feed_dir, feeds)
    users = [f"user{n}" for n in range(300)]
    for user in users:  # no loop turn between: the receiver reads none of them meanwhile
        feed.announce(user, "INBOX")
        feed.flush()
    assert (feed_dir / f"{feeds[0].name}.missed").stat().st_size > 0
    await ear.until(len(users))
    assert {record.user for record in ear.records} == set(users)


async def test_an_overflowing_missed_file_means_every_user_with_sessions(
    feed_dir: Path, feeds: list[DatagramChangeFeed]
) -> None:
    hub = ChangeHub()
    hub.subscribe(lambda change: None, user="alice")
    hub.subscribe(lambda change: None, user="bob")
    receiver, ear = await listening(feed_dir, feeds, hub)
    missed = feed_dir / f"{receiver.name}.missed"
    missed.write_bytes(b'"x"\n' * (MISSED_FILE_LIMIT // 4 + 1))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as blocker:
        blocker.setblocking(False)
        try:
            while True:  # fill the receiver's queue, so the next announcement misses it
                blocker.sendto(
                    json.dumps({"user": "z", "mailboxes": None}).encode(), str(receiver.socket_path)
                )
        except BlockingIOError:
            pass
    sender = announcer(feed_dir, feeds)
    sender.announce("carol", "INBOX")
    sender.flush()
    assert missed.read_bytes() == b"null\n"
    heard = await ear.until(3)
    assert {"alice", "bob"} <= {record.user for record in heard}
    assert missed.stat().st_size == 0


async def test_a_feed_that_only_announces_binds_nothing(feed_dir: Path) -> None:
    feed = DatagramChangeFeed(feed_dir)
    feed.announce("alice", "INBOX")
    await feed.close()
    assert not feed_dir.exists()


async def test_the_missed_file_is_read_by_the_fallback_check_when_no_datagram_comes(
    feed_dir: Path, feeds: list[DatagramChangeFeed], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lost announcement may be the last one for a while: a low-rate check finds it."""
    monkeypatch.setattr(feed_sqlite, "FALLBACK_INTERVAL", 0.05)
    receiver, ear = await listening(feed_dir, feeds)
    (feed_dir / f"{receiver.name}.missed").write_text('"alice"\n"alice"\n')
    assert await ear.until(1) == [ChangedElsewhere("alice", None)]


async def test_settle_hears_at_once_everything_sent_so_far_even_what_missed_the_queue(
    feed_dir: Path, feeds: list[DatagramChangeFeed]
) -> None:
    """An IMAP command settles the hub before its answer (connection._catch_up): what
    another process announced before answering its own client must be heard by then,
    without waiting for the loop's reader or the missed file's fallback check."""
    receiver, ear = await listening(feed_dir, feeds)
    sender = announcer(feed_dir, feeds)
    users = [f"user{n}" for n in range(40)]  # more than a socket's queue holds
    for user in users:  # no loop turn: the receiver's reader never runs
        sender.announce(user, "INBOX")
        sender.flush()
    assert (feed_dir / f"{receiver.name}.missed").stat().st_size > 0
    assert receiver.settle()
    assert {record.user for record in ear.records} == set(users)
    assert receiver.settle() and len(ear.records) == len(users)  # nothing twice


async def test_a_feed_that_does_not_listen_cannot_settle(feed_dir: Path) -> None:
    assert not DatagramChangeFeed(feed_dir).settle()


async def test_a_hub_settles_through_its_linked_feed_and_not_without_one(
    feed_dir: Path, feeds: list[DatagramChangeFeed]
) -> None:
    hub = ChangeHub()
    assert not hub.settle()  # no feed: nothing can promise what other processes did
    heard: list[object] = []
    hub.subscribe(heard.append)
    receiver = DatagramChangeFeed(feed_dir)
    await receiver.listen(hub.publish)
    feeds.append(receiver)
    unlink = link_feed(hub, receiver)
    sender = announcer(feed_dir, feeds)
    sender.announce("alice", "INBOX")
    sender.flush()
    assert hub.settle() and heard == [ChangedElsewhere("alice", "INBOX")]
    unlink()
    assert not hub.settle()


def _raw_listener(feed_dir: Path) -> socket.socket:
    """A process's socket in `feed/` that the test reads itself: what goes over the wire."""
    feed_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(feed_dir / "9999-rawtest.sock"))
    sock.setblocking(False)
    return sock


def _datagrams(sock: socket.socket) -> list[dict[str, object]]:
    received = []
    try:
        while True:
            received.append(json.loads(sock.recv(65536)))
    except BlockingIOError:
        return received


async def test_the_users_of_one_loop_turn_go_in_one_datagram(
    feed_dir: Path, feeds: list[DatagramChangeFeed]
) -> None:
    """A worker that commits a batch of deliveries to five users wakes each other
    process once, not five times."""
    with _raw_listener(feed_dir) as raw:
        feed = announcer(feed_dir, feeds)
        for user in ("alice", "bob", "carol", "dave", "erin"):
            feed.announce(user, "INBOX")
        feed.announce("bob", None)
        feed.flush()
        (datagram,) = _datagrams(raw)
    assert datagram["users"] == {
        "alice": ["INBOX"], "bob": None, "carol": ["INBOX"], "dave": ["INBOX"], "erin": ["INBOX"],
    }


async def test_users_past_the_datagram_size_go_in_further_datagrams_and_all_are_heard(
    feed_dir: Path, feeds: list[DatagramChangeFeed]
) -> None:
    _, ear = await listening(feed_dir, feeds)
    with _raw_listener(feed_dir) as raw:
        feed = announcer(feed_dir, feeds)
        users = [f"user-with-a-long-name-{n:04d}@example.org" for n in range(200)]
        for user in users:
            feed.announce(user, "INBOX")
        feed.announce("many", None)
        for n in range(400):  # more mailbox names than one datagram holds: "any"
            feed.announce("many", f"Folder {n:03d} with a long name")
        feed.flush()
        sent = _datagrams(raw)
    assert len(sent) > 1
    assert all(len(json.dumps(datagram)) <= feed_sqlite.MAX_DATAGRAM for datagram in sent)
    heard = await ear.until(len(users) + 1)
    assert {record.user for record in heard} == {*users, "many"}
    assert ChangedElsewhere("many", None) in heard


async def test_the_one_user_datagram_of_earlier_versions_is_heard(
    feed_dir: Path, feeds: list[DatagramChangeFeed]
) -> None:
    """`mailpush deliver` of the version before, run beside a newer server."""
    receiver, ear = await listening(feed_dir, feeds)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as old:
        old.sendto(
            json.dumps({"from": "1-old", "user": "alice", "mailboxes": ["INBOX"]}).encode(),
            str(receiver.socket_path),
        )
    assert await ear.until(1) == [ChangedElsewhere("alice", "INBOX")]
