"""What a Lua push script is handed, made hostile: headers and bodies with bad charsets,
control characters, NULs and huge subjects (by LMTP and by IMAP APPEND), mailbox names
and keywords with odd characters (by IMAP CREATE, RENAME, STORE). The script (FUZZ_SCRIPT
in conftest, beside Dovecot's example events_http.lua) must run for each event and post what it
read; every text field it reads is UTF-8; nothing is logged as an error."""

from __future__ import annotations

import re

from hypothesis import event, example, given
from hypothesis import strategies as st
from imapclient import imap_utf7  # type: ignore[import-untyped]

from .conftest import (
    FuzzServer,
    Imap,
    Lmtp,
    Post,
    fuzz_settings,
    literal,
    transaction,
)

USER = "carol"
TEXT_FIELDS = ("subject", "from", "from_address", "from_display_name", "to", "to_address",
               "to_display_name", "snippet", "message_id", "mailbox", "mailbox_old",
               "keywords", "keywords_set", "keywords_clear", "keywords_old")


def pushed(server: FuzzServer, event: str, **fields: bytes) -> Post:
    """The fuzz script's post for `event` of USER whose fields include `fields`."""
    wanted = {"event": event.encode(), "user": USER.encode(), **fields}
    post = server.wait_for_post(
        lambda p: all(p.fields.get(name) == value for name, value in wanted.items())
    )
    for name in TEXT_FIELDS:
        value = post.fields.get(name, b"")
        value.decode("utf-8")  # raises on a field that is not UTF-8 text
    return post


def deliver_raw(server: FuzzServer, raw: bytes, recipient: str = USER) -> int:
    """An LMTP delivery of exactly these bytes; the UID it was saved under."""
    with Lmtp(server.lmtp_port) as lmtp:
        lmtp.greet()
        ((code, text),) = transaction(lmtp, [recipient], raw, smtputf8=not recipient.isascii())
    assert code == 250, text
    return int(text.rsplit(b"(uid ", 1)[1].rstrip(b")"))


# --- strategies ---------------------------------------------------------------------------

CHARSETS = [b"utf-8", b"iso-8859-1", b"x-unknown", b"", b"utf-16", b"utf-7", b"iso-2022-jp",
            b"koi8-r", b"cp1252", b"gb18030", b"big5", b"shift_jis", b"rot13", b"base64"]
CONTROL = st.binary(max_size=6).map(lambda b: bytes(c % 32 for c in b).replace(b"\n", b"\t"))


