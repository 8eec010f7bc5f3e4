"""IMAP under hostile input, before and after LOGIN: random lines and grammar-shaped
commands over a real socket. Every tagged command gets exactly one tagged reply, in
order, unless the server says BYE and closes; every response line is well-formed; and
the server keeps serving (the module's health check logs in again after each test)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from .conftest import FuzzServer, Imap, WireClosedError, deliver, fuzz_settings, literal

USER = "bob"


@contextmanager
def session(server: FuzzServer, login: bool = True) -> Iterator[Imap]:
    with server.logs_nothing_bad(), Imap(server.imap_port) as imap:
        if login:
            imap.login(USER)
        else:
            imap.greet()
        yield imap


# --- strategies: the grammar, with hostile values in every slot -----------------------------

ATOM = st.text("abcXYZ019$\\-_.&:", min_size=1, max_size=12).map(str.encode)
ODD_BYTES = st.binary(max_size=40)


@st.composite
def quoted(draw: st.DrawFn) -> bytes:
    raw = draw(st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")))
    if draw(st.booleans()):
        raw = raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + raw + b'"'


ASTRING = st.one_of(ATOM, quoted(), ODD_BYTES.map(literal), st.just(b"NIL"), st.just(b'""'))
MAILBOX_NAMES = [
    b"INBOX", b"inbox", b"Fuzz", b"Fuzz/a", b"Fuzz/a/b", b"&Jjo-", b"&", b"&-", b"&AAA",
    b"&AAA-", b"a&b", b"&U,BTFw-", b"&ZeVnLIqe-", b"&2D3cAA-", b"&AGEAYgBj-", b"/", b"//",
    b"Fuzz/", b"/Fuzz", b"..", b"Fuzz/../INBOX", b"%", b"*", b"INBOX/sub", b"Sent",
    b"\xc3\xa9t\xc3\xa9", b"\xff\xfe", b"a" * 1000, b"Fuzz/" * 60 + b"deep", b"\x00", b"\x7f",
    b"Fuzz\tTab", b" lead", b"trail ",
]


@st.composite
def mailbox(draw: st.DrawFn) -> bytes:
    name = draw(st.one_of(st.sampled_from(MAILBOX_NAMES), ODD_BYTES))
    form = draw(st.sampled_from(["atom", "quoted", "literal"]))
    if form == "atom" and re.fullmatch(rb'[^\x00-\x20\x7f-\xff(){"\\]+', name):
        return name
    if form == "quoted" and not re.search(rb'[\r\n"\\]', name):
        return b'"' + name + b'"'
    return literal(name)


NUMBER = st.one_of(
    st.integers(0, 12).map(lambda n: b"%d" % n),
    st.sampled_from([b"*", b"4294967295", b"4294967296", b"99999999999999999999", b"-1",
                     b"0", b"01", b"$", b""]),
)
RANGE = st.one_of(NUMBER, st.tuples(NUMBER, NUMBER).map(lambda p: p[0] + b":" + p[1]))
VALID_NUMBER = st.one_of(st.integers(1, 12).map(lambda n: b"%d" % n), st.just(b"*"))
VALID_SET = st.lists(
    st.one_of(VALID_NUMBER, st.tuples(VALID_NUMBER, VALID_NUMBER).map(b":".join)),
    min_size=1, max_size=4,
).map(b",".join)
SEQUENCE_SET = st.one_of(
    VALID_SET,
    VALID_SET,
    st.lists(RANGE, min_size=1, max_size=6).map(b",".join),
    st.integers(1, 3000).map(lambda n: b",".join(b"%d:%d" % (i, i + 1) for i in range(n))),
    st.sampled_from([b"1:*", b"*:1", b"*", b"1,,2", b",", b"1:", b":1", b"1:4294967295"]),
)
DATE = st.one_of(
    st.sampled_from([b"1-Jan-2020", b"31-Dec-9999", b"0-Jan-2020", b"32-Foo-99999",
                     b'"1-Jan-2020"', b"29-Feb-2023", b"1-jan-1", b"x"]),
    ATOM,
)
FLAG = st.one_of(
    st.sampled_from([b"\\Seen", b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Draft",
                     b"\\Recent", b"\\*", b"\\Bogus", b"$Junk", b"$Forwarded", b"\\", b"$"]),
    ATOM,
)
FLAG_LIST = st.lists(FLAG, max_size=4).map(lambda fs: b"(" + b" ".join(fs) + b")")

SIMPLE_SEARCH_KEYS = [
    b"ALL", b"ANSWERED", b"DELETED", b"DRAFT", b"FLAGGED", b"NEW", b"OLD", b"RECENT",
    b"SEEN", b"UNANSWERED", b"UNDELETED", b"UNDRAFT", b"UNFLAGGED", b"UNSEEN", b"BOGUS",
]


def search_key() -> st.SearchStrategy[bytes]:
    leaf = st.one_of(
        st.sampled_from(SIMPLE_SEARCH_KEYS),
        st.tuples(st.sampled_from([b"BCC", b"BODY", b"CC", b"FROM", b"SUBJECT", b"TEXT", b"TO",
                                   b"KEYWORD", b"UNKEYWORD"]), ASTRING).map(b" ".join),
        st.tuples(st.sampled_from([b"BEFORE", b"ON", b"SINCE", b"SENTBEFORE", b"SENTON",
                                   b"SENTSINCE"]), DATE).map(b" ".join),
        st.tuples(st.sampled_from([b"LARGER", b"SMALLER"]), NUMBER).map(b" ".join),
        st.tuples(st.just(b"HEADER"), ASTRING, ASTRING).map(b" ".join),
        st.tuples(st.just(b"UID"), SEQUENCE_SET).map(b" ".join),
        SEQUENCE_SET,
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            inner.map(lambda k: b"NOT " + k),
            st.tuples(inner, inner).map(lambda p: b"OR " + p[0] + b" " + p[1]),
            st.lists(inner, min_size=0, max_size=3).map(lambda ks: b"(" + b" ".join(ks) + b")"),
        ),
        max_leaves=8,
    )


SECTION_PART = st.lists(st.sampled_from([b"1", b"2", b"0", b"99", b"4294967296"]), max_size=4)
SECTION = st.one_of(
    st.just(b""),
    st.sampled_from([b"1", b"2", b"1.1", b"3.1.2", b"HEADER", b"TEXT", b"1.MIME", b"2.HEADER",
                     b"HEADER.FIELDS (Subject From)", b"HEADER.FIELDS.NOT (To)"]),
    st.tuples(SECTION_PART, st.sampled_from([b"", b"HEADER", b"TEXT", b"MIME", b"HEADER.FIELDS",
                                             b"HEADER.FIELDS.NOT", b"BOGUS"]),
              st.lists(st.sampled_from([b"Subject", b"FROM", b'"To"', b"X\xff", b""]),
                       max_size=3)).map(
        lambda t: b".".join([*t[0], t[1]] if t[1] else t[0])
        + (b" (" + b" ".join(t[2]) + b")" if t[1].startswith(b"HEADER.FIELDS") else b"")
    ),
)
PARTIAL = st.one_of(
    st.just(b""),
    st.tuples(NUMBER, NUMBER).map(lambda p: b"<" + p[0] + b"." + p[1] + b">"),
    st.sampled_from([b"<0>", b"<>", b"<.>", b"<-1.5>", b"<4294967296.1>", b"<1.0>"]),
)
FETCH_ITEM = st.one_of(
    st.sampled_from([b"FLAGS", b"UID", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE", b"BODY",
                     b"BODYSTRUCTURE", b"RFC822", b"RFC822.HEADER", b"RFC822.TEXT", b"ALL",
                     b"FAST", b"FULL", b"MODSEQ", b"X-BOGUS", b"BINARY[1]", b"BINARY.SIZE[1]"]),
    st.tuples(st.sampled_from([b"BODY", b"BODY.PEEK", b"BINARY.PEEK"]), SECTION, PARTIAL).map(
        lambda t: t[0] + b"[" + t[1] + b"]" + t[2]
    ),
)
FETCH_ITEMS = st.one_of(
    FETCH_ITEM, st.lists(FETCH_ITEM, max_size=4).map(lambda xs: b"(" + b" ".join(xs) + b")")
)
STATUS_ITEMS = st.lists(
    st.sampled_from([b"MESSAGES", b"RECENT", b"UIDNEXT", b"UIDVALIDITY", b"UNSEEN", b"SIZE",
                     b"BOGUS", b"HIGHESTMODSEQ"]), max_size=5,
).map(lambda xs: b"(" + b" ".join(xs) + b")")
LIST_PATTERN = st.one_of(
    mailbox(),
    st.text("*%ab/&-", max_size=30).map(lambda s: b'"' + s.encode() + b'"'),
)
MESSAGE = st.one_of(
    st.just(b"Subject: fuzz\r\n\r\nbody\r\n"),
    st.binary(max_size=200),
    st.just(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b"),
)


def _uid(draw: st.DrawFn) -> bytes:
    return b"UID " if draw(st.booleans()) else b""


@st.composite
def message_command(draw: st.DrawFn, moves: bool = True) -> bytes:
    """FETCH, SEARCH, STORE, COPY, MOVE: what a selected mailbox's messages are read through."""
    kind = draw(st.sampled_from(["fetch", "search", "store", "copy"] + ["move"] * moves))
    if kind == "fetch":
        return _uid(draw) + b"FETCH " + draw(SEQUENCE_SET) + b" " + draw(FETCH_ITEMS)
    if kind == "search":
        charset = draw(st.sampled_from([b"", b"CHARSET UTF-8 ", b"CHARSET x-bogus "]))
        return _uid(draw) + b"SEARCH " + charset + draw(search_key())
    if kind == "store":
        how = draw(st.sampled_from([b"FLAGS", b"+FLAGS", b"-FLAGS", b"+FLAGS.SILENT", b"FLAGS.X"]))
        return _uid(draw) + b"STORE " + draw(SEQUENCE_SET) + b" " + how + b" " + draw(
            st.one_of(FLAG_LIST, FLAG)
        )
    verb = b"COPY " if kind == "copy" else b"MOVE "
    target = draw(mailbox())
    if target.rpartition(b"\n")[2].strip(b'"').upper() in (b"INBOX", b"FUZZ"):
        # Never into a mailbox the tests select: copying 1:* into itself doubles it.
        target = b"Copies"
    return _uid(draw) + verb + draw(SEQUENCE_SET) + b" " + target


