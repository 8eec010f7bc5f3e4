"""MAIL/RCPT arguments: the fast path for plain addresses agrees with aiosmtpd's parser."""

from __future__ import annotations

import pytest
from aiosmtpd.lmtp import LMTP
from hypothesis import given
from hypothesis import strategies as st

from mailpush.lmtp.server import MailpushLMTP


class _Handler:
    pass


def parsers() -> tuple[MailpushLMTP, LMTP]:
    return MailpushLMTP(_Handler()), LMTP(_Handler())


ATOM = st.text(alphabet="abcXYZ019.!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=12)
DOMAIN = st.from_regex(r"[a-z0-9-]{1,10}(\.[a-z0-9-]{1,10}){0,3}", fullmatch=True)
REST = st.sampled_from(["", " SIZE=100", " BODY=8BITMIME", "  SIZE=5 SMTPUTF8"])


@given(local=ATOM, domain=DOMAIN, rest=REST, space=st.sampled_from(["", " "]))
def test_fast_path_gives_what_aiosmtpd_gives(
    local: str, domain: str, rest: str, space: str
) -> None:
    ours, theirs = parsers()
    arg = f"{space}<{local}@{domain}>{rest}"
    assert ours._getaddr(arg) == theirs._getaddr(arg)


@given(local=ATOM, rest=REST, space=st.sampled_from(["", " "]))
def test_a_bare_local_part_gives_what_aiosmtpd_gives(local: str, rest: str, space: str) -> None:
    ours, theirs = parsers()
    arg = f"{space}<{local}>{rest}"
    assert ours._getaddr(arg) == theirs._getaddr(arg)


@pytest.mark.parametrize(
    "arg",
    ["<>", '<"quoted local"@example.org>', "<@relay.example:alice@example.org>",
     "alice@example.org", "<alice@[127.0.0.1]>", "<bad address>", ""],
)
def test_other_forms_are_left_to_aiosmtpd(arg: str) -> None:
    ours, theirs = parsers()
    assert ours._getaddr(arg) == theirs._getaddr(arg)


def test_an_overlong_local_part_is_refused_like_aiosmtpd_does() -> None:
    ours, theirs = parsers()
    ours.local_part_limit = theirs.local_part_limit = 64
    arg = f"<{'a' * 65}@example.org>"
    assert ours._getaddr(arg) == theirs._getaddr(arg) == (None, None)