@st.composite
def hostile_text(draw: st.DrawFn) -> bytes:
    """Header text a script reads: encoded words, raw 8-bit, controls, NULs."""
    pieces = draw(st.lists(st.one_of(
        st.text(max_size=20).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
        CONTROL.map(lambda b: b.replace(b"\r", b"")),
        st.tuples(st.sampled_from(CHARSETS), st.sampled_from([b"B", b"Q", b"x"]),
                  st.binary(max_size=20).map(lambda b: b.replace(b"?", b"").replace(b"\r", b"")
                                             .replace(b"\n", b""))).map(
            lambda t: b"=?" + t[0] + b"?" + t[1] + b"?" + t[2] + b"?="),
        st.sampled_from([b"=?utf-8?b?AA==?=", b"=?utf-8?q?=00=FF?=", b"\x00", b"\xed\xa0\x80",
                         b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\r\n ", b"=?", b"?="]),
    ), max_size=6))
    return b"".join(pieces)


@st.composite
def hostile_message(draw: st.DrawFn) -> bytes:
    subject = draw(hostile_text())
    if draw(st.integers(0, 19)) == 0:
        subject *= 300  # long, and often thousands of encoded words
    sender = draw(hostile_text())
    recipient = draw(hostile_text())
    charset = draw(st.sampled_from(CHARSETS))
    encoding = draw(st.sampled_from([b"base64", b"quoted-printable", b"8bit", b"x-bogus"]))
    body = draw(st.binary(max_size=300))
    return (
        b"From: " + sender + b"\r\nTo: " + recipient + b"\r\nSubject: " + subject
        + b"\r\nMessage-ID: <" + draw(hostile_text()) + b">\r\nContent-Type: text/plain; charset="
        + charset + b"\r\nContent-Transfer-Encoding: " + encoding + b"\r\n\r\n" + body
    )


# --- tests --------------------------------------------------------------------------------


@fuzz_settings(40)
@given(raw=hostile_message())
@example(raw=b"Subject: \x00\x01\x1b[31m\x7f\r\nFrom: \x00 <\x00@x>\r\n\r\n\x00\x00\x00")
@example(raw=b"Subject: " + b"=?utf-8?q?=C3?=" * 20000 + b"\r\n\r\nbody")
@example(raw=b"Subject: " + b"\xff" * 30_000 + b"\r\n\r\n" + b"\xff" * 100_000)
@example(raw=b"Subject: =?utf-16?b?2D3eAA==?= =?utf-7?q?+2D3eAA-?=\r\n\r\nx")
def test_hostile_delivered_headers_reach_the_script_as_text(
    fuzz_server: FuzzServer, raw: bytes
) -> None:
    with fuzz_server.logs_nothing_bad():
        uid = deliver_raw(fuzz_server, raw)
        post = pushed(fuzz_server, "MessageNew", uid=b"%d" % uid, mailbox=b"INBOX")
        # At most each byte becomes U+FFFD (3 bytes): nothing is added or repeated.
        assert len(post.fields.get("subject", b"")) <= 3 * len(raw)


def test_a_subject_of_600_kib_is_escaped_by_the_seed_script(fuzz_server: FuzzServer) -> None:
    """Any sender can send this (LMTP takes header lines up to 1 MiB); Dovecot posts it."""
    with fuzz_server.logs_nothing_bad():
        uid = deliver_raw(fuzz_server, b"Subject: " + b"\xff" * 200_000 + b"\r\n\r\nx")
        fuzz_server.settle()
    with fuzz_server.logs_nothing_bad():
        pushed(fuzz_server, "MessageNew", uid=b"%d" % uid, mailbox=b"INBOX")
        fuzz_server.wait_for_post(
            lambda p: p.fields.get("subject", b"").startswith(b"\xef\xbf\xbd"),
            path="/hook", timeout=4,
        )


@fuzz_settings(25)
@given(
    raw=hostile_message(),
    keywords=st.lists(st.text("abcXYZ$_-.019&", min_size=1, max_size=20), max_size=4),
)
def test_hostile_appended_messages_and_their_keywords_reach_the_script(
    fuzz_server: FuzzServer, raw: bytes, keywords: list[str]
) -> None:
    flags = " ".join(["\\Seen", *keywords]).encode()
    with fuzz_server.logs_nothing_bad(), Imap(fuzz_server.imap_port) as imap:
        imap.login(USER)
        reply = imap.run([(b"a", b"APPEND INBOX (" + flags + b") " + literal(raw))])[b"a"]
        assert reply.startswith(b"a OK"), reply
        uid = reply.split(b"APPENDUID ", 1)[1].split(b"]")[0].split(b" ")[1]
        post = pushed(fuzz_server, "MessageAppend", uid=uid, mailbox=b"INBOX")
        assert set(post.fields["keywords"].split()) == {k.encode() for k in keywords}


#: Names as a user would type them; sent in modified UTF-7 (imapclient's encoder).
MAILBOX_TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="/\r\n*%"),
    min_size=1, max_size=25,
).filter(lambda s: s.strip() == s and s.upper() != "INBOX")


@fuzz_settings(30)
@given(name=MAILBOX_TEXT, renamed=MAILBOX_TEXT)
@example(name="\x00\x01\x7f", renamed="\u200b\ufeff\U0001f600")
@example(name="a&b", renamed="&&&")
def test_odd_mailbox_names_reach_the_script_as_the_user_wrote_them(
    fuzz_server: FuzzServer, name: str, renamed: str
) -> None:
    encoded = literal(imap_utf7.encode("Odd/" + name))
    encoded_new = literal(imap_utf7.encode("Odd/" + renamed))
    with fuzz_server.logs_nothing_bad(), Imap(fuzz_server.imap_port) as imap:
        imap.login(USER)
        replies = imap.run([(b"c", b"CREATE " + encoded)])
        event(f"CREATE {replies[b'c'].split(b' ')[1].decode()}")
        if not replies[b"c"].startswith(b"c OK"):
            return  # refused (as Dovecot refuses control characters): nothing to push
        pushed(fuzz_server, "MailboxCreate", mailbox=("Odd/" + name).encode())
        if re.fullmatch(r"[\w.&'=~-]+", name):
            # carol+Odd/<name> files into it, and the events example script opens it for its status
            # (before the RENAME: a push runs after the commit, and the mailbox must exist).
            seen = len(fuzz_server.posts("/hook"))
            uid = deliver_raw(fuzz_server, b"Subject: filed\r\n\r\nx", f"{USER}+Odd/{name}")
            mailbox = ("Odd/" + name).encode()
            pushed(fuzz_server, "MessageNew", uid=b"%d" % uid, mailbox=mailbox)
            fuzz_server.wait_for_post(
                lambda p: p.fields.get("mailbox") == mailbox and "messages" in p.fields,
                path="/hook", after=seen,
            )
        replies = imap.run([(b"r", b"RENAME " + encoded + b" " + encoded_new)])
        if replies[b"r"].startswith(b"r OK"):
            pushed(fuzz_server, "MailboxRename", mailbox=("Odd/" + renamed).encode(),
                   mailbox_old=("Odd/" + name).encode())
            encoded = encoded_new
        assert imap.run([(b"d", b"DELETE " + encoded)])[b"d"].startswith(b"d OK")