@st.composite
def mailbox_command(draw: st.DrawFn) -> bytes:
    """The commands that take mailbox names, each with hostile names."""
    kind = draw(st.sampled_from(
        ["select", "examine", "create", "delete", "rename", "subscribe", "unsubscribe", "list",
         "lsub", "status", "append", "getmetadata", "setmetadata"]
    ))
    if kind == "rename":
        return b"RENAME " + draw(mailbox()) + b" " + draw(mailbox())
    if kind in ("list", "lsub"):
        return kind.upper().encode() + b" " + draw(mailbox()) + b" " + draw(LIST_PATTERN)
    if kind == "status":
        return b"STATUS " + draw(mailbox()) + b" " + draw(STATUS_ITEMS)
    if kind == "append":
        flags = b" " + draw(FLAG_LIST) if draw(st.booleans()) else b""
        date = b' "01-Jan-2020 00:00:00 +0000"' if draw(st.booleans()) else b""
        return b"APPEND " + draw(mailbox()) + flags + date + b" " + literal(draw(MESSAGE))
    if kind == "getmetadata":
        return b"GETMETADATA " + draw(mailbox()) + b" " + draw(ASTRING)
    if kind == "setmetadata":
        entry = draw(ASTRING) + b" " + draw(ASTRING)
        return b"SETMETADATA " + draw(mailbox()) + b" (" + entry + b")"
    return kind.upper().encode() + b" " + draw(mailbox())


