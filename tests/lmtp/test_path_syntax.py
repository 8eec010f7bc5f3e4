"""MAIL FROM / RCPT TO paths are read as RFC 5321 writes them, and refused with why.

aiosmtpd's own reading (the stdlib's RFC 5322 header parser) is the yardstick
for the paths both accept: a plain address reads the same in both. Where
aiosmtpd took a malformed path (no closing `>`, a space in the local part, no
angle brackets), mailpush refuses it as Dovecot does; the replies themselves,
side by side with a real Dovecot, are in
tests/dovecot/test_lmtp_path_differential.py.
"""

from __future__ import annotations

import pytest
from aiosmtpd.lmtp import LMTP
from hypothesis import given
from hypothesis import strategies as st

from mailpush.lmtp.path_syntax import EnvelopePath, PathSyntaxError, parse_path
from mailpush.lmtp.server import MailpushLMTP


class _Handler:
    pass


def parsers() -> tuple[MailpushLMTP, LMTP]:
    return MailpushLMTP(_Handler()), LMTP(_Handler())


def same_as_aiosmtpd(arg: str) -> None:
    ours, theirs = parsers()
    address, rest = ours._getaddr(arg)
    their_address, their_rest = theirs._getaddr(arg)
    assert address == their_address
    assert (rest or "").split() == (their_rest or "").split()


ATOM = st.text(alphabet="abcXYZ019!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=12)
LOCAL = st.lists(ATOM, min_size=1, max_size=3).map(".".join)
DOMAIN = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9-]{0,8}[a-z0-9]){0,3}", fullmatch=True)
REST = st.sampled_from(["", " SIZE=100", " BODY=8BITMIME", "  SIZE=5 SMTPUTF8"])


@given(local=LOCAL, domain=DOMAIN, rest=REST)
def test_a_plain_address_reads_as_aiosmtpd_reads_it(local: str, domain: str, rest: str) -> None:
    same_as_aiosmtpd(f"<{local}@{domain}>{rest}")


@given(local=LOCAL, rest=REST)
def test_a_bare_local_part_reads_as_aiosmtpd_reads_it(local: str, rest: str) -> None:
    same_as_aiosmtpd(f"<{local}>{rest}")


@pytest.mark.parametrize(
    "arg",
    ["<>", "<> SIZE=10", '<"quoted local"@example.org>', '<"alice"@example.org>',
     '<"a\\"b"@example.org>', "<@relay.example:alice@example.org>",
     "<@a.example,@b.example:alice@example.org>", "<alice@[127.0.0.1]>",
     "<alice@[IPv6:::1]>"],
)
def test_the_other_rfc_5321_forms_read_as_aiosmtpd_reads_them(arg: str) -> None:
    same_as_aiosmtpd(arg)


@pytest.mark.parametrize(
    ("arg", "address"),
    [
        ("<a..b@example.org>", "a..b@example.org"),  # handed out by some carriers
        ("<.a@example.org>", ".a@example.org"),
        ("<a@-x.example>", "a@-x.example"),
        ("<a@x_y.example>", "a@x_y.example"),
        ("<josé@exämple.org>", "josé@exämple.org"),  # SMTPUTF8 is checked elsewhere
        ('<"a b"@example.org>', '"a b"@example.org'),
    ],
)
def test_what_dovecot_takes_is_taken(arg: str, address: str) -> None:
    assert parse_path(arg) == EnvelopePath(address, "")


@pytest.mark.parametrize(
    ("arg", "reason"),
    [
        ("alice@example.org", "Missing '<' at beginning of path"),
        (" <alice@example.org>", "Unexpected whitespace before path"),
        ("<alice@example.org", "Missing '>' at end of path"),
        ("<bad address@example.org>", "Invalid character in local part"),
        ("<a\tb@example.org>", "Invalid character in local part"),
        ("<a\x00b@example.org>", "Invalid character in local part"),
        ("<a(comment)@example.org>", "Invalid character in local part"),
        ("<<alice@example.org>>", "Invalid character in path"),
        ("<alice@example.org>junk", "Invalid character in path"),
        ("<>junk", "Invalid character in path"),
        ("<alice@>", "Missing domain after '@'"),
        ("<alice@example..org>", "Empty sub-domain"),
        ("<alice@.example.org>", "Empty sub-domain"),
        ("<alice@@example.org>", "Invalid character in domain"),
        ("<alice@example.org@other.example>", "Missing '>' at end of path"),
        ("<alice@exa mple.org>", "Missing '>' at end of path"),
        ("<alice@[junk]>", "Invalid address literal"),
        ('<"alice@example.org>', "Premature end of quoted string"),
        ("<@relay.example alice@example.org>", "Missing ':' at end of source route"),
        ("<@:alice@example.org>", "Missing domain after '@' in source route"),
        ("<@example.org>", "Missing ':' at end of source route"),
        ("", "Path is empty"),
    ],
)
def test_a_malformed_path_is_refused_with_the_reason(arg: str, reason: str) -> None:
    with pytest.raises(PathSyntaxError) as refused:
        parse_path(arg)
    assert str(refused.value) == reason


@given(st.text(alphabet=st.sampled_from(list('<>@".:,[]\\ \tab.-_é\x00')), max_size=30))
def test_any_text_reads_as_a_path_or_is_refused_with_a_reason(text: str) -> None:
    try:
        path = parse_path(text)
    except PathSyntaxError as refused:
        assert str(refused)
    else:
        assert "\t" not in path.address and "\x00" not in path.address


def test_an_overlong_local_part_is_refused_like_aiosmtpd_does() -> None:
    ours, theirs = parsers()
    ours.local_part_limit = theirs.local_part_limit = 64
    arg = f"<{'a' * 65}@example.org>"
    assert ours._getaddr(arg) == theirs._getaddr(arg) == (None, None)
