"""SORT, THREAD and ESEARCH answers of mailpush and of a real Dovecot 2.3, on the same messages.

Both servers get the awkward corpus of tests/imap/sort_corpus.py by APPEND
(same internal dates, same order, so the same sequence numbers and UIDs),
then the same commands with the same tags over plain sockets. The untagged
answers must be byte-identical, and so must the tagged ones but for
Dovecot's timing (`(0.001 + 0.000 secs)`) and a final period.

One difference is deliberate: for an empty THREAD result Dovecot writes
`* THREAD ` with a trailing space, which RFC 5256's grammar does not allow;
mailpush writes `* THREAD`.
"""

from __future__ import annotations

import asyncio
import re
import socket

import pytest
from bench.dovecot_instance import DovecotInstance, dovecot_binary

from ..imap.sort_corpus import CORPUS, CorpusMessage

pytestmark = pytest.mark.skipif(
    dovecot_binary() is None,
    reason="Dovecot is not installed (apt-get install dovecot-core dovecot-imapd "
    "dovecot-lmtpd; bench/README.md)",
)

PASSWORD = "secret"
#: ` (0.001 + 0.000 secs)`: how long Dovecot took, in its tagged replies.
_TIMING = re.compile(rb" \([0-9.]+ \+ [0-9. +]+ secs\)")

COMMANDS = [
    *(f"SORT ({key}) UTF-8 ALL" for key in (
        "ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO")),
    *(f"SORT (REVERSE {key}) UTF-8 ALL" for key in (
        "ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO")),
    "SORT (SUBJECT REVERSE DATE) UTF-8 ALL",
    "SORT (FROM SUBJECT) US-ASCII ALL",
    "SORT (REVERSE DISPLAYTO SIZE) UTF-8 ALL",
    "UID SORT (SUBJECT DATE) UTF-8 ALL",
    "SORT (DATE) UTF-8 SUBJECT plan",
    "SORT (SUBJECT) UTF-8 NOT ALL",
    "SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL",
    "UID SORT RETURN () (DATE) UTF-8 2:10",
    "SORT RETURN (COUNT) (SUBJECT) UTF-8 NOT ALL",
    "THREAD REFERENCES UTF-8 ALL",
    "UID THREAD REFERENCES UTF-8 ALL",
    "THREAD REFERENCES UTF-8 NOT FROM bob",
    "THREAD REFERENCES UTF-8 2:15",
    "THREAD REFERENCES UTF-8 SUBJECT plan NOT 1",
    "THREAD ORDEREDSUBJECT UTF-8 ALL",
    "UID THREAD ORDEREDSUBJECT UTF-8 ALL",
    "THREAD ORDEREDSUBJECT UTF-8 SUBJECT loop",
    "SEARCH RETURN (MIN MAX ALL COUNT) ALL",
    "SEARCH RETURN (ALL) 1,3,5:7",
    "SEARCH RETURN () SUBJECT plan",
    "UID SEARCH RETURN (COUNT MIN) FROM amy",
    "SEARCH RETURN (MIN MAX) NOT ALL",
    "SEARCH RETURN (COUNT) NOT ALL",
    "SEARCH RETURN (MAX) CHARSET UTF-8 ALL",
    # Refused the same way.
    "SORT (FOO) UTF-8 ALL",
    "SORT () UTF-8 ALL",
    "SORT (REVERSE) UTF-8 ALL",
    "SORT SUBJECT UTF-8 ALL",
    "SORT (SUBJECT) UTF-8",
    "THREAD FOO UTF-8 ALL",
    "SEARCH RETURN (FOO) ALL",
]