@st.composite
def other_command(draw: st.DrawFn) -> bytes:
    return draw(st.one_of(
        st.sampled_from([b"CAPABILITY", b"NOOP", b"NAMESPACE", b"CHECK", b"EXPUNGE", b"UNSELECT",
                         b"CLOSE", b"FROB", b"UID BOGUS", b"UID", b"LOGIN", b"STARTTLS",
                         b"AUTHENTICATE", b"SELECT", b"FETCH", b"ID NIL", b"ID ()", b"ID ((",
                         b'ID ("a" "b")', b'ID ("a")']),
        ATOM.map(lambda a: b"ENABLE " + a),
        SEQUENCE_SET.map(lambda s: b"UID EXPUNGE " + s),
        st.tuples(ATOM, ODD_BYTES).map(lambda t: t[0] + b" " + t[1].replace(b"\r", b"")
                                       .replace(b"\n", b"")),
    ))


@st.composite
def command(draw: st.DrawFn, kinds: tuple[str, ...] = ("message", "mailbox", "other")) -> bytes:
    """One command line (literals inline), mostly valid in shape, hostile in its values."""
    kind = draw(st.sampled_from(kinds))
    strategy = {"message": message_command(), "mailbox": mailbox_command(),
                "other": other_command()}[kind]
    line: bytes = draw(strategy)
    if draw(st.integers(0, 9)) == 0:
        line = line.lower()
    if draw(st.integers(0, 9)) == 0:  # a stray extra argument
        line += b" " + draw(ASTRING)
    return line


