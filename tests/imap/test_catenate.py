"""APPEND ... CATENATE (RFC 4469): composing a message from literals and the user's own mail.

The URL forms and refusals are Dovecot 2.3.19's (measured; the differential
test in tests/dovecot repeats them): relative URLs only, so nothing but the
logged-in user's mailboxes can be read.
"""

from __future__ import annotations

import asyncio
import imaplib

from .conftest import PASSWORD, ImapStack, StackFactory

BASE = (
    b"Subject: base\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
    b"--B\r\nContent-Type: text/plain\r\n\r\npart one\r\n"
    b"--B\r\nContent-Type: text/plain\r\n\r\npart two\r\n--B--\r\n"
)


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


class Session:
    """A logged-in imaplib client sending raw command bytes (literals inline, LITERAL+)."""

    def __init__(self, stack: ImapStack, user: str = "alice") -> None:
        self.client = imaplib.IMAP4(stack.host, stack.port, timeout=10)
        self.client.login(user, PASSWORD)

    def __call__(self, command: bytes) -> list[bytes]:
        tag = self.client._new_tag()  # type: ignore[attr-defined]
        self.client.send(tag + b" " + command + b"\r\n")
        lines = []
        while True:
            line = self.client.readline()
            assert line, "connection closed"
            if line.endswith(b"}\r\n"):
                line += self.client.read(int(line[line.rindex(b"{") + 1 : -3]))
                line += self.client.readline()
            lines.append(line)
            if line.startswith(tag + b" "):
                lines[-1] = line.split(b" ", 1)[1]
                return lines

    def body(self, mailbox: str, uid: int) -> bytes:
        self(b"EXAMINE " + mailbox.encode())
        (line, _) = self(b"UID FETCH %d BODY.PEEK[]" % uid)
        return line[line.index(b"}\r\n") + 3 : -3]

    def close(self) -> None:
        self.client.logout()


async def _run(stack: ImapStack, commands: list[bytes], user: str = "alice") -> list[list[bytes]]:
    def run() -> list[list[bytes]]:
        session = Session(stack, user)
        try:
            return [session(command) for command in commands]
        finally:
            session.close()

    return await asyncio.to_thread(run)


async def test_catenate_is_advertised(stack: ImapStack) -> None:
    (answer,) = await _run(stack, [b"CAPABILITY"])
    assert b" CATENATE" in answer[0]


async def test_text_and_url_parts_are_joined_in_order(stack: ImapStack) -> None:
    def run() -> tuple[list[bytes], bytes]:
        session = Session(stack)
        session(b"CREATE other")
        session(b"APPEND other " + literal(BASE))
        (status, _) = session(b"STATUS other (UIDVALIDITY)")
        validity = status.split()[-1].rstrip(b")\r\n")
        answer = session(
            b"APPEND INBOX CATENATE (TEXT " + literal(b"Subject: new\r\n\r\n")
            + b' URL "/other;UIDVALIDITY=' + validity + b'/;UID=1/;SECTION=1"'
            + b' URL "/other/;UID=1/;SECTION=2.MIME"'
            + b' URL "/other/;UID=1/;PARTIAL=9.4" TEXT ' + literal(b"\r\n--end\r\n") + b")"
        )  # fmt: skip
        body = session.body("INBOX", 1)
        session.close()
        return answer, body

    answer, body = await asyncio.to_thread(run)
    assert answer[-1].startswith(b"OK [APPENDUID ")
    assert answer[-1].endswith(b" 1] Append completed.\r\n")
    assert body == (
        b"Subject: new\r\n\r\npart one" + b"Content-Type: text/plain\r\n\r\n" + b"base"
        + b"\r\n--end\r\n"
    )  # fmt: skip


async def test_a_relative_uid_reads_the_selected_mailbox(stack: ImapStack) -> None:
    answers = await _run(stack, [
        b"APPEND INBOX " + literal(BASE),
        b'APPEND INBOX CATENATE (URL ";UID=1")',
        b"SELECT INBOX",
        b'APPEND INBOX (\\Seen) "01-Jan-2020 10:00:00 +0000" CATENATE (URL ";UID=1/;SECTION=TEXT")',
        b"FETCH 2 (FLAGS INTERNALDATE RFC822.SIZE)",
    ])  # fmt: skip
    assert answers[1] == [
        b"NO [BADURL ;UID=1] Mailbox-relative IMAP URL, but no mailbox selected.\r\n"
    ]
    assert answers[3][-1].startswith(b"OK [APPENDUID ")
    assert answers[4][0] == (
        b'* 2 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE "01-Jan-2020 10:00:00 +0000"'
        b" RFC822.SIZE %d)\r\n" % (len(BASE) - BASE.index(b"\r\n\r\n") - 4)
    )