class LineClient:
    """Tagged commands over a blocking socket; the answer lines as bytes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.file = self.sock.makefile("rb")
        self.file.readline()
        self.count = 0

    def command(self, text: str) -> list[bytes]:
        self.count += 1
        tag = b"d%d" % self.count
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        lines = []
        while True:
            line = self.file.readline()
            assert line, f"connection closed during {text!r}"
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def append(self, raw: bytes, internal_date: str) -> None:
        self.count += 1
        tag = b"d%d" % self.count
        self.sock.sendall(
            tag + b' APPEND INBOX "%s" {%d+}\r\n' % (internal_date.encode(), len(raw))
            + raw + b"\r\n"
        )
        while not (line := self.file.readline()).startswith(tag + b" "):
            assert line
        assert line.split()[1] == b"OK", line

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def answers(
    port: int, corpus: tuple[CorpusMessage, ...] = CORPUS, commands: list[str] = COMMANDS
) -> list[tuple[str, list[bytes], bytes]]:
    """(command, untagged lines, tagged status) of every command, after appending `corpus`."""
    client = LineClient(port)
    try:
        assert client.command(f"LOGIN alice {PASSWORD}")[-1].split()[1] == b"OK"
        for message in corpus:
            client.append(message.raw, message.internal_date)
        client.command("SELECT INBOX")
        out = []
        for text in commands:
            lines = client.command(text)
            untagged = [line.rstrip(b"\r\n") for line in lines[:-1]]
            # The one deliberate difference (module docstring): `* THREAD ` when empty.
            untagged = [b"* THREAD" if line == b"* THREAD " else line for line in untagged]
            out.append((text, untagged, _tagged_text(lines[-1])))
        return out
    finally:
        client.close()


def _tagged_text(line: bytes) -> bytes:
    """The tagged reply without its tag, Dovecot's timing and the final period."""
    text = line.rstrip(b"\r\n").split(b" ", 1)[1]
    return _TIMING.sub(b"", text).rstrip(b".")


def _group_message(headers: str, day: int) -> CorpusMessage:
    raw = (headers + "Subject: s\r\n\r\nbody\r\n").encode()
    return CorpusMessage(raw, f"{day:02d}-Mar-2023 08:00:00 +0000")


#: Address headers that open with a group, an empty group, a source route or a
#: comment: SORT reads the first entry of the list as IMAP's ENVELOPE shows it.
GROUP_CORPUS: tuple[CorpusMessage, ...] = (
    _group_message("From: zeta: <mm@x.org>;\r\nTo: b@x.org\r\nCc: user2: blah@domain1.org;\r\n", 1),
    _group_message("From: Al <al@x.org>\r\nTo: undisclosed-recipients:;\r\nCc: cc@x.org\r\n", 2),
    _group_message("From: <@relay.x:kk@x.org>\r\nTo: alpha: ;, bz@x.org\r\nCc: aaa@x.org\r\n", 3),
    _group_message("From: (c) mm@x.org\r\nTo: \"Q\" <q@x.org>\r\nCc: mid: zz@x.org;\r\n", 4),
    _group_message("From: =?utf-8?q?Gr=C3=BCn?= <g@x.org>\r\nTo: group: ;\r\n", 5),
)

GROUP_COMMANDS = [
    f"SORT ({reverse}{key}) UTF-8 ALL"
    for key in ("CC", "FROM", "TO", "DISPLAYFROM", "DISPLAYTO")
    for reverse in ("", "REVERSE ")
]


async def test_sort_by_addresses_that_are_groups_answers_as_dovecot_does(
    mailpush_port: int,
) -> None:
    """SORT (CC) of `Cc: user2: blah@domain1.org;` sorts by the group's name, as imaptest checks."""
    async with DovecotInstance(users=[("alice", PASSWORD)]) as dovecot:
        expected = await asyncio.to_thread(
            answers, dovecot.imap_port, GROUP_CORPUS, GROUP_COMMANDS
        )
        log = dovecot.log_text()
    actual = await asyncio.to_thread(answers, mailpush_port, GROUP_CORPUS, GROUP_COMMANDS)
    _assert_same(expected, actual, log)


async def test_sort_thread_and_esearch_answer_as_dovecot_does(mailpush_port: int) -> None:
    async with DovecotInstance(users=[("alice", PASSWORD)]) as dovecot:
        expected = await asyncio.to_thread(answers, dovecot.imap_port)
        log = dovecot.log_text()
    actual = await asyncio.to_thread(answers, mailpush_port)
    _assert_same(expected, actual, log)


def _assert_same(
    expected: list[tuple[str, list[bytes], bytes]],
    actual: list[tuple[str, list[bytes], bytes]],
    log: str,
) -> None:

    differences = [
        f"{text}\n  dovecot:  {want_lines} {want_status!r}\n  mailpush: {got_lines} {got_status!r}"
        for (text, want_lines, want_status), (_, got_lines, got_status) in zip(
            expected, actual, strict=True
        )
        if (want_lines, want_status) != (got_lines, got_status)
    ]
    assert not differences, "\n".join(differences) + "\n" + log[-2000:]