#: The tag of the NOOP that follows junk lines (no junk line starts with it).
SENTINEL = b"zz9sentinel"
JUNK_LINE = st.binary(max_size=120).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))


def harmless_junk(line: bytes) -> bool:
    """Junk that cannot make the server wait for more than one line (a literal, IDLE, AUTH)."""
    words = line.split(b" ")
    name = words[1].upper() if len(words) > 1 else b""
    return (
        not line.rstrip().endswith(b"}")
        and name not in (b"IDLE", b"AUTHENTICATE")
        and not line.startswith(SENTINEL)
    )


# --- tests --------------------------------------------------------------------------------


@fuzz_settings(40)
@given(lines=st.lists(JUNK_LINE.filter(harmless_junk), min_size=1, max_size=5),
       login=st.booleans())
@example(lines=[b"", b" ", b"\x00", b"*", b"+", b"a", b"a ", b"a  NOOP"], login=False)
@example(lines=[b"\xff NOOP", b"a\x00 NOOP", b"a NOOP\x00", b"a LOGIN", b"a LOGIN a"],
         login=False)
@example(lines=[b"a SELECT", b"a FETCH", b"a UID", b"a UID FETCH", b"DONE", b"+ x"], login=True)
def test_random_lines_are_answered_and_the_connection_stays_usable(
    fuzz_server: FuzzServer, lines: list[bytes], login: bool
) -> None:
    with session(fuzz_server, login) as imap:
        imap.send(b"".join(line + b"\r\n" for line in lines) + SENTINEL + b" NOOP\r\n")
        while True:
            try:
                text = imap.response()
            except WireClosedError:
                assert not login, "closed an authenticated connection"
                return
            assert not text.startswith(b"+"), text
            if text.startswith(SENTINEL + b" "):
                assert text.startswith(SENTINEL + b" OK"), text
                return
            if text.startswith(b"* BYE"):
                assert not login and imap.closed(), text
                return


@fuzz_settings(30)
@given(commands=st.lists(command(), min_size=1, max_size=5))
def test_commands_before_login_each_get_one_reply(
    fuzz_server: FuzzServer, commands: list[bytes]
) -> None:
    # LOGIN and AUTHENTICATE with a wrong password cost two seconds each: not here.
    commands = [c for c in commands if not c.upper().startswith((b"LOGIN ", b"AUTHENTICATE "))]
    with session(fuzz_server, login=False) as imap:
        tags = [(b"p%d" % i, c) for i, c in enumerate(commands)]
        imap.run([*tags, (b"Z", b"NOOP")])


SEED_MESSAGES = [
    b"From: Plain <plain@example.net>\r\nTo: bob@example.org\r\nSubject: plain\r\n"
    b"Date: Mon, 02 Jan 2023 10:00:00 +0200\r\nMessage-ID: <p@x>\r\n\r\nBody.\r\n",
    b"Subject: =?utf-8?q?caf=C3=A9?=\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
    b"\r\n\r\ncaf=C3=A9\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--a--\r\n",
    b"Subject: nested\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
    b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n"
    b"Content-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\n\r\ninner text\r\n--i\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAw==\r\n--i--\r\n--o\r\nContent-Type: text/plain\r\n\r\ntail\r\n--o--\r\n",
    b"Subject: \xff\xfe raw 8-bit \x00\r\nFrom: \xc3\xa9 <e@x>\r\n\r\n\xff\x00body\r\n",
    b"\r\nno headers at all\r\n",
]


@pytest.fixture(scope="module", autouse=True)
def mail_to_read(fuzz_server: FuzzServer) -> None:
    """Messages of every shape in the fuzzed user's INBOX, and a second mailbox."""
    for raw in SEED_MESSAGES * 2:
        deliver(fuzz_server, [USER], raw)
    with Imap(fuzz_server.imap_port) as imap:
        imap.login(USER)
        imap.run([(b"c", b"CREATE Fuzz")])


