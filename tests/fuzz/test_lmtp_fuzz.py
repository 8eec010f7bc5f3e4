"""LMTP under hostile input: random command lines, envelopes and malformed MIME over a real
socket. Every command gets exactly one well-formed reply, DATA gets exactly one reply per
accepted recipient (RFC 2033 §4.2), and the connection still works afterwards."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from .conftest import (
    FuzzServer,
    Lmtp,
    WireClosedError,
    assert_still_in_sync,
    data_block,
    deliver,
    fuzz_settings,
    transaction,
)

# --- strategies ---------------------------------------------------------------------------

VERBS = [
    b"LHLO", b"HELO", b"EHLO", b"MAIL", b"RCPT", b"RSET", b"NOOP", b"VRFY", b"EXPN", b"HELP",
    b"STARTTLS", b"AUTH", b"BDAT", b"mail from:", b"rcpt to:", b"MAIL FROM:", b"RCPT TO:",
]
NOT_LF = st.binary(max_size=200).map(lambda b: b.replace(b"\n", b""))
ADDRESS_TEXT = st.text(
    st.characters(codec="utf-8", exclude_characters="\n"), max_size=40
).map(lambda s: s.encode("utf-8", "surrogatepass"))


@st.composite
def command_line(draw: st.DrawFn) -> bytes:
    """One command line (no LF inside): a known verb with junk, or junk alone."""
    if draw(st.booleans()):
        verb = draw(st.sampled_from(VERBS))
        separator = draw(st.sampled_from([b" ", b"", b"  ", b"\t", b"\x00"]))
        line = verb + separator + draw(st.one_of(NOT_LF, ADDRESS_TEXT))
    else:
        line = draw(NOT_LF)
    # DATA and QUIT change what the following lines mean; they get their own tests.
    if line.strip().upper().startswith((b"DATA", b"QUIT", b"BDAT")):
        line = b"X" + line
    return line


PARAMETER = st.one_of(
    st.sampled_from([
        b"SIZE=100", b"SIZE=0", b"SIZE=99999999999999999999", b"SIZE=-1", b"SIZE=", b"SIZE",
        b"BODY=8BITMIME", b"BODY=7BIT", b"BODY=BINARYMIME", b"BODY=", b"SMTPUTF8",
        b"SMTPUTF8=yes", b"NOTIFY=SUCCESS,FAILURE", b"ORCPT=rfc822;a@b", b"RET=HDRS",
        b"ENVID=x", b"AUTH=<>", b"X-UNKNOWN=\xff", b"=", b"==", b"\x00",
    ]),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"").replace(b" ", b"")),
)
LOCAL = st.sampled_from(["alice", "bob", "carol", "nobody", "ALICE", ""])
DETAIL = st.one_of(
    st.none(),
    st.sampled_from([b"work", b"a/b", b"&Jjo-", b"&", b"Sent", b"INBOX", b"..", b"%*", b"\xff"]),
    st.text(max_size=12).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=8),
).map(lambda b: b if b is None else b.replace(b"\n", b"").replace(b">", b""))


@st.composite
def mailbox_address(draw: st.DrawFn) -> bytes:
    local = draw(LOCAL).encode()
    detail = draw(DETAIL)
    if detail is not None:
        local += b"+" + detail
    address = local + draw(st.sampled_from([b"@example.org", b"", b"@", b"@[127.0.0.1]", b"@x@y"]))
    form = draw(st.sampled_from([b"<%s>", b"%s", b"<<%s>>", b"<@route:%s>", b'<"%s">', b"<%s >"]))
    return form % address


# --- tests --------------------------------------------------------------------------------


@fuzz_settings(60)
@given(lines=st.lists(command_line(), min_size=1, max_size=8))
@example(lines=[b"", b" ", b"\r", b"\x00", b"\xff\xfe", b"MAIL FROM:<\x00@x>"])
@example(lines=[b"RCPT TO:<alice@example.org>", b"MAIL FROM:<>", b"MAIL FROM:<>"])
@example(lines=[b"MAIL FROM:<a@b> SMTPUTF8 BODY=8BITMIME", b"RCPT TO:<alice@\xc3\xa9.org>"])
@example(lines=[b"MAIL FROM:<\xff@example.org>", b"RCPT TO:<alice+\xff@example.org>"])
@example(lines=[b"MAIL FROM:<a@example.org>", b"RCPT TO:<\xff@example.org>"])
@example(lines=[b"VRFY \xff", b"EXPN", b"HELP \x00", b"AUTH PLAIN", b"STARTTLS"])
def test_every_command_line_gets_one_wellformed_reply(
    fuzz_server: FuzzServer, lines: list[bytes]
) -> None:
    with fuzz_server.logs_nothing_bad(), Lmtp(fuzz_server.lmtp_port) as lmtp:
        lmtp.greet()
        lmtp.send(b"".join(line + b"\r\n" for line in lines))
        for _ in lines:
            code, text = lmtp.reply()
            if text.endswith(b"goodbye."):  # aiosmtpd's limit on unknown commands
                assert lmtp.closed()
                return
        assert_still_in_sync(lmtp)


@fuzz_settings(40)
@given(
    sender=st.one_of(mailbox_address(), st.just(b"<>")),
    mail_parameters=st.lists(PARAMETER, max_size=3),
    recipients=st.lists(
        st.tuples(mailbox_address(), st.lists(PARAMETER, max_size=2)), max_size=8
    ),
)
@example(sender=b"<>", mail_parameters=[], recipients=[(b"<alice+\xff@example.org>", [])])
@example(
    sender=b"<>", mail_parameters=[],
    recipients=[(b"<alice>", []), (b"<bob+\xff@example.org>", []), (b"<carol>", [])],
)
def test_data_gets_one_reply_per_accepted_recipient(
    fuzz_server: FuzzServer,
    sender: bytes,
    mail_parameters: list[bytes],
    recipients: list[tuple[bytes, list[bytes]]],
) -> None:
    with fuzz_server.logs_nothing_bad(), Lmtp(fuzz_server.lmtp_port) as lmtp:
        lmtp.greet()
        commands = [b" ".join([b"MAIL FROM:" + sender, *mail_parameters])]
        commands += [b" ".join([b"RCPT TO:" + rcpt, *params]) for rcpt, params in recipients]
        lmtp.send(b"".join(c + b"\r\n" for c in commands) + b"DATA\r\n")
        codes = [lmtp.reply()[0] for _ in commands]
        accepted = codes[1:].count(250) if codes[0] == 250 else 0
        code, _ = lmtp.reply()
        if accepted == 0:
            assert code == 503
        else:
            assert code == 354
            lmtp.send(data_block(b"Subject: envelope fuzz\r\n\r\nbody\r\n"))
            replies = [lmtp.reply() for _ in range(accepted)]
            assert all(code == 250 for code, _ in replies), replies
        assert_still_in_sync(lmtp)


# Malformed MIME: the parts are hostile in every way a parser can trip on.

CHARSET = st.sampled_from(
    ["utf-8", "UTF-8", "iso-8859-1", "x-unknown", "", "utf-7", "utf-16", "utf-32", "cp1252",
     "koi8-r", "gb2312", "iso-2022-jp", "shift_jis", "big5", "utf8\x00", "a" * 300, "idna",
     "rot13", "base64", "hex", "zlib", "uu", "mbcs", "punycode", "undefined"]
)
HEADER_BYTES = st.binary(max_size=80).map(lambda b: b.replace(b"\r\n", b"  "))


@st.composite
def encoded_word(draw: st.DrawFn) -> bytes:
    charset = draw(CHARSET).encode("latin-1", "replace")
    encoding = draw(st.sampled_from([b"B", b"Q", b"b", b"q", b"X", b""]))
    payload = draw(st.one_of(
        st.binary(max_size=30).map(lambda b: b.replace(b"?=", b"")),
        st.sampled_from([b"", b"=", b"===", b"////", b"=C3", b"=ZZ", b"_", b"4pyT", b"4py"]),
    ))
    return b"=?" + charset + b"?" + encoding + b"?" + payload + b"?="


HEADER_VALUE = st.lists(
    st.one_of(HEADER_BYTES, encoded_word(), st.sampled_from([b"\r\n ", b"\r\n\t", b" "])),
    max_size=6,
).map(b"".join)
HEADER_NAME = st.one_of(
    st.sampled_from([
        b"Subject", b"From", b"To", b"Cc", b"Date", b"Message-ID", b"Content-Type",
        b"Content-Transfer-Encoding", b"Content-Disposition", b"MIME-Version", b"Reply-To",
        b"Sender", b"In-Reply-To", b"References",
    ]),
    st.binary(min_size=0, max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)
CONTENT_TYPE = st.sampled_from([
    b"text/plain", b"text/html", b"text/calendar", b"message/rfc822", b"message/global",
    b"multipart/mixed", b"multipart/alternative", b"application/octet-stream", b"text",
    b"/", b"", b"multipart/", b"image/png",
])
TRANSFER_ENCODING = st.sampled_from(
    [b"base64", b"quoted-printable", b"7bit", b"8bit", b"binary", b"x-uuencode", b"", b"BASE64"]
)
BODY_TEXT = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([
        b"====", b"AAAA=AAA", b"!!!notbase64!!!", b"=\r\n", b"=Z", b"=4", b"=C3=28",
        b"\xc3\x28\xa0\xa1", b"\xff\xfe\x00\x00", b"\x00" * 50, b"<html><body><p",
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:bogus\r\n",
    ]),
)


@st.composite
def mime_part(draw: st.DrawFn, depth: int = 0) -> bytes:
    headers = [
        b"Content-Type: " + draw(CONTENT_TYPE) + b"; charset=" + draw(CHARSET).encode("latin-1"),
        b"Content-Transfer-Encoding: " + draw(TRANSFER_ENCODING),
    ]
    headers += [name + b": " + draw(HEADER_VALUE) for name, in draw(
        st.lists(st.tuples(HEADER_NAME), max_size=3)
    )]
    if depth < 4 and draw(st.integers(0, 3)) == 0:
        declared = draw(st.sampled_from([b"b", b"", b'"b"', b'"', b"b c", b"\xff", b"-" * 80]))
        used = draw(st.sampled_from([b"b", b"x", b"", b"b "]))
        headers[0] = b"Content-Type: multipart/mixed; boundary=" + declared
        children = draw(st.lists(mime_part(depth + 1), max_size=3))
        body = b"preamble\r\n" + b"".join(b"--" + used + b"\r\n" + c + b"\r\n" for c in children)
        if draw(st.booleans()):
            body += b"--" + used + b"--\r\n" + draw(BODY_TEXT)
    else:
        body = draw(BODY_TEXT)
    draw(st.randoms()).shuffle(headers)
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


@st.composite
def hostile_message(draw: st.DrawFn) -> bytes:
    headers = [name + b": " + draw(HEADER_VALUE) for name, in draw(
        st.lists(st.tuples(HEADER_NAME), max_size=6)
    )]
    top = draw(mime_part())
    return b"\r\n".join(headers) + (b"\r\n" if headers else b"") + top


@fuzz_settings(60)
@given(raw=hostile_message(), recipients=st.lists(
    st.sampled_from(["alice", "bob+work", "alice+Sent"]), min_size=1, max_size=3
))
def test_malformed_mime_is_saved_once_per_recipient(
    fuzz_server: FuzzServer, raw: bytes, recipients: list[str]
) -> None:
    with fuzz_server.logs_nothing_bad(), Lmtp(fuzz_server.lmtp_port) as lmtp:
        lmtp.greet()
        replies = transaction(lmtp, recipients, raw)
        assert [code for code, _ in replies] == [250] * len(recipients), replies
        assert_still_in_sync(lmtp)


def test_an_address_without_brackets_and_with_an_empty_domain_is_refused_as_syntax(
    fuzz_server: FuzzServer,
) -> None:
    """Found by this fuzzer: the stdlib address parser raised IndexError on `alice@`."""
    with fuzz_server.logs_nothing_bad(), Lmtp(fuzz_server.lmtp_port) as lmtp:
        lmtp.greet()
        lmtp.send(b"MAIL FROM:alice@\r\nMAIL FROM:<>\r\nRCPT TO:bob@\r\nVRFY bob@\r\n")
        codes = [lmtp.reply()[0] for _ in range(4)]
        assert codes[1] == 250
        assert [codes[0] // 100, codes[2] // 100] == [5, 5], codes
        assert codes[3] in (252, 502) or codes[3] // 100 == 5, codes
        assert_still_in_sync(lmtp)


def nested_multiparts(levels: int) -> bytes:
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(levels)
    )
    tail = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(levels)))
    return b"Subject: deep\r\n" + head + b"Content-Type: text/plain\r\n\r\nleaf" + tail


def test_a_thousand_nested_multiparts_are_saved(fuzz_server: FuzzServer) -> None:
    with Lmtp(fuzz_server.lmtp_port) as lmtp:
        lmtp.greet()
        replies = transaction(lmtp, ["alice", "bob"], nested_multiparts(1000))
        assert [code for code, _ in replies] == [250, 250], replies


def test_a_header_line_of_900_kib_is_saved(fuzz_server: FuzzServer) -> None:
    raw = b"Subject: " + b"x" * (900 * 1024) + b"\r\nX-Long: =?utf-8?q?" + b"=C3" * 1000
    with Lmtp(fuzz_server.lmtp_port) as lmtp:
        lmtp.greet()
        replies = transaction(lmtp, ["alice"], raw + b"\r\n\r\nbody")
        assert [code for code, _ in replies] == [250], replies


def test_a_line_too_long_in_data_refuses_each_recipient(fuzz_server: FuzzServer) -> None:
    """A refused DATA is still answered once per recipient, or the client waits forever."""
    raw = b"Subject: long\r\n\r\n" + b"y" * (2 * 1024 * 1024) + b"\r\n"
    with Lmtp(fuzz_server.lmtp_port, timeout=5) as lmtp:
        lmtp.greet()
        replies = transaction(lmtp, ["alice", "bob"], raw)
        assert [code for code, _ in replies] == [500, 500], replies
        assert_still_in_sync(lmtp)


def test_a_command_line_too_long_is_refused_and_the_session_goes_on(
    fuzz_server: FuzzServer,
) -> None:
    with Lmtp(fuzz_server.lmtp_port) as lmtp:
        lmtp.greet()
        lmtp.send(b"MAIL FROM:<" + b"a" * (2 * 1024 * 1024) + b"@x>\r\n")
        assert lmtp.reply()[0] == 500
        assert_still_in_sync(lmtp)


def test_a_hundred_recipients_get_a_hundred_replies(fuzz_server: FuzzServer) -> None:
    recipients = [("alice", "bob", "carol")[i % 3] + f"+r{i}" for i in range(100)]
    with Lmtp(fuzz_server.lmtp_port) as lmtp:
        lmtp.greet()
        replies = transaction(lmtp, recipients, b"Subject: many\r\n\r\nbody\r\n")
        assert [code for code, _ in replies] == [250] * 100


def test_a_whole_session_pipelined_in_one_write(fuzz_server: FuzzServer) -> None:
    with Lmtp(fuzz_server.lmtp_port) as lmtp:
        assert lmtp.reply()[0] == 220
        lmtp.send(
            b"LHLO fuzz\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nRCPT TO:<nobody>\r\n"
            b"RCPT TO:<bob@example.org>\r\nDATA\r\n"
        )
        codes = [lmtp.reply()[0] for _ in range(6)]
        assert codes == [250, 250, 250, 550, 250, 354]
        lmtp.send(data_block(b"Subject: pipelined\r\n\r\n.leading dot\r\n") + b"QUIT\r\n")
        assert [lmtp.reply()[0] for _ in range(3)] == [250, 250, 221]
        assert lmtp.closed()


def test_a_client_vanishing_mid_data_leaves_the_server_serving(fuzz_server: FuzzServer) -> None:
    with Lmtp(fuzz_server.lmtp_port) as lmtp:
        lmtp.greet()
        lmtp.send(b"MAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\n")
        assert [lmtp.reply()[0] for _ in range(3)] == [250, 250, 354]
        lmtp.send(b"Subject: cut\r\n\r\nhalf a mess")
    deliver(fuzz_server, ["alice"], b"Subject: after the cut\r\n\r\nbody\r\n")


def test_closing_without_quit_after_each_command_is_harmless(fuzz_server: FuzzServer) -> None:
    for command in [b"LHLO x\r\n", b"MAIL FROM:<>\r\n", b"RCPT TO:<alice>\r\n", b"DATA\r\n"]:
        with Lmtp(fuzz_server.lmtp_port) as lmtp:
            assert lmtp.reply()[0] == 220
            lmtp.send(command)
            try:
                lmtp.reply()
            except WireClosedError:
                pass
