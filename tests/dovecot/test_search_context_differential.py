"""CONTEXT=SEARCH (RFC 5267) gets the same answers from mailpush as from Dovecot 2.3.19.

Each script below (PARTIAL, its errors, and UPDATE searches following changes
made by the session itself and by another one) runs against a private real
Dovecot (bench/dovecot_instance.py) and against mailpush started from its
config file; the transcripts, every untagged line in order and the tagged
reply, must be equal. Normalised as in test_imap_concurrency_differential.py
(two_sessions.Session): timings, UIDVALIDITY values, and mailpush's `UID n`
in a flag update another session caused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from bench.dovecot_instance import dovecot_binary

from ..imap.two_sessions import Script, message
from .transcripts import dovecot_transcript, mailpush_transcript

pytestmark = pytest.mark.skipif(
    dovecot_binary() is None,
    reason="Dovecot is not installed (apt-get install dovecot-core dovecot-imapd "
    "dovecot-lmtpd; .ci/run does this when run as root)",
)

PASSWORD = "secret"


def partial_ranges(script: Script) -> None:
    script.fill("part", 5)
    script.quietly("A", "SELECT part")
    for command in (
        "SEARCH RETURN (PARTIAL 4:2) ALL",
        "SEARCH RETURN (PARTIAL 6:6) ALL",
        "SEARCH RETURN (PARTIAL 2:10 COUNT MIN) 1:2,4:5",
        "UID SEARCH RETURN (PARTIAL 1:3) NOT 2",
        "SEARCH RETURN (PARTIAL 1) ALL",
        "SEARCH RETURN (PARTIAL 1:*) ALL",
        "SEARCH RETURN (PARTIAL) ALL",
        "SEARCH RETURN (PARTIAL 1:2 ALL) ALL",
        "SEARCH RETURN (PARTIAL 1:2 PARTIAL 1:2) ALL",
        "SEARCH RETURN (CONTEXT) ALL",
        "SEARCH RETURN (UPDATE UPDATE) ALL",
        "SEARCH RETURN (MIN \"x\") ALL",
    ):
        script("A", command)


def update_follows_own_changes(script: Script) -> None:
    script.fill("ctx", 5)
    script.quietly("A", "SELECT ctx")
    script("A", "SEARCH RETURN (UPDATE) BODY body SEEN")
    script("A", "UID SEARCH RETURN (UPDATE COUNT) 2:4 UNSEEN")
    script("A", "STORE 1,2,4 +FLAGS (\\Seen)")
    script("A", "STORE 1,2 -FLAGS (\\Seen)")
    # One message per EXPUNGE: mailpush numbers several in another (valid) order.
    script("A", "STORE 3 +FLAGS.SILENT (\\Deleted)")
    script("A", "EXPUNGE")
    script("A", "STORE 3 +FLAGS.SILENT (\\Deleted)")
    script("A", "EXPUNGE")
    script("A", "APPEND ctx (\\Seen)", message(6))
    script("A", "CANCELUPDATE \"A8\" \"nosuch\"")
    script("A", "STORE 2 +FLAGS (\\Seen)")
    script("A", "CANCELUPDATE \"A9\"")
    script("A", "CANCELUPDATE")
    script("A", "CANCELUPDATE A9")
    script("A", "STORE 2 -FLAGS (\\Seen)")


def update_follows_another_session(script: Script) -> None:
    script.fill("ctx", 3)
    script.quietly("A", "SELECT ctx")
    script.quietly("B", "SELECT ctx")
    script("A", "SEARCH RETURN (UPDATE ALL) OR SEEN SUBJECT m3")
    script("B", "STORE 2 +FLAGS.SILENT (\\Seen)")
    script("B", "APPEND ctx (\\Seen)", message(4))
    script("A", "NOOP")
    script("B", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    script("B", "EXPUNGE")
    script("A", "FETCH 1 FLAGS")
    script("A", "NOOP")


SCRIPTS: dict[str, Callable[[Script], None]] = {
    "partial_ranges": partial_ranges,
    "update_follows_own_changes": update_follows_own_changes,
    "update_follows_another_session": update_follows_another_session,
}


@pytest.mark.parametrize("name", list(SCRIPTS))
async def test_context_search_gets_the_answers_dovecot_gives(name: str, tmp_path: Path) -> None:
    expected = await dovecot_transcript(SCRIPTS[name])

    assert await mailpush_transcript(tmp_path, SCRIPTS[name]) == expected