@fuzz_settings(100)
@given(
    readonly=st.booleans(),
    # Without MOVE, so that the INBOX keeps its messages for the next examples.
    commands=st.lists(message_command(moves=False), min_size=1, max_size=6),
)
@example(readonly=False, commands=[b"FETCH 1:* (BODY[1.2.3]<4294967295.1> BODY[0])"])
@example(readonly=False, commands=[b"SEARCH CHARSET x-bogus TEXT \xff"])
@example(readonly=False, commands=[b"FETCH 1:* (BODYSTRUCTURE ENVELOPE BODY[3.1.2] BINARY[3.1.2])"])
@example(readonly=True, commands=[b"STORE 1:* +FLAGS (\\Deleted)", b"FETCH * FLAGS"])
def test_message_commands_on_real_messages_each_get_one_reply(
    fuzz_server: FuzzServer, readonly: bool, commands: list[bytes]
) -> None:
    with session(fuzz_server) as imap:
        select = b"EXAMINE INBOX" if readonly else b"SELECT INBOX"
        tags = [(b"s", select)] + [(b"c%d" % i, c) for i, c in enumerate(commands)]
        replies = imap.run([*tags, (b"Z", b"NOOP")])
        assert replies[b"s"].startswith(b"s OK")
        assert replies[b"Z"].startswith(b"Z OK"), replies
        count_outcomes(tags, replies)


@fuzz_settings(80)
@given(commands=st.lists(command(("mailbox",)), min_size=1, max_size=6))
@example(commands=[b"CREATE &AAA", b"CREATE &Jjo", b"RENAME INBOX &-", b"LIST \"\" *"])
@example(commands=[b"SELECT " + literal(b"\x00"), b"STATUS {4+}\r\n\xff\xfe\xfd\xfc ()"])
@example(commands=[b"CREATE Fuzz/" + b"x/" * 300, b"DELETE Fuzz", b"LIST Fuzz/ *"])
def test_mailbox_commands_with_hostile_names_each_get_one_reply(
    fuzz_server: FuzzServer, commands: list[bytes]
) -> None:
    with session(fuzz_server) as imap:
        tags = [(b"c%d" % i, c) for i, c in enumerate(commands)]
        replies = imap.run([*tags, (b"Z", b"NOOP")])
        assert replies[b"Z"].startswith(b"Z OK"), replies
        count_outcomes(tags, replies)


def count_outcomes(tags: list[tuple[bytes, bytes]], replies: dict[bytes, bytes]) -> None:
    """Hypothesis statistics (`--hypothesis-show-statistics`): which commands got which answer."""
    for tag, line in tags:
        if tag in replies:
            words = line.upper().split(b" ")
            name = b" ".join(words[:2]) if words[0] == b"UID" else words[0]
            event(f"{name.decode(errors='replace')} {replies[tag].split(b' ')[1].decode()}")


@fuzz_settings(80)
@given(
    select=st.sampled_from([b"", b"SELECT INBOX", b"EXAMINE INBOX", b"SELECT Fuzz"]),
    commands=st.lists(command(), min_size=1, max_size=6),
)
@example(select=b"SELECT INBOX", commands=[b"STORE 1 +FLAGS (\\Deleted)", b"EXPUNGE",
                                           b"FETCH * BODYSTRUCTURE"])
def test_commands_after_login_each_get_one_reply(
    fuzz_server: FuzzServer, select: bytes, commands: list[bytes]
) -> None:
    with session(fuzz_server) as imap:
        tags = [(b"s", select)] if select else []
        tags += [(b"c%d" % i, c) for i, c in enumerate(commands)]
        replies = imap.run([*tags, (b"Z", b"NOOP")])
        assert replies[b"Z"].startswith(b"Z OK"), replies
        count_outcomes(tags, replies)


@fuzz_settings(25)
@given(
    declared=st.integers(0, 40),
    payload=st.binary(max_size=40).map(lambda b: b.replace(b"{", b"").replace(b"}", b"")),
    synchronising=st.booleans(),
    verb=st.sampled_from([b"SELECT", b"CREATE", b"APPEND INBOX", b"LOGIN", b"STATUS"]),
)
def test_literals_of_the_wrong_size_leave_the_connection_usable(
    fuzz_server: FuzzServer, declared: int, payload: bytes, synchronising: bool, verb: bytes
) -> None:
    with session(fuzz_server) as imap:
        plus = b"" if synchronising else b"+"
        imap.send(b"w %s {%d%s}\r\n" % (verb, declared, plus))
        if synchronising:
            assert imap.response().startswith(b"+")
        # Enough filler that a literal longer than the payload is always complete.
        imap.send(payload + b"\r\n" + b"x" * declared + b"\r\nZ NOOP\r\n")
        while not (text := imap.response()).startswith(b"Z "):
            if text.startswith(b"+"):
                imap.send(b"x" * 45 + b"\r\n")  # a literal announced in the leftovers
        assert text.startswith(b"Z OK"), text


