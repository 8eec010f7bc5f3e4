"""MAIL FROM and RCPT TO paths, sent to a real Dovecot 2.3.19 and to mailpush side by side.

What is compared is whether a path is refused as syntax (`501`): an MTA that
Dovecot takes a path from must not be refused by mailpush, and a malformed
path Dovecot refuses must not be taken. The wording of the reason may differ.
The users differ (Dovecot's are `alice`, mailpush's `alice@example.org` works
too), so a well-formed path may get 250 from one and 550 from the other; both
are "not a syntax error".

Deliberate differences, each listed below with its reason (lmtp/path_syntax.py):
Dovecot's MAIL FROM takes anything after the local part (`<a@>`,
`<a@@x.org>`, `<a(note)@x.org>`), mailpush checks a sender's domain as
Dovecot checks a recipient's.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from bench.dovecot_instance import DovecotInstance, dovecot_binary

from mailpush.server import MailpushServer
from tests.conftest import lmtp_port

pytestmark = pytest.mark.skipif(
    dovecot_binary() is None,
    reason="Dovecot is not installed (apt-get install dovecot-core dovecot-imapd "
    "dovecot-lmtpd; .ci/run does this when run as root)",
)

#: Read the same way by both: refused as syntax by both, or by neither.
PATHS = [
    "<alice@example.org>", "<alice>", "<a..b@example.org>", "<.a@example.org>",
    "<a.@example.org>", "<a@-x.example>", "<a@x_y.example>", "<a%b@example.org>",
    "<a@[127.0.0.1]>", "<a@1.2.3.4>", '<"quoted local"@example.org>', '<"alice">',
    '<"a\\"b"@example.org>', "<@relay.example:alice@example.org>",
    "<@a.example,@b.example:alice@example.org>",
    "alice@example.org", " <alice@example.org>", "<alice@example.org", "<bad address>",
    "<a b@example.org>", "<a\tb@example.org>", "<<alice@example.org>>",
    "<alice@example.org>junk", "<alice@example.org >", "<alice@exa mple.org>",
    '<"alice@example.org>', "<@relay.example alice@example.org>",
]

#: Refused by mailpush as a sender, taken by Dovecot's MAIL FROM; as recipients, both refuse.
SENDER_DOMAIN_CHECKED = [
    "<alice@>", "<alice@example..org>", "<alice@.example.org>", "<alice@[junk]>",
    "<alice@@example.org>", "<alice@example.org@other.example>", "<a(note)@example.org>",
    "<@:alice@example.org>", "<@example.org>",
]


def refused_as_syntax(port: int, commands: list[str]) -> bool:
    """Whether the last of `commands` (after LHLO) got a 501."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        stream = sock.makefile("rwb")
        stream.readline()
        reply = b""
        for command in ["LHLO client.example", *commands]:
            stream.write(command.encode() + b"\r\n")
            stream.flush()
            reply = stream.readline()
            while reply[3:4] == b"-":
                reply = stream.readline()
        return reply.startswith(b"501")


def compare(dovecot: int, mailpush: int, path: str) -> dict[str, tuple[bool, bool]]:
    """Per command, (Dovecot refused it as syntax, mailpush did)."""
    sender = [f"MAIL FROM:{path}"]
    recipient = ["MAIL FROM:<>", f"RCPT TO:{path}"]
    return {
        "MAIL": (refused_as_syntax(dovecot, sender), refused_as_syntax(mailpush, sender)),
        "RCPT": (refused_as_syntax(dovecot, recipient), refused_as_syntax(mailpush, recipient)),
    }


async def test_paths_are_refused_as_syntax_exactly_where_dovecot_refuses_them(
    server: MailpushServer,
) -> None:
    async with DovecotInstance(users=[("alice", "secret")]) as dovecot:
        results = {
            path: await asyncio.to_thread(compare, dovecot.lmtp_port, lmtp_port(server), path)
            for path in PATHS + SENDER_DOMAIN_CHECKED
        }

    differ = {
        (path, command): verdicts
        for path, by_command in results.items()
        for command, verdicts in by_command.items()
        if verdicts[0] != verdicts[1]
    }
    assert differ == {(path, "MAIL"): (False, True) for path in SENDER_DOMAIN_CHECKED}
    # The list holds both kinds: paths both servers take and paths both refuse.
    assert {results[path]["MAIL"] for path in PATHS} == {(False, False), (True, True)}
