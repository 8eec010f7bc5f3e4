"""COMPRESS, LIST-EXTENDED/LIST-STATUS (and STATUS), BINARY, CATENATE: mailpush and Dovecot 2.3.

Both servers get the same mailboxes, subscriptions and messages (Dovecot
configured like mailpush: `/` separator, the four special-use mailboxes
created, imap_zlib loaded), then the same commands. Each answer is compared
with the tag, Dovecot's timing, a final period and UIDVALIDITY values taken
out. LIST answers are compared as sets of (LIST line, STATUS line) groups:
Dovecot lists in its Maildir's order, mailpush sorted.

Deliberate differences, left out of the commands below:
- Dovecot does not mark an `auto = create` mailbox `\\Subscribed` in
  `LIST ... RETURN (SUBSCRIBED)` even when it is subscribed (it does with the
  SUBSCRIBED selection option); mailpush marks it in both.
- When Dovecot refuses a CATENATE part (`FOO "x"`, `TEXT "quoted"`, a literal8 TEXT
  after a URL) it parses the rest of that line as a new command and adds
  `* BAD Error in IMAP tag`; mailpush skips the rest of the command.
- Dovecot adds Maildir's `\\UnMarked`/`\\Marked` to LIST; mailpush has no
  such notion (stripped before comparing).
- For some malformed CATENATE URLs (`x`, `/INBOX`, `;SECTION=FOO`) Dovecot
  answers `NO Mailbox doesn't exist: INBOX.` (an unrelated stale error);
  mailpush says `NO [BADURL url] ...` with the reason.
- FETCH BINARY of a part whose base64 has no padding makes Dovecot 2.3.19
  disconnect (`BYE ... Internal error`); mailpush decodes what is there.
"""

from __future__ import annotations

import asyncio
import re
import socket
import zlib

import pytest
from bench.dovecot_instance import DovecotInstance, dovecot_binary

from ..imap.test_binary import MULTIPART, SIMPLE_QP
from ..imap.test_catenate import BASE

pytestmark = pytest.mark.skipif(
    dovecot_binary() is None,
    reason="Dovecot is not installed (apt-get install dovecot-core dovecot-imapd "
    "dovecot-lmtpd; bench/README.md)",
)

PASSWORD = "secret"
#: Dovecot set up as mailpush is: `/` between levels, the special-use mailboxes, COMPRESS.
DOVECOT_CONFIG = """
protocol imap {
  mail_plugins = $mail_plugins imap_zlib
}
namespace inbox {
  inbox = yes
  separator = /
""" + "".join(
    f"  mailbox {name} {{\n    auto = create\n    special_use = \\{name}\n  }}\n"
    for name in ("Sent", "Drafts", "Trash", "Junk")
) + "}\n"
_TIMING = re.compile(rb" \([0-9.]+ \+ [0-9. +]+ secs\)")
_UIDVALIDITY = re.compile(rb"(UIDVALIDITY[ =]|APPENDUID )[0-9]+")
_MARKED = re.compile(rb" ?\\(?:Un)?Marked")


def _literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


#: A message only literal8 (`~{n}`) can carry.
_NULS = b"Subject: bin\r\n\r\nnul\x00byte \xff\xfe 8bit\r\n"
#: A part in binary: Dovecot stores it base64-encoded.
_BINARY_PART = (
    b"Subject: mp\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
    b"Content-Transfer-Encoding: BINARY\r\nContent-Type: application/x\r\n\r\n"
    + bytes(range(256)) + b"\r\n--B--\r\n"
)

SETUP = [
    b"CREATE a/b/c", b"CREATE x", b"CREATE x/y", b"CREATE gone", b"SUBSCRIBE a/b/c",
    b"SUBSCRIBE x", b"SUBSCRIBE x/y", b"SUBSCRIBE gone", b"DELETE gone",
    b"APPEND x " + _literal(BASE), b"APPEND INBOX " + _literal(MULTIPART),
    b"APPEND INBOX " + _literal(SIMPLE_QP), b"APPEND INBOX " + _literal(BASE),
]  # fmt: skip

