"""Scripts of two IMAP sessions (sometimes three) on one mailbox, every reply line in order.

imaplib opens and logs in each connection; the scripts then send commands
with its `send` and read the answer with its `readline` / `read`, because
imaplib's own parsing files untagged responses in a dict and loses their
order, which is what these scripts check (`* FLAGS` must come before the
first FETCH that shows a new keyword; `* n RECENT` only when the count
changed). A script's transcript reads like an RFC example:

    A: STORE 1:3 +FLAGS (\\Seen)
       * 1 FETCH (FLAGS (\\Seen \\Recent))
       OK Store completed.

tests/imap/test_concurrent_sessions.py runs the scripts against mailpush
and compares with the transcript measured on Dovecot 2.3.19;
tests/dovecot/test_imap_concurrency_differential.py runs them against a real
Dovecot and mailpush side by side.
"""

from __future__ import annotations

import imaplib
import re
from collections.abc import Callable

__all__ = ["SCRIPTS", "Script", "Session", "expunged_by_b", "message"]

#: Dovecot appends its timing to tagged replies: "(0.001 + 0.000 + 0.001 secs)".
_TIMING = re.compile(r" \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)")
#: UIDVALIDITY is a creation time on both servers: only its place is compared.
_UIDVALIDITY = re.compile(r"\[(UIDVALIDITY|APPENDUID|COPYUID) \d+")
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
_UNSOLICITED_UID = re.compile(r"^(\* \d+ FETCH \()UID \d+ (?=FLAGS \()")


def message(n: int) -> bytes:
    return f"From: a@example.org\r\nSubject: m{n}\r\n\r\nbody {n}\r\n".encode()


class Session:
    """One logged-in connection; `run` returns the reply lines, the tagged one last, untagged."""

    def __init__(self, host: str, port: int, user: str, password: str, name: str) -> None:
        self.name = name
        self.imap = imaplib.IMAP4(host, port)
        self.imap.login(user, password)
        self._count = 0

    def run(self, command: str, literal: bytes | None = None) -> list[str]:
        self._count += 1
        tag = f"{self.name}{self._count}"
        if literal is None:
            self.imap.send(f"{tag} {command}\r\n".encode())
        else:  # LITERAL+: both servers take it without a continuation
            self.imap.send(f"{tag} {command} {{{len(literal)}+}}\r\n".encode() + literal + b"\r\n")
        lines: list[str] = []
        while True:
            line = self.imap.readline()
            while (match := _LITERAL.search(line)) is not None:
                line += self.imap.read(int(match.group(1))) + self.imap.readline()
            # A literal's own line breaks read as "\n" in the transcript.
            text = line.decode("utf-8", "replace").rstrip("\r\n").replace("\r\n", "\n")
            text = _UIDVALIDITY.sub(r"[\1 V", _TIMING.sub("", text))
            if text.startswith(tag + " "):
                lines.append(text[len(tag) + 1 :])
                return lines
            lines.append(text)

    def idle(self) -> str:
        """Send IDLE; the continuation line. Read updates with `line`, end with `done`."""
        self._count += 1
        self.imap.send(f"{self.name}{self._count} IDLE\r\n".encode())
        return self.line()

    def line(self) -> str:
        return self.imap.readline().decode("utf-8", "replace").rstrip("\r\n")

    def done(self) -> list[str]:
        """End IDLE: what came until its tagged reply (untagged)."""
        self.imap.send(b"DONE\r\n")
        tag = f"{self.name}{self._count} "
        lines: list[str] = []
        while not (line := _TIMING.sub("", self.line())).startswith(tag):
            lines.append(line)
        return [*lines, line[len(tag) :]]

    def close(self) -> None:
        try:
            self.imap.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


Connect = Callable[[str], Session]