async def test_urls_that_name_nothing_readable_are_badurl(stack: ImapStack) -> None:
    urls = [
        b"/INBOX;UIDVALIDITY=1/;UID=1",
        b"/INBOX/;UID=99",
        b"/nonexist/;UID=1",
        b"imap://alice@127.0.0.1/INBOX/;UID=1",
        b"imap://bob@127.0.0.1/INBOX/;UID=1",
        b"http://example.org/INBOX",
        b"/;UID=1",
        b"/INBOX/;UID=1;SECTION=1",
        b"/INBOX/;UID=1/;URLAUTH=anonymous",
        b"/INBOX/;UID=0",
        b"/INBOX;FOO=1/;UID=1",
    ]
    answers = await _run(
        stack, [b"APPEND INBOX " + literal(BASE)]
        + [b'APPEND INBOX CATENATE (URL "' + url + b'")' for url in urls],
    )  # fmt: skip
    reasons = [answer[-1] for answer in answers[1:]]
    assert reasons == [
        b"NO [BADURL %s] %s.\r\n" % (url, reason) for url, reason in zip(urls, [
            b"Invalid UIDVALIDITY",
            b"Message not found",
            b"Mailbox doesn't exist: nonexist",
            b"Invalid IMAP URL: Relative URL required",
            b"Invalid IMAP URL: Relative URL required",
            b"Invalid IMAP URL: Not an IMAP URL",
            b"Mailbox-relative IMAP URL, but no mailbox selected",
            b"Invalid IMAP URL: Unrecognized IMAP URL extension: ;SECTION=1",
            b"Invalid IMAP URL: Unexpected IMAP URL path segment: `;URLAUTH=anonymous'",
            b"Invalid IMAP URL: UID cannot be zero",
            b"Invalid IMAP URL: Encountered stray ';' in mailbox reference",
        ], strict=True)
    ]  # fmt: skip


async def test_another_users_mail_cannot_be_read(stack: ImapStack) -> None:
    await _run(stack, [b"CREATE private", b"APPEND private " + literal(b"Subject: bob's\r\n\r\nx")],
               user="bob")  # fmt: skip
    (answer,) = await _run(stack, [b'APPEND INBOX CATENATE (URL "/private/;UID=1")'])
    assert answer == [b"NO [BADURL /private/;UID=1] Mailbox doesn't exist: private.\r\n"]


async def test_a_missing_target_is_trycreate_before_any_url_is_judged(stack: ImapStack) -> None:
    """imaptest's catenate script: a bad UIDVALIDITY in a URL, but the target does not
    exist, so the client is told to create it (Dovecot answers the same)."""
    commands = [
        b"CREATE src",
        b"APPEND src " + literal(BASE),
        b"APPEND nonexistent (\\Seen) CATENATE (TEXT " + literal(b"hdr1: 1\r\n")
        + b' URL "/src;UIDVALIDITY=12345/;UID=1/;SECTION=HEADER")',
    ]
    answers = await _run(stack, commands)
    assert answers[-1][-1].startswith(b"NO [TRYCREATE] ")


async def test_a_composed_message_beyond_appendlimit_is_toobig_and_not_saved(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(max_literal_size=400)
    answers = await _run(stack, [
        b"APPEND INBOX " + literal(BASE),
        b'APPEND INBOX CATENATE (URL "/INBOX/;UID=1" URL "/INBOX/;UID=1" URL "/INBOX/;UID=1")',
        b"STATUS INBOX (MESSAGES)",
    ])  # fmt: skip
    assert len(BASE) * 3 > 400 > len(BASE) * 2
    assert answers[1] == [b"NO [TOOBIG] Composed message grows too big.\r\n"]
    assert answers[2][0] == b"* STATUS INBOX (MESSAGES 1)\r\n"


async def test_big_text_parts_go_through_the_literal_spool(make_stack: StackFactory) -> None:
    stack = await make_stack(append_spool_threshold=1024)
    big = b"x" * 200_000 + b"\r\n"

    def run() -> tuple[list[bytes], bytes]:
        session = Session(stack)
        session(b"APPEND INBOX " + literal(BASE))
        answer = session(
            b"APPEND INBOX CATENATE (TEXT " + literal(b"Subject: big\r\n\r\n" + big)
            + b' URL "/INBOX/;UID=1/;SECTION=2")'
        )  # fmt: skip
        body = session.body("INBOX", 2)
        session.close()
        return answer, body

    answer, body = await asyncio.to_thread(run)
    assert answer[-1].startswith(b"OK [APPENDUID ")
    assert body == b"Subject: big\r\n\r\n" + big + b"part two"


async def test_multiappend_mixes_catenate_and_literals(stack: ImapStack) -> None:
    (answer, status) = await _run(stack, [
        b"APPEND INBOX CATENATE (TEXT " + literal(b"Subject: a\r\n\r\nx") + b") CATENATE (TEXT "
        + literal(b"Subject: b\r\n\r\ny") + b") " + literal(b"Subject: c\r\n\r\nz"),
        b"STATUS INBOX (MESSAGES)",
    ])  # fmt: skip
    assert answer[-1].endswith(b" 1:3] Append completed.\r\n")
    assert status[0] == b"* STATUS INBOX (MESSAGES 3)\r\n"


async def test_catenate_syntax_errors_are_dovecots(stack: ImapStack) -> None:
    answers = await _run(stack, [
        b"APPEND INBOX CATENATE ()",
        b'APPEND INBOX CATENATE (FOO "x")',
        b'APPEND INBOX CATENATE (TEXT "quoted")',
        b"APPEND INBOX CATENATE TEXT " + literal(b"x"),
        b'APPEND INBOX CATENATE (URL "/INBOX/;UID=1" TEXT ~{1+}\r\nx)',
    ])  # fmt: skip
    assert [answer[-1] for answer in answers] == [
        b"BAD Error in IMAP command APPEND: Empty CATENATE list.\r\n",
        b"BAD Error in IMAP command APPEND: Invalid arguments.\r\n",
        b"BAD Error in IMAP command APPEND: Invalid arguments.\r\n",
        b"BAD Error in IMAP command APPEND: Invalid arguments.\r\n",
        b"NO [UNKNOWN-CTE] Binary input allowed only when the first part is binary.\r\n",
    ]