LIST_COMMANDS = [
    b'LIST () "" *', b'LIST "" * RETURN ()', b'LIST (SUBSCRIBED) "" *',
    b'LIST (SUBSCRIBED) "" %', b'LIST (SUBSCRIBED RECURSIVEMATCH) "" %',
    b'LIST (SUBSCRIBED RECURSIVEMATCH) "" *', b'LIST (SUBSCRIBED RECURSIVEMATCH) "" a/%',
    b'LIST (SUBSCRIBED) "" * RETURN (CHILDREN)', b'LIST "" * RETURN (CHILDREN)',
    b'LIST "" * RETURN (SUBSCRIBED)', b'LIST "" % RETURN (SUBSCRIBED CHILDREN)',
    b'LIST "" ("x" "a/*" "INBOX")', b'LIST "" ("x*" "x")', b'LIST "" ()',
    b'LIST "" (x) RETURN (STATUS (MESSAGES UNSEEN))',
    b'LIST "" * RETURN (STATUS (UIDNEXT MESSAGES RECENT))',
    b'LIST (SUBSCRIBED) "" * RETURN (CHILDREN STATUS (MESSAGES))',
    b'LIST (SPECIAL-USE) "" *', b'LIST "" * RETURN (SPECIAL-USE)',
    b'LIST (SPECIAL-USE) "" * RETURN (CHILDREN STATUS (UIDNEXT))', b'LIST (REMOTE) "" %',
    b'LIST (RECURSIVEMATCH) "" %', b'LIST (FOO) "" %', b'LIST "" % RETURN (FOO)',
    b'LIST "" % RETURN (STATUS)', b'LIST "" % RETURN (STATUS ())',
    b'LIST "" % RETURN (STATUS (FOO))', b'LIST "" % RETURN', b'LIST "" % EXTRA',
    b'LIST ("SUBSCRIBED") "" %', b'LIST (subscribed) "" % return (children)',
    b'LIST () "" ""', b'LIST "" ("")', b'LIST "x" ("y" "%") RETURN (CHILDREN)',
]  # fmt: skip

OTHER_COMMANDS = [
    b"STATUS x (UNSEEN UIDNEXT MESSAGES)",
    b"SELECT INBOX",
    *(b"FETCH 1 (BINARY.PEEK%s)" % part for part in (
        b"[1]", b"[2]", b"[2]<250.10>", b"[3]", b"[4]", b"[5]", b"[5.1]", b"[6]", b"[9]", b"[]",
        b"[TEXT]")),
    b"FETCH 2 (BINARY.PEEK[])", b"FETCH 2 (BINARY.SIZE[])", b"FETCH 2 (BINARY.PEEK[1])",
    b"FETCH 2 (BINARY.SIZE[1])", b"FETCH 2 (BINARY.PEEK[TEXT])", b"FETCH 2 (BINARY.PEEK[1.MIME])",
    b"FETCH 2 (BINARY.SIZE[1]<0.3>)", b"FETCH 1 (BINARY.SIZE[2])",
    b"FETCH 1 (FLAGS BINARY.PEEK[4])", b"FETCH 1:2 (BINARY.PEEK[4])",
    b"UID FETCH 1 (BINARY.PEEK[2]<0.4>)", b"FETCH 1 (BINARY)", b"FETCH 1 (BINARY.SIZE)",
    b"APPEND INBOX CATENATE (TEXT " + _literal(b"Subject: new\r\n\r\n")
    + b' URL "/INBOX/;UID=3/;SECTION=1" URL "/x/;UID=1/;SECTION=2.MIME"'
    + b' URL ";UID=3/;PARTIAL=9.4" TEXT ' + _literal(b"\r\n--end\r\n") + b")",
    b"FETCH 4 (BODY.PEEK[])",
    *(b'APPEND INBOX CATENATE (URL "%s")' % url for url in (
        b"/INBOX;UIDVALIDITY=1/;UID=1", b"/INBOX/;UID=99", b"/nonexist/;UID=1",
        b"imap://alice@127.0.0.1/INBOX/;UID=1", b"http://x/y", b"/;UID=1",
        b"/INBOX/;UID=1/;SECTION=1;PARTIAL=0.4", b"/INBOX/;UID=1/;URLAUTH=anonymous",
        b"/INBOX/;UID=0", b"/INBOX/;UID=abc", b"/INBOX;FOO=1/;UID=1", b"/%49NBOX/;UID=3",
        b"/inbox/;UID=3/;SECTION=9")),
    b"APPEND INBOX CATENATE ()",
    b"APPEND INBOX CATENATE (TEXT " + _literal(b"Subject: a\r\n\r\nx") + b") "
    + _literal(b"Subject: c\r\n\r\nz"),
    b"APPEND INBOX ~{%d+}\r\n%s" % (len(_NULS), _NULS),
    b"FETCH * (BODY.PEEK[] BINARY.PEEK[1] BINARY.SIZE[1])",
    b"APPEND INBOX ~{%d+}\r\n%s" % (len(_BINARY_PART), _BINARY_PART),
    b"FETCH * (BODY.PEEK[] BINARY.PEEK[1] BINARY.SIZE[])",
    b"APPEND INBOX CATENATE (TEXT ~{%d+}\r\n%s)" % (len(_BINARY_PART), _BINARY_PART),
    b"FETCH * (BODY.PEEK[])",
    b"COMPRESS", b"COMPRESS GZIP", b"COMPRESS DEFLATE X", b"COMPRESS DEFLATE",
]  # fmt: skip
#: Sent compressed, after the COMPRESS DEFLATE above.
COMPRESSED_COMMANDS = [b"COMPRESS DEFLATE", b"NOOP", b'LIST "" INBOX']


