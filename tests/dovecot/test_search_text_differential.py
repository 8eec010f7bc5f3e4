"""SEARCH SUBJECT and BODY with non-ASCII text find what Dovecot 2.3.19 finds.

Dovecot compares text in its decomposed titlecase (imap/search_key.py): "cafe"
finds "café", "abc" finds full-width "ＡＢＣ", "strasse" does not find "Straße".
The same messages go to a private real Dovecot and to mailpush; each search
must answer the same UIDs on both. imaptest found the first difference
("SEARCH result missing": SUBJECT "E" against "café").
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import unicodedata

import pytest
from bench.dovecot_instance import DovecotInstance, dovecot_binary

from .conftest import PASSWORD

pytestmark = pytest.mark.skipif(
    dovecot_binary() is None,
    reason="Dovecot is not installed (apt-get install dovecot-core dovecot-imapd "
    "dovecot-lmtpd; .ci/run does this when run as root)",
)

SUBJECTS = [
    "café 14", "naïve plan", "Straße", "ﬁle report", "ＡＢＣ wide", "ÉCOLE", "İstanbul",
    "Ωmega", "résumé", "가나다", "Ǆemal ǅ", "Кириллица ёж",
]
WORDS = [
    "E", "cafe", "CAFÉ", "naive", "NAÏVE", "strasse", "straße", "file", "fi", "abc",
    "ＡＢＣ", "ecole", "école", "istanbul", "ωmega", "resume", "e\u0301", "\u1100",
    "ǆ", "dž", "ЁЖ", "ё", "е",
]
#: Search strings that are not UTF-8.
NOT_UTF8 = [b"\xcc", b"E\xcc", b"caf\xc3", b"\xff"]
#: Letters, digits and symbols of the blocks where case and decomposition matter,
#: each searched for alone in subjects that hold them all.
BLOCKS = [(0xC0, 0x24F), (0x370, 0x4FF), (0x1E00, 0x1FFF), (0xFB00, 0xFB06), (0xFF01, 0xFF5E)]
CHARACTERS = [
    chr(code)
    for start, end in BLOCKS
    for code in range(start, end + 1)
    if unicodedata.category(chr(code))[0] in "LNS"
]


def searches(port: int) -> dict[str, str]:
    """UID SEARCH results for every word and every eleventh character, on a fresh INBOX."""
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login("alice", PASSWORD)
    wide = ["".join(CHARACTERS[i : i + 60]) for i in range(0, len(CHARACTERS), 60)]
    for subject in SUBJECTS + wide:
        encoded = base64.b64encode(subject.encode()).decode()
        body = f"From: a@example.org\r\nSubject: =?utf-8?b?{encoded}?=\r\n"
        body += "Content-Type: text/plain; charset=utf-8\r\n\r\n" + subject + "\r\n"
        client.append("INBOX", None, None, body.encode())
    client.select("INBOX")
    found = {}
    for key in ("SUBJECT", "BODY"):
        for needle in WORDS + CHARACTERS[::11]:
            client.literal = needle.encode()
            typ, data = client.uid("SEARCH", "CHARSET", "UTF-8", key)
            found[f"{key} {needle}"] = f"{typ} {data[0]!r}"
    for broken in NOT_UTF8:  # as imaptest sends, cutting a subject in mid-character
        client.literal = broken
        try:
            found[f"SUBJECT {broken!r}"] = str(client.uid("SEARCH", "SUBJECT"))
        except imaplib.IMAP4.error:
            found[f"SUBJECT {broken!r}"] = "BAD"
    client.logout()
    return found


async def test_non_ascii_searches_find_the_messages_dovecot_finds(mailpush_port: int) -> None:
    async with DovecotInstance(users=[("alice", PASSWORD)]) as dovecot:
        expected = await asyncio.to_thread(searches, dovecot.imap_port)
    answered = await asyncio.to_thread(searches, mailpush_port)

    assert {k: v for k, v in answered.items() if v != expected[k]} == {}
    # Not a comparison of empty answers: most searches find something on both.
    assert sum(v != "OK b''" for v in expected.values()) > len(expected) // 2
