"""FETCH BINARY, BINARY.PEEK and BINARY.SIZE (RFC 3516), and APPEND of binary content.

Every expected answer below is what Dovecot 2.3.19 sends for the same
message (measured; tests/dovecot/test_imap_extensions_differential.py
repeats the comparison when Dovecot is installed).
"""

from __future__ import annotations

import asyncio
import base64
import imaplib

from .conftest import PASSWORD, ImapStack

#: Parts: 1 text/plain 7bit, 2 base64 of bytes 0..255, 3 quoted-printable,
#: 4 x-uuencode (unknown), 5 message/rfc822 holding a base64 body, 6 BASE64 text.
MULTIPART = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\npreamble\r\n"
    b"--XX\r\nContent-Type: text/plain\r\n\r\nplain text\r\n"
    b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(bytes(range(256))).replace(b"\n", b"\r\n")
    + b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 soft=\r\nbreak=3D\r\n"
    b"--XX\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
    b"begin 644 x\r\nend\r\n"
    b"--XX\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: inner\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n"
    b"--XX\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: BASE64\r\nX-After: 1\r\n"
    b"\r\nbm8gbmV3bGluZQ==\r\n"
    b"--XX--\r\n"
)
SIMPLE_QP = (
    b"Subject: simple\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nhello=20world=\r\n!\r\n"
)


async def _answers(stack: ImapStack, *lines: str) -> list[bytes]:
    """Each command's whole answer (untagged lines, literals and the tagged line) as bytes."""

    def run() -> list[bytes]:
        client = imaplib.IMAP4(stack.host, stack.port, timeout=10)
        client.login("alice", PASSWORD)
        for raw in (MULTIPART, SIMPLE_QP):
            assert client.append("INBOX", None, None, raw)[0] == "OK"
        client.select("INBOX")
        out = [b"".join(_strip_tag(command_with_literals(client, text))) for text in lines]
        client.logout()
        return out

    return await asyncio.to_thread(run)


def command_with_literals(client: imaplib.IMAP4, line: str) -> list[bytes]:
    """Like `command`, but reads literals (`{n}` and `~{n}`) whole, NULs and CRs included."""
    tag = client._new_tag().decode()  # type: ignore[attr-defined]
    client.send(f"{tag} {line}\r\n".encode())
    out = []
    while True:
        answer = client.readline()
        assert answer, "connection closed"
        out.append(answer)
        if answer.endswith(b"}\r\n"):
            size = int(answer[answer.rindex(b"{") + 1 : -3])
            out.append(client.read(size))
        elif answer.startswith(tag.encode() + b" "):
            return out


def _strip_tag(lines: list[bytes]) -> list[bytes]:
    return [*lines[:-1], lines[-1].split(b" ", 1)[1]]


async def test_binary_is_advertised(stack: ImapStack) -> None:
    def capabilities() -> list[str]:
        client = imaplib.IMAP4(stack.host, stack.port)
        client.login("alice", PASSWORD)
        _, data = client.capability()
        client.logout()
        return data[0].decode().split()

    assert "BINARY" in await asyncio.to_thread(capabilities)


async def test_binary_decodes_each_part_and_says_literal8_when_it_decoded(
    stack: ImapStack,
) -> None:
    plain, b64, qp, inner, inner_body, text = await _answers(
        stack,
        "FETCH 1 (BINARY.PEEK[1])", "FETCH 1 (BINARY.PEEK[2])", "FETCH 1 (BINARY.PEEK[3])",
        "FETCH 1 (BINARY.PEEK[5])", "FETCH 1 (BINARY.PEEK[5.1])", "FETCH 1 (BINARY.PEEK[6])",
    )  # fmt: skip
    assert plain == b"* 1 FETCH (BINARY[1] {10}\r\nplain text)\r\nOK Fetch completed.\r\n"
    assert b64 == b"* 1 FETCH (BINARY[2] ~{256}\r\n" + bytes(range(256)) + (
        b")\r\nOK Fetch completed.\r\n"
    )
    assert qp.startswith(b"* 1 FETCH (BINARY[3] ~{16}\r\ncaf\xc3\xa9 softbreak=)\r\n")
    # A message part: its own header rewritten, `binary` replacing what was undone.
    assert inner.startswith(
        b"* 1 FETCH (BINARY[5] ~{58}\r\n"
        b"Subject: inner\r\nContent-Transfer-Encoding: binary\r\n\r\nhello)\r\n"
    )
    assert inner_body.startswith(b"* 1 FETCH (BINARY[5.1] ~{5}\r\nhello)\r\n")
    assert text.startswith(b"* 1 FETCH (BINARY[6] ~{10}\r\nno newline)\r\n")