class Script:
    """Sessions named A, B, C on one server, and the transcript of what they were told."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._sessions: dict[str, Session] = {}
        self.exchanges: list[tuple[str, str, list[str]]] = []

    def __call__(self, name: str, command: str, literal: bytes | None = None) -> list[str]:
        """Run `command` in session `name` and add it and its answer to the transcript."""
        reply = self.quietly(name, command, literal)
        self.exchanges.append((name, command, reply))
        return reply

    def quietly(self, name: str, command: str, literal: bytes | None = None) -> list[str]:
        """Run a setup command, left out of the transcript."""
        return self.session(name).run(command, literal)

    def session(self, name: str) -> Session:
        """Session `name`, connected and logged in at first use."""
        session = self._sessions.get(name)
        if session is None:
            session = self._sessions[name] = self._connect(name)
        return session

    def fill(self, mailbox: str, count: int) -> None:
        self.quietly("A", f"CREATE {mailbox}")
        for n in range(1, count + 1):
            self.quietly("A", f"APPEND {mailbox}", message(n))

    @property
    def transcript(self) -> str:
        return self.render(uid_in_unsolicited_fetch=True)

    def render(self, uid_in_unsolicited_fetch: bool) -> str:
        """The transcript; without `uid_in_unsolicited_fetch`, a flag update another
        session caused reads `* 2 FETCH (FLAGS ...)` as Dovecot sends it: mailpush adds
        `UID 2` to those (a difference on purpose, older than these scripts)."""
        lines: list[str] = []
        for name, command, reply in self.exchanges:
            lines.append(f"{name}: {command}")
            for line in reply:
                if not uid_in_unsolicited_fetch and "UID" not in command.upper():
                    line = _UNSOLICITED_UID.sub(r"\1", line)
                lines.append("   " + line)
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()


# --- the scripts -----------------------------------------------------------------------
# Each starts from a user with no mailbox but INBOX, so that both servers see the same.


def expunged_by_b(script: Script, mailbox: str, count: int = 3) -> None:
    """A and B select `mailbox`; B expunges message 2, which A still shows."""
    script.fill(mailbox, count)
    script.quietly("A", f"SELECT {mailbox}")
    script.quietly("B", f"SELECT {mailbox}")
    script("B", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    script("B", "EXPUNGE")


def store_on_message_expunged_elsewhere(script: Script) -> None:
    expunged_by_b(script, "vanish")
    script("A", "STORE 1:3 +FLAGS (\\Seen)")
    script("A", "STORE 2 +FLAGS.SILENT (\\Flagged)")
    script("A", "STORE 2 -FLAGS (\\Flagged)")
    script("A", "FETCH 1:3 FLAGS")
    script("A", "NOOP")


def uid_store_on_message_expunged_elsewhere(script: Script) -> None:
    expunged_by_b(script, "vanish")
    script("A", "UID STORE 1:3 +FLAGS (\\Seen)")
    script("A", "NOOP")


def fetch_of_message_expunged_elsewhere(script: Script) -> None:
    expunged_by_b(script, "vanish")
    script("A", "FETCH 2 BODY.PEEK[]")
    script("A", "FETCH 1:3 BODY.PEEK[TEXT]")
    script("A", "FETCH 2 (FLAGS INTERNALDATE ENVELOPE)")
    script("A", "FETCH 2 RFC822.HEADER")
    script("A", "UID FETCH 2 FLAGS")
    script("A", "NOOP")


def search_and_copy_with_message_expunged_elsewhere(script: Script) -> None:
    script.quietly("A", "CREATE copies")
    expunged_by_b(script, "vanish")
    script("A", "SEARCH ALL")
    script("A", "SEARCH DELETED")
    script("A", "SEARCH SUBJECT m")
    script("A", "COPY 2:3 copies")
    script("A", "STATUS copies (MESSAGES)")
    script("A", "COPY 2 copies")
    script("A", "STATUS copies (MESSAGES)")


def new_keyword_is_announced_before_use(script: Script) -> None:
    script.fill("words", 2)
    script.quietly("A", "SELECT words")
    script.quietly("B", "SELECT words")
    script("A", "STORE 1 +FLAGS ($Kw1)")
    script("A", "STORE 1 +FLAGS.SILENT ($Kw2)")
    script("A", "STORE 1:2 +FLAGS (NIL)")
    script("A", "STORE 2 FLAGS (\\Seen nil)")
    script("B", "FETCH 1:2 FLAGS")
    script("B", "NOOP")


def recent_belongs_to_one_session(script: Script) -> None:
    script.fill("fresh", 1)
    script("A", "SELECT fresh")
    script("B", "SELECT fresh")
    script("B", "APPEND fresh", message(2))
    script("A", "NOOP")
    script("B", "NOOP")
    script("C", "APPEND fresh", message(3))
    script("A", "NOOP")
    script("B", "NOOP")
    script("A", "FETCH 1:* FLAGS")
    script("B", "SEARCH RECENT")
    script("B", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    script("B", "EXPUNGE")
    script("A", "NOOP")
    script("A", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    script("A", "EXPUNGE")
    script("B", "NOOP")


def recent_in_a_read_only_session(script: Script) -> None:
    script.fill("watched", 1)
    script("A", "EXAMINE watched")
    script("C", "APPEND watched", message(2))
    script("A", "NOOP")
    script("B", "SELECT watched")
    script("C", "APPEND watched", message(3))
    script("B", "NOOP")
    script("A", "NOOP")
    script("A", "FETCH 1:* FLAGS")
    script("A", "SEARCH RECENT")


ENVELOPE_MESSAGE = (
    b"From: <user-from (comment)@ (comment) domain.org>\r\n"
    b"To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\r\n"
    b"Cc: group:;, group2: (foo) ;\r\n"
    b'Bcc: Route <@r1.example,@r2.example:user@domain.org>, "Quoted Name" <q@x.org>,\r\n'
    b" user, x@y (Real)\r\n"
    b"Reply-To: undisclosed-recipients:;\r\n"
    b"Subject: env\r\n"
    b"\r\n"
    b"body\r\n"
)


def envelope_and_address_search(script: Script) -> None:
    script.quietly("A", "CREATE env")
    script.quietly("A", "APPEND env", ENVELOPE_MESSAGE)
    script.quietly("A", "APPEND env", message(2))
    script.quietly("A", "EXAMINE env")
    script("A", "FETCH 1 ENVELOPE")
    script("A", "SEARCH FROM user-from@domain.org")
    script("A", "SEARCH FROM comment")
    script("A", "SEARCH TO group2")
    script("A", 'SEARCH TO "group: <g1@d1.org>, <g2"')
    script("A", 'SEARCH TO ": g1"')
    script("A", 'SEARCH CC "group:;, group2:;"')
    script("A", 'SEARCH BCC "Route <@r1.example,@r2.example:user@domain.org>"')
    script("A", 'SEARCH BCC "\\"Quoted Name\\" <q@x.org>"')
    script("A", "SEARCH BCC user@MISSING_DOMAIN")
    script("A", 'SEARCH BCC "Real <x@y>"')


def list_pattern_that_is_not_modified_utf7(script: Script) -> None:
    for pattern in ('"&"', '"&Jjo"', '"foo&-"', '"&AGE-"', '"*&"', '"%&x"', '"&Jjo-*"'):
        script("A", f'LIST "" {pattern}')
    script("A", 'LIST "&" "*"')
    script("A", 'LSUB "" "&"')


SCRIPTS: dict[str, Callable[[Script], None]] = {
    script.__name__: script
    for script in (
        store_on_message_expunged_elsewhere,
        uid_store_on_message_expunged_elsewhere,
        fetch_of_message_expunged_elsewhere,
        search_and_copy_with_message_expunged_elsewhere,
        new_keyword_is_announced_before_use,
        recent_belongs_to_one_session,
        recent_in_a_read_only_session,
        envelope_and_address_search,
        list_pattern_that_is_not_modified_utf7,
    )
}
