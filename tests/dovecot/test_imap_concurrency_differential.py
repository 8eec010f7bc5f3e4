"""Two IMAP sessions on one mailbox get the same answers from mailpush as from Dovecot 2.3.19.

Each script of tests/imap/two_sessions.py — STORE, FETCH, SEARCH and COPY on
a message another session expunged, a new keyword's `* FLAGS`, `\\Recent`
held by one session, ENVELOPE groups and routes, SEARCH by address, LIST
patterns that are not modified UTF-7 — runs against a private real Dovecot
(bench/dovecot_instance.py, Maildir, a fresh index: nothing cached) and
against mailpush started from its config file, each time for a user with
only INBOX. The transcripts, every untagged line in order and the tagged
reply, must be equal.

Normalised (two_sessions.Session): Dovecot's timings after tagged replies,
and UIDVALIDITY values (creation times). Tolerated, as in
tests/imap/test_concurrent_sessions.py: mailpush's `UID n` in a flag update
another session caused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.dovecot_instance import dovecot_binary

from ..imap.two_sessions import SCRIPTS
from .transcripts import dovecot_transcript, mailpush_transcript

pytestmark = pytest.mark.skipif(
    dovecot_binary() is None,
    reason="Dovecot is not installed (apt-get install dovecot-core dovecot-imapd "
    "dovecot-lmtpd; .ci/run does this when run as root)",
)

PASSWORD = "secret"


@pytest.mark.parametrize("name", list(SCRIPTS))
async def test_two_sessions_get_the_answers_dovecot_gives(name: str, tmp_path: Path) -> None:
    expected = await dovecot_transcript(SCRIPTS[name])

    assert await mailpush_transcript(tmp_path, SCRIPTS[name]) == expected