async def test_whole_message_and_text_are_converted_with_headers_rewritten(
    stack: ImapStack,
) -> None:
    whole, size, text, mime = await _answers(
        stack, "FETCH 2 (BINARY.PEEK[])", "FETCH 2 (BINARY.SIZE[])", "FETCH 2 (BINARY.PEEK[TEXT])",
        "FETCH 2 (BINARY.PEEK[1.MIME])",
    )  # fmt: skip
    assert whole.startswith(
        b"* 2 FETCH (BINARY[] ~{68}\r\nSubject: simple\r\nContent-Transfer-Encoding: binary\r\n"
        b"\r\nhello world!\r\n)\r\n"
    )
    assert size.startswith(b"* 2 FETCH (BINARY.SIZE[] 68)\r\n")
    assert text.startswith(b"* 2 FETCH (BINARY[TEXT] ~{14}\r\nhello world!\r\n)\r\n")
    # MIME headers are not decoded: BODY's bytes, in a plain literal.
    assert mime.startswith(
        b"* 2 FETCH (BINARY[1.MIME] {64}\r\n"
        b"Subject: simple\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n)\r\n"
    )


async def test_partial_size_and_missing_parts(stack: ImapStack) -> None:
    tail, beyond, sizes, missing, missing_size, ignored_partial = await _answers(
        stack,
        "FETCH 1 (BINARY.PEEK[2]<250.10>)", "FETCH 1 (BINARY.PEEK[2]<300.10>)",
        "FETCH 2 (BINARY.SIZE[1])", "FETCH 1 (BINARY.PEEK[9])", "FETCH 1 (BINARY.SIZE[9])",
        "FETCH 2 (BINARY.SIZE[1]<0.3>)",
    )  # fmt: skip
    assert tail.startswith(b"* 1 FETCH (BINARY[2]<250> ~{6}\r\n\xfa\xfb\xfc\xfd\xfe\xff)\r\n")
    assert beyond.startswith(b"* 1 FETCH (BINARY[2]<300> ~{0}\r\n)\r\n")
    assert sizes.startswith(b"* 2 FETCH (BINARY.SIZE[1] 14)\r\n")
    assert missing.startswith(b"* 1 FETCH (BINARY[9] {0}\r\n)\r\n")
    assert missing_size.startswith(b"* 1 FETCH (BINARY.SIZE[9] 0)\r\n")
    assert ignored_partial.startswith(b"* 2 FETCH (BINARY.SIZE[1] 14)\r\n")


async def test_an_unknown_transfer_encoding_fails_the_fetch_with_unknown_cte(
    stack: ImapStack,
) -> None:
    part, with_flags, size_elsewhere, other_part = await _answers(
        stack,
        "FETCH 1 (BINARY.PEEK[4])", "FETCH 1 (FLAGS BINARY.PEEK[4])",
        "FETCH 1 (BINARY.SIZE[2])", "FETCH 1 (BINARY.PEEK[2]<0.4>)",
    )  # fmt: skip
    # The second session adds the two messages again: 1 multipart, 2 simple, 3 multipart...
    (many,) = await _answers(stack, "FETCH 2:3 (BINARY.PEEK[4])")
    refused = b"NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding.\r\n"
    assert part == b"* 1 FETCH (UID 1)\r\n" + refused
    assert with_flags == b"* 1 FETCH (FLAGS (\\Recent))\r\n" + refused
    # Message 2 has no part 4: empty, answered; then message 3 fails.
    assert many == b"* 2 FETCH (BINARY[4] {0}\r\n)\r\n* 3 FETCH (UID 3)\r\n" + refused
    # As in Dovecot, BINARY.SIZE converts the whole message, so part 4 fails it.
    assert size_elsewhere == b"* 1 FETCH (UID 1)\r\n" + refused
    assert other_part.startswith(b"* 1 FETCH (BINARY[2]<0> ~{4}\r\n\x00\x01\x02\x03)\r\n")


async def test_binary_without_peek_sets_seen(stack: ImapStack) -> None:
    fetched, flags = await _answers(stack, "FETCH 2 (BINARY[1]<2.3>)", "FETCH 2 (FLAGS)")
    assert fetched.startswith(b"* 2 FETCH (BINARY[1]<2> ~{3}\r\nllo")
    assert b"\\Seen" in fetched and flags.startswith(b"* 2 FETCH (FLAGS (\\Seen \\Recent))")


