"""Awkward messages for SORT and THREAD, shared by their tests and the Dovecot comparison.

Each message is appended with its own internal date (ARRIVAL, and DATE's
fallback). Between them they hold: Re:/Fwd:/[blob]/(fwd)/[fwd: ...]
decorations, RFC 2047 subjects and names, missing and unparsable Date
headers, missing Subject and From, equal keys (ties go to sequence order),
one local part at two domains, and reference structures for THREAD: a
chain, a reply by In-Reply-To only, replies to a message that is not in the
mailbox, a duplicate Message-ID, a References loop, and unrelated messages
whose subjects match.
"""

from __future__ import annotations

import imaplib
from dataclasses import dataclass


@dataclass(frozen=True)
class CorpusMessage:
    raw: bytes
    #: `dd-Mon-yyyy hh:mm:ss +zzzz`
    internal_date: str


def _message(headers: list[tuple[str, str]], body: str = "Body text.\r\n") -> bytes:
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return (lines + "\r\n" + body).encode()


def _day(day: int) -> str:
    return f"{day:02d}-Mar-2023 08:00:00 +0000"


CORPUS: tuple[CorpusMessage, ...] = (
    # 1: thread root
    CorpusMessage(_message([
        ("From", "Amy Adams <amy@example.org>"), ("To", "zed@example.net"),
        ("Subject", "Quarterly plan"), ("Date", "Mon, 02 Jan 2023 10:00:00 +0000"),
        ("Message-ID", "<plan-1@example.org>"),
    ]), _day(20)),
    # 2: reply by References
    CorpusMessage(_message([
        ("From", "Bob <bob@example.net>"), ("To", "Amy Adams <amy@example.org>"),
        ("Cc", "carol@example.com"), ("Subject", "Re: Quarterly plan"),
        ("Date", "Tue, 03 Jan 2023 09:00:00 +0100"), ("Message-ID", "<plan-2@example.net>"),
        ("References", "<plan-1@example.org>"),
    ]), _day(19)),
    # 3: reply by In-Reply-To only, decorated subject
    CorpusMessage(_message([
        ("From", "=?utf-8?q?=C3=89mile_Zola?= <emile@example.fr>"), ("To", "bob@example.net"),
        ("Subject", "RE: [team] Re: Quarterly plan"), ("Date", "Wed, 04 Jan 2023 08:00:00 +0000"),
        ("Message-ID", "<plan-3@example.fr>"), ("In-Reply-To", "<plan-2@example.net>"),
    ]), _day(18)),
    # 4: same subject, no references, no Date (falls back to the internal date)
    CorpusMessage(_message([
        ("From", "amy@example.com"), ("To", "Zed <zed@example.net>"),
        ("Subject", "[blob] Fwd: quarterly plan (fwd)"), ("Message-ID", "<fwd-4@example.com>"),
    ]), _day(2)),
    # 5: encoded subject, unparsable Date
    CorpusMessage(_message([
        ("From", "\"Zoe\" <zoe@example.org>"), ("To", "=?utf-8?b?w4lsaXNl?= <elise@example.org>"),
        ("Subject", "=?utf-8?q?=C3=A9t=C3=A9_report?="), ("Date", "someday soon"),
        ("Message-ID", "<ete-5@example.org>"),
    ]), _day(3)),
    # 6: replies to a message not in the mailbox (a dummy parent), no Subject at all
    CorpusMessage(_message([
        ("From", "Bob <bob@example.org>"), ("To", "amy@example.org"),
        ("Date", "Thu, 05 Jan 2023 10:00:00 +0000"), ("Message-ID", "<orphan-6@example.org>"),
        ("References", "<gone@example.org>"),
    ]), _day(4)),
    # 7: the dummy's other child
    CorpusMessage(_message([
        ("From", "Carol <carol@example.com>"), ("To", "amy@example.org"),
        ("Subject", "Re: Lost thread"), ("Date", "Thu, 05 Jan 2023 09:00:00 +0000"),
        ("Message-ID", "<orphan-7@example.com>"), ("References", "<gone@example.org>"),
    ]), _day(5)),
    # 8: a duplicate Message-ID of message 1
    CorpusMessage(_message([
        ("From", "Dan <dan@example.org>"), ("To", "amy@example.org"),
        ("Subject", "Duplicate"), ("Date", "Fri, 06 Jan 2023 10:00:00 +0000"),
        ("Message-ID", "<plan-1@example.org>"),
    ]), _day(6)),
    # 9 and 10: a References loop
    CorpusMessage(_message([
        ("From", "Eve <eve@example.org>"), ("To", "amy@example.org"), ("Subject", "Loop"),
        ("Date", "Sat, 07 Jan 2023 10:00:00 +0000"), ("Message-ID", "<loop-a@example.org>"),
        ("References", "<loop-b@example.org>"),
    ]), _day(7)),
    CorpusMessage(_message([
        ("From", "Eve <eve@example.org>"), ("To", "amy@example.org"), ("Subject", "Re: Loop"),
        ("Date", "Sat, 07 Jan 2023 11:00:00 +0000"), ("Message-ID", "<loop-b@example.org>"),
        ("References", "<loop-a@example.org>"),
    ]), _day(8)),
    # 11: same Date as 1 (ties by sequence), same subject base as "Lost thread"
    CorpusMessage(_message([
        ("From", "Amy Adams <amy@example.net>"), ("To", "zed@example.net"),
        ("Subject", "Lost   thread"), ("Date", "Mon, 02 Jan 2023 10:00:00 +0000"),
        ("Message-ID", "<lost-11@example.net>"),
    ]), _day(9)),
    # 12: [fwd: ...] wrapper of the plan, larger body
    CorpusMessage(_message([
        ("From", "Fay <fay@example.org>"), ("To", "amy@example.org"),
        ("Subject", "[fwd: Quarterly plan]"), ("Date", "Sun, 08 Jan 2023 10:00:00 -0500"),
        ("Message-ID", "<fwd-12@example.org>"),
    ], "A longer body.\r\n" * 20), _day(10)),
    # 13: no From, no Subject, no Date, no Message-ID
    CorpusMessage(_message([("To", "amy@example.org")]), _day(11)),
    # 14: a blob-only subject, display name as a comment
    CorpusMessage(_message([
        ("From", "gus@example.org (Gus Grey)"), ("To", "amy@example.org"),
        ("Subject", "[only a blob]"), ("Date", "Mon, 09 Jan 2023 10:00:00 +0000"),
        ("Message-ID", "<blob-14@example.org>"),
    ]), _day(12)),
    # 15: another non-reply "Loop" with no references
    CorpusMessage(_message([
        ("From", "Hal <hal@example.org>"), ("To", "amy@example.org"), ("Subject", "loop"),
        ("Date", "Tue, 10 Jan 2023 10:00:00 +0000"), ("Message-ID", "<loop-c@example.org>"),
    ]), _day(13)),
)


def append_corpus(client: imaplib.IMAP4, mailbox: str = "INBOX") -> None:
    """APPEND every corpus message, in order, with its internal date."""
    for message in CORPUS:
        status, data = client.append(
            mailbox, "", f'"{message.internal_date}"', message.raw
        )
        assert status == "OK", data