@pytest.mark.parametrize(
    "line",
    [
        b"SEARCH " + b"(" * 5000 + b"ALL" + b")" * 5000,
        b"SEARCH " + b"NOT " * 5000 + b"ALL",
        b"SEARCH " + b"OR ALL " * 5000 + b"ALL",
        b"FETCH 1 " + b"(" * 5000 + b"FLAGS" + b")" * 5000,
        b"STORE 1 FLAGS " + b"(" * 5000,
        b"ID " + b"(" * 5000,
        b"STATUS INBOX " + b"(" * 5000 + b"MESSAGES" + b")" * 5000,
        b"APPEND INBOX " + b"(" * 5000 + b" " + literal(b"x"),
        b"SETMETADATA INBOX " + b"(" * 5000,
        b"LIST \"\" \"" + b"*%" * 200 + b"x\"",
        b"LIST \"\" " + b"(" * 5000,
    ],
    ids=["search-parens", "search-not", "search-or", "fetch-parens", "store-parens",
         "id-parens", "status-parens", "append-flags-parens", "setmetadata-parens",
         "list-stars", "list-parens"],
)
def test_deeply_nested_or_pathological_arguments_get_one_reply(
    fuzz_server: FuzzServer, line: bytes
) -> None:
    with session(fuzz_server) as imap:
        imap.sock.settimeout(5)
        replies = imap.run([(b"s", b"SELECT INBOX"), (b"n", line), (b"Z", b"NOOP")])
        assert replies[b"n"].startswith((b"n BAD", b"n NO", b"n OK")), replies
        assert replies[b"Z"].startswith(b"Z OK")


@pytest.mark.parametrize("login", [False, True])
def test_a_huge_sequence_set_or_line_is_refused_not_fatal(
    fuzz_server: FuzzServer, login: bool
) -> None:
    huge_set = b",".join(b"%d" % i for i in range(1, 200_000))
    with session(fuzz_server, login) as imap:
        replies = imap.run([(b"s", b"SELECT INBOX"), (b"h", b"FETCH " + huge_set + b" FLAGS"),
                            (b"Z", b"NOOP")])
        if login:
            assert replies[b"Z"].startswith(b"Z OK")


def test_idle_misuse_is_answered_and_idle_still_works(fuzz_server: FuzzServer) -> None:
    with session(fuzz_server) as imap:
        imap.send(b"d DONE\r\nx IDLE now\r\n")
        assert imap.replies([b"d", b"x"])[b"x"].startswith(b"x BAD")
        for not_done in [b"DONE DONE", b"\x00DONE", b"", b"y NOOP", b"DONE" * 1000]:
            imap.send(b"i IDLE\r\n")
            assert imap.response().startswith(b"+")
            imap.send(not_done + b"\r\n")
            assert imap.replies([b"i"])[b"i"].startswith(b"i BAD"), not_done
        imap.run([(b"s", b"SELECT INBOX")])
        imap.send(b"i IDLE\r\n")
        assert imap.response().startswith(b"+")
        deliver(fuzz_server, [USER], b"Subject: while idling\r\n\r\nbody\r\n")
        assert re.match(rb"\* \d+ EXISTS", imap.response())
        imap.send(b"done\r\n")
        assert imap.replies([b"i"])[b"i"].startswith(b"i OK")
    with session(fuzz_server, login=False) as imap:
        assert imap.run([(b"i", b"IDLE")])[b"i"].startswith(b"i BAD")


def test_a_client_leaving_mid_idle_or_mid_literal_is_harmless(fuzz_server: FuzzServer) -> None:
    with session(fuzz_server) as imap:
        imap.send(b"i IDLE\r\n")
        assert imap.response().startswith(b"+")
    with session(fuzz_server) as imap:
        imap.send(b"a APPEND INBOX {100+}\r\nhalf")
    with session(fuzz_server, login=False) as imap:
        imap.send(b"a LOGIN {5}\r\n")
        assert imap.response().startswith(b"+")