async def test_malformed_binary_items_are_refused_with_dovecots_words(stack: ImapStack) -> None:
    answers = await _answers(stack, "FETCH 1 (BINARY)", "FETCH 1 (BINARY.SIZE)",
                             "FETCH 1 (BINARY.FOO[1])")  # fmt: skip
    for answer in answers:
        assert answer == (
            b"BAD Error in IMAP command FETCH: Invalid BINARY[..] parameter: Missing '['.\r\n"
        )


async def test_append_takes_literal8_with_nuls_and_binary_returns_them(stack: ImapStack) -> None:
    raw = b"Subject: bin\r\n\r\nnul\x00byte \xff\xfe 8bit\r\n"

    def run() -> tuple[list[bytes], list[bytes]]:
        client = imaplib.IMAP4(stack.host, stack.port, timeout=10)
        client.login("alice", PASSWORD)
        tag = client._new_tag()  # type: ignore[attr-defined]
        client.send(tag + b" APPEND INBOX ~{%d+}\r\n" % len(raw) + raw + b"\r\n")
        appended = [client.readline()]
        client.select("INBOX")
        fetched = command_with_literals(
            client, "FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1] BODY.PEEK[])"
        )
        client.logout()
        return appended, fetched

    appended, fetched = await asyncio.to_thread(run)
    assert appended[0].split()[1] == b"OK"
    assert fetched[:4] == [
        b"* 1 FETCH (BINARY[1] ~{18}\r\n", b"nul\x00byte \xff\xfe 8bit\r\n",
        b" BINARY.SIZE[1] 18 BODY[] {34}\r\n",
        # A plain literal cannot carry the NUL: 0x80 stands in for it, as in Dovecot.
        b"Subject: bin\r\n\r\nnul\x80byte \xff\xfe 8bit\r\n",
    ]  # fmt: skip


async def test_binary_parts_of_a_literal8_append_are_stored_as_base64(stack: ImapStack) -> None:
    """As Dovecot: BODY[] shows 7-bit mail, BINARY[] gives the bytes back."""
    raw = (
        b"Subject: mp\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: application/x\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        b"\x00\x01\x02\r\n--B--\r\n"
    )

    def run() -> list[bytes]:
        client = imaplib.IMAP4(stack.host, stack.port, timeout=10)
        client.login("alice", PASSWORD)
        tag = client._new_tag()  # type: ignore[attr-defined]
        client.send(tag + b" APPEND INBOX ~{%d+}\r\n" % len(raw) + raw + b"\r\n")
        assert client.readline().split()[1] == b"OK"
        client.select("INBOX")
        fetched = command_with_literals(client, "FETCH 1 (BODY.PEEK[] BINARY.PEEK[1])")
        client.logout()
        return fetched

    fetched = await asyncio.to_thread(run)
    assert fetched[1] == raw.replace(b"binary", b"base64").replace(b"\x00\x01\x02", b"AAEC")
    assert fetched[3] == b"\x00\x01\x02"


async def test_big_messages_are_decoded_in_the_worker_pool_with_the_same_answers(
    stack: ImapStack,
) -> None:
    """Over 64 KiB a FETCH renders in a worker process: the NO and the bytes must survive it."""
    payload = bytes(range(256)) * 400
    raw = (
        b"Subject: big\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
        b"--XX\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(payload).replace(b"\n", b"\r\n")
        + b"--XX\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\nend\r\n--XX--\r\n"
    )

    def run() -> tuple[list[bytes], list[bytes]]:
        client = imaplib.IMAP4(stack.host, stack.port, timeout=30)
        client.login("alice", PASSWORD)
        client.append("INBOX", None, None, raw)
        client.select("INBOX")
        decoded = command_with_literals(client, "FETCH 1 (BINARY.PEEK[1])")
        refused = command_with_literals(client, "FETCH 1 (UID BINARY.PEEK[2])")
        client.logout()
        return decoded, refused

    assert len(raw) > 64 * 1024
    decoded, refused = await asyncio.to_thread(run)
    assert decoded[:2] == [b"* 1 FETCH (BINARY[1] ~{%d}\r\n" % len(payload), payload]
    assert refused[0] == b"* 1 FETCH (UID 1)\r\n"
    assert refused[1].endswith(b" NO [UNKNOWN-CTE] Unknown Content-Transfer-Encoding.\r\n")
