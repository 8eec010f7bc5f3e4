"""NOTIFY (RFC 5465): mailpush tells a client what Dovecot 2.3.19 tells it.

Sessions of one user take turns on both servers: `b` changes mail (APPEND,
STORE, EXPUNGE, CREATE, RENAME, DELETE, SUBSCRIBE) while the others have set
NOTIFY, and what they hear without asking (WAIT: every line that comes
within a few seconds; Dovecot gathers changes for up to about 1.5 s) or in
answer to their next command is compared. Answers are compared line by line
with the tag, Dovecot's timing, a final period and UIDVALIDITY values taken
out; lines heard while waiting are compared as a set, since Dovecot writes
the notifications of separate mailboxes in its own order.

Deliberate differences, left out of the steps below
(docs/imap.md#notify):
- mailpush tells a change as soon as it is committed, Dovecot after its
  index notices it (0.5 to 1.5 s later), gathering what came meanwhile: a
  flag change followed at once by an expunge is one `* STATUS` (or, for the
  selected mailbox, the EXPUNGE alone) in Dovecot, two in mailpush. The steps
  wait between such changes.
- mailpush adds `UID n` to a flag change it tells unasked
  (tests/imap/two_sessions.py); taken out before comparing.
- A change committed while a command of `a` runs is told by Dovecot when it
  notices it, maybe in the middle of the command's answer; mailpush after the
  tagged reply.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from bench.dovecot_instance import DovecotInstance, dovecot_binary

from .test_imap_extensions_differential import DOVECOT_CONFIG, RawClient

pytestmark = pytest.mark.skipif(
    dovecot_binary() is None,
    reason="Dovecot is not installed (apt-get install dovecot-core dovecot-imapd "
    "dovecot-lmtpd; bench/README.md)",
)

PASSWORD = "secret"
_TIMING = re.compile(rb" \([0-9.]+ \+ [0-9. +]+ secs\)")
_UIDVALIDITY = re.compile(rb"(UIDVALIDITY[ =]|APPENDUID |COPYUID )[0-9]+")
_UNSOLICITED_UID = re.compile(rb"^(\* \d+ FETCH \()UID \d+ (?=FLAGS \()")
MESSAGE = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
#: A step that reads what a session is told unasked, for this many seconds (Dovecot
#: tells a change up to 1.5 s after it; mailpush at once).
WAIT = b"(wait)"
DOVECOT_WAIT_SECONDS = 3.0
MAILPUSH_WAIT_SECONDS = 1.0
#: A step that lets time pass: Dovecot watches the selected mailbox again only 1 s
#: after a command of that session ended, and would not see a change made before.
PAUSE = b"(pause)"
PAUSE_SECONDS = 1.5


def _append(mailbox: bytes, flags: bytes = b"") -> bytes:
    return b"APPEND %s %s{%d+}\r\n" % (mailbox, flags, len(MESSAGE)) + MESSAGE


#: Each mailbox's status is read once first: Dovecot's list index knows a mailbox's
#: UIDVALIDITY only from then on, and NOTIFY compares with what the index knows.
SETUP = [
    b"CREATE box1", b"CREATE box2", b"CREATE tree", b"CREATE tree/leaf", _append(b"box1"),
    b"STATUS box1 (UIDVALIDITY)", b"STATUS box2 (UIDVALIDITY)", b"STATUS tree (UIDVALIDITY)",
    b"STATUS tree/leaf (UIDVALIDITY)",
]

#: (session, command). Session `b` changes mail; `a`, `c`, `d`, `e` each set one
#: NOTIFY to be told about (Dovecot 2.3.19 may miss changes after a second NOTIFY SET
#: on one connection, a bug left out here). WAIT: what that session hears meanwhile.
STEPS: list[tuple[str, bytes]] = [
    # The grammar and what is refused.
    ("a", b"NOTIFY"), ("a", b"NOTIFY FOO"), ("a", b"NOTIFY SET (foo (MessageNew))"),
    ("a", b"NOTIFY SET (selected (MessageNew))"), ("a", b"NOTIFY SET (selected (FlagChange))"),
    ("a", b"NOTIFY SET (selected NONE) (selected-delayed NONE)"),
    ("a", b"NOTIFY SET (personal ())"), ("a", b"NOTIFY SET (subtree () (MessageNew))"),
    ("a", b"NOTIFY SET (personal (MessageNew) x)"), ("a", b"NOTIFY SET (personal (Foo))"),
    ("a", b"NOTIFY SET (personal (AnnotationChange ServerMetadataChange MessageNew))"),
    ("a", b"NOTIFY SET (selected (MessageNew MessageExpunge MailboxMetadataChange))"),
    ("a", b"NOTIFY SET (selected (MessageNew () MessageExpunge))"),
    ("a", b"NOTIFY SET (selected (MessageNew MessageExpunge) x)"),
    ("a", b"NOTIFY SET (selected (MessageNew (UID) MessageExpunge))"),
    ("a", b"NOTIFY SET"), ("a", b"NOTIFY SET STATUS"), ("a", b"NOTIFY NONE"),
    ("a", b"NOTIFY NONE foo"), ("a", b"NOTIFY SET (personal NONE)"),
    # NOTIFY SET STATUS: the covered mailboxes' status first.
    ("a", b"NOTIFY SET STATUS (mailboxes box1 (MessageExpunge))"),
    ("a", b"NOTIFY SET STATUS (mailboxes (box1 box2) (MessageNew))"),
    ("a", b"NOTIFY SET STATUS (subtree tree (MessageNew MessageExpunge))"),
    ("a", b"NOTIFY SET STATUS (mailboxes box1 (MailboxName))"),
    ("a", b"NOTIFY SET STATUS (mailboxes box1 (FlagChange))"),
    # Other mailboxes: STATUS after message changes, LIST after name changes.
    ("c", b"NOTIFY SET (personal (MessageNew MessageExpunge FlagChange MailboxName"
          b" SubscriptionChange))"),
    ("b", _append(b"box2")), ("c", WAIT),
    ("b", b"SELECT box2"), ("b", b"STORE 1 +FLAGS (\\Seen)"), ("c", WAIT),
    ("b", b"STORE 1 +FLAGS ($Keyword)"), ("c", WAIT),
    ("c", b"ENABLE CONDSTORE"), ("b", b"STORE 1 +FLAGS ($Other)"), ("c", WAIT),
    ("b", b"STORE 1 +FLAGS (\\Deleted)"), ("c", WAIT), ("b", b"EXPUNGE"), ("c", WAIT),
    ("b", b"CREATE newbox"), ("c", WAIT),
    ("b", b"RENAME newbox renamed"), ("c", WAIT),
    ("b", b"SUBSCRIBE renamed"), ("c", WAIT),
    ("b", b"UNSUBSCRIBE renamed"), ("c", WAIT),
    ("b", _append(b"renamed")), ("c", WAIT),
    ("b", b"DELETE renamed"), ("c", WAIT),
    ("c", b"CREATE own"), ("c", WAIT), ("c", b"DELETE own"), ("c", WAIT),
    ("b", b"UNSELECT"),
    # Only the named mailbox.
    ("d", b"NOTIFY SET (mailboxes box1 (MessageNew))"),
    ("b", _append(b"box2")), ("b", _append(b"box1")), ("d", WAIT),
    # The selected mailbox: told between commands with SELECTED.
    ("e", b"SELECT box1"),
    ("e", b"NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange))"),
    ("e", PAUSE), ("b", _append(b"box1")), ("e", WAIT),
    ("b", b"SELECT box1"), ("b", b"STORE 1 +FLAGS (\\Flagged)"), ("e", WAIT),
    ("b", b"STORE 1 +FLAGS (\\Deleted)"), ("e", WAIT),
    ("b", b"EXPUNGE"), ("b", b"UNSELECT"), ("e", WAIT),
    ("e", b"NOOP"),
    # SELECTED-DELAYED: expunges wait for a command.
    ("e", b"NOTIFY SET (selected-delayed (MessageNew MessageExpunge))"), ("e", PAUSE),
    ("b", b"SELECT box1"), ("b", b"STORE 1 +FLAGS (\\Deleted)"), ("b", b"EXPUNGE"),
    ("b", b"UNSELECT"), ("e", WAIT),
    ("b", _append(b"box1")), ("e", WAIT), ("e", b"FETCH 1:* UID"), ("e", b"NOOP"),
    # Without the selected mailbox in NOTIFY: nothing about it, not even to STORE.
    ("e", b"NOTIFY SET (mailboxes box2 (MessageNew))"), ("e", PAUSE),
    ("b", _append(b"box1")), ("e", WAIT), ("e", b"NOOP"),
    ("e", b"STORE 1 +FLAGS (\\Deleted)"), ("e", b"EXPUNGE"), ("e", b"FETCH 1:* UID"),
    ("e", b"NOTIFY NONE"), ("b", _append(b"box1")), ("e", b"NOOP"),
]  # fmt: skip


class _Client(RawClient):
    def unasked(self, seconds: float) -> list[bytes]:
        """The lines that come within `seconds` without a command."""
        lines: list[bytes] = []
        self.sock.settimeout(seconds)
        try:
            while True:
                lines.append(self.line())
        except TimeoutError:
            return lines
        finally:
            self.sock.settimeout(20)


def answers(port: int, wait_seconds: float) -> list[tuple[str, bytes, object]]:
    clients = {name: _Client(port) for name in "abcde"}
    try:
        for client in clients.values():
            assert client.command(b"LOGIN alice " + PASSWORD.encode())[1].startswith(b"OK")
        for text in SETUP:
            assert clients["b"].command(text)[1].startswith(b"OK"), text
        out: list[tuple[str, bytes, object]] = []
        for who, text in STEPS:
            client = clients[who]
            if text == PAUSE:
                time.sleep(PAUSE_SECONDS)
                continue
            if text == WAIT:
                heard = client.unasked(wait_seconds)
                out.append((who, text, sorted(_heard(line) for line in heard)))
                continue
            untagged, tagged = client.command(text)
            answer = _normalised(untagged, tagged)
            if text.startswith(b"NOTIFY SET STATUS"):
                # Dovecot answers in its Maildir's order, mailpush in name order.
                answer = sorted(answer[0]), answer[1]
            out.append((who, text, answer))
        return out
    finally:
        for client in clients.values():
            client.close()


def _normalised_line(line: bytes) -> bytes:
    return _UIDVALIDITY.sub(rb"\1V", line.rstrip(b"\r\n"))


def _heard(line: bytes) -> bytes:
    """A line told unasked, with mailpush's `UID n` taken out of a flag change."""
    return _UNSOLICITED_UID.sub(rb"\1", _normalised_line(line))


def _normalised(untagged: list[bytes], tagged: bytes) -> tuple[list[bytes], bytes]:
    status = _UIDVALIDITY.sub(rb"\1V", _TIMING.sub(b"", tagged.rstrip(b"\r\n")).rstrip(b"."))
    return [_normalised_line(line) for line in untagged], status


@pytest.mark.timeout(400)
async def test_notify_tells_what_dovecot_tells(mailpush_port: int) -> None:
    async with DovecotInstance(users=[("alice", PASSWORD)], extra_config=DOVECOT_CONFIG) as dovecot:
        # Side by side: the steps are mostly waiting (pauses, Dovecot's slow notices), and
        # one after the other they took the longest of the whole suite.
        expected, actual = await asyncio.gather(
            asyncio.to_thread(answers, dovecot.imap_port, DOVECOT_WAIT_SECONDS),
            asyncio.to_thread(answers, mailpush_port, MAILPUSH_WAIT_SECONDS),
        )

    differences = []
    for (who, text, want), (_, _, got) in zip(expected, actual, strict=True):
        if want != got:
            differences.append(f"{who}: {text!r}\n  dovecot:  {want!r}\n  mailpush: {got!r}")
    assert not differences, "\n".join(differences)