class RawClient:
    """Tagged commands over a socket; answers with literals read whole; optional deflate."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buffer = b""
        self.count = 0
        self.deflate: zlib._Compress | None = None
        self.inflate: zlib._Decompress | None = None
        self.line()

    def compress(self) -> None:
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)

    def command(self, text: bytes) -> tuple[list[bytes], bytes]:
        self.count += 1
        tag = b"d%d" % self.count
        data = tag + b" " + text + b"\r\n"
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)
        untagged = []
        while True:
            line = self.line()
            literal = re.search(rb"~?\{(\d+)\}\r\n$", line)
            while literal:
                line += self.read(int(literal.group(1)))
                more = self.line()
                line += more
                literal = re.search(rb"~?\{(\d+)\}\r\n$", more)
            if line.startswith(tag + b" "):
                return untagged, line[len(tag) + 1 :]
            untagged.append(line)

    def line(self) -> bytes:
        while b"\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, "connection closed"
        self.buffer += self.inflate.decompress(chunk) if self.inflate is not None else chunk

    def close(self) -> None:
        self.sock.close()


def answers(port: int) -> list[tuple[bytes, object]]:
    """(command, normalised answer) for every command, in order."""
    client = RawClient(port)
    try:
        assert client.command(b"LOGIN alice " + PASSWORD.encode())[1].startswith(b"OK")
        for text in SETUP:
            assert client.command(text)[1].startswith(b"OK"), text
        out: list[tuple[bytes, object]] = []
        for text in LIST_COMMANDS + OTHER_COMMANDS:
            untagged, tagged = client.command(text)
            out.append((text, _normalised(text, untagged, tagged)))
            if text == b"COMPRESS DEFLATE" and tagged.startswith(b"OK"):
                client.compress()
        for text in COMPRESSED_COMMANDS:
            untagged, tagged = client.command(text)
            out.append((b"(deflate) " + text, _normalised(text, untagged, tagged)))
        return out
    finally:
        client.close()


def _normalised(text: bytes, untagged: list[bytes], tagged: bytes) -> object:
    status = _UIDVALIDITY.sub(rb"\1V", _TIMING.sub(b"", tagged.rstrip(b"\r\n")).rstrip(b"."))
    lines = [_UIDVALIDITY.sub(rb"\1V", line.rstrip(b"\r\n")) for line in untagged]
    if not text.upper().startswith(b"LIST"):
        return lines, status
    groups: list[list[bytes]] = []
    for line in lines:
        if line.startswith(b"* STATUS ") and groups:
            groups[-1].append(line)
        else:
            groups.append([_MARKED.sub(b"", line).replace(b"( ", b"(")])
    return sorted(groups), status


async def test_extensions_answer_as_dovecot_does(mailpush_port: int) -> None:
    async with DovecotInstance(users=[("alice", PASSWORD)], extra_config=DOVECOT_CONFIG) as dovecot:
        expected = await asyncio.to_thread(answers, dovecot.imap_port)
        log = dovecot.log_text()
    actual = await asyncio.to_thread(answers, mailpush_port)

    differences = [
        f"{text!r}\n  dovecot:  {want!r}\n  mailpush: {got!r}"
        for (text, want), (_, got) in zip(expected, actual, strict=True)
        if want != got
    ]
    assert not differences, "\n".join(differences) + "\n" + log[-2000:]