@fuzz_settings(25)
@given(
    mailbox=st.sampled_from([b"&", b"&AAA", b"&Jjo", b"a&-b&", b"&2D3cAA-", b"\xff\xfe",
                             b"\xc3\xa9", b"&AGE-", b"&ZeVnLIqe"]),
    suffix=st.binary(max_size=6).map(lambda b: b.replace(b"/", b"")),
)
def test_names_that_are_not_modified_utf7_are_refused_or_pushed(
    fuzz_server: FuzzServer, mailbox: bytes, suffix: bytes
) -> None:
    name = b"Bad/" + mailbox + suffix
    with fuzz_server.logs_nothing_bad(), Imap(fuzz_server.imap_port) as imap:
        imap.login(USER)
        before = len(fuzz_server.posts())
        reply = imap.run([(b"c", b"CREATE " + literal(name))])[b"c"]
        event(f"CREATE {reply.split(b' ')[1].decode()}")
        if reply.startswith(b"c OK"):
            fuzz_server.wait_for_post(
                lambda p: p.fields["event"] == b"MailboxCreate", after=before
            )
            assert imap.run([(b"d", b"DELETE " + literal(name))])[b"d"].startswith(b"d OK")


#: Keywords are atoms: printable ASCII but ( ) { SP % * " \\ ] (RFC 3501); or anything.
KEYWORD = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e,
                          exclude_characters='(){%*"\\]'), min_size=1, max_size=30)
    .filter(lambda k: not k.startswith("\\")).map(str.encode),
    st.binary(min_size=1, max_size=30),
)


@fuzz_settings(30)
@given(keywords=st.lists(KEYWORD, min_size=1, max_size=5))
@example(keywords=[b"$" * 2000])
@example(keywords=[b"\xff", b"\x00", b"\\Bogus", b"a]b", b"\x7f"])
def test_odd_keywords_reach_the_script_or_are_refused(
    fuzz_server: FuzzServer, keywords: list[bytes]
) -> None:
    with fuzz_server.logs_nothing_bad(), Imap(fuzz_server.imap_port) as imap:
        imap.login(USER)
        uid = deliver_raw(fuzz_server, b"Subject: to flag\r\n\r\nx")
        imap.run([(b"s", b"SELECT INBOX")])
        keywords = [k.replace(b"\r", b"").replace(b"\n", b"") or b"x" for k in keywords]
        keywords_line = b"UID STORE %d +FLAGS (" % uid + b" ".join(keywords) + b")"
        reply = imap.run([(b"k", keywords_line)])[b"k"]
        event(f"STORE {reply.split(b' ')[1].decode()}")
        if reply.startswith(b"k OK"):
            post = pushed(fuzz_server, "FlagsSet", uid=b"%d" % uid)
            got = {k.lower() for k in post.fields["keywords_set"].split()}
            sent = b" ".join(keywords).lower().split()
            assert got == {k for k in sent if not k.startswith(b"\\")}
            clear = keywords_line.replace(b"+FLAGS", b"-FLAGS")
            assert imap.run([(b"u", clear)])[b"u"].startswith(b"u OK")
            pushed(fuzz_server, "FlagsClear", uid=b"%d" % uid)


def test_a_thousand_keywords_at_once_reach_the_script(fuzz_server: FuzzServer) -> None:
    keywords = [b"kw%d" % i for i in range(1000)]
    with fuzz_server.logs_nothing_bad(), Imap(fuzz_server.imap_port) as imap:
        imap.login(USER)
        uid = deliver_raw(fuzz_server, b"Subject: many keywords\r\n\r\nx")
        imap.run([(b"s", b"SELECT INBOX")])
        reply = imap.run([(b"k", b"UID STORE %d +FLAGS (" % uid + b" ".join(keywords) + b")")])
        if reply[b"k"].startswith(b"k OK"):
            post = pushed(fuzz_server, "FlagsSet", uid=b"%d" % uid)
            assert len(post.fields["keywords_set"].split()) == 1000
