"""Passwords in URLs never reach a log line, however the URL is written."""

from __future__ import annotations

import logging
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpush.logging_config import SecretMaskingFilter, mask_secrets


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("http://alice:s3cret@push.example/x", "http://alice:***@push.example/x"),
        ("https://u:p%40ss@h:8443/hook?a=1", "https://u:***@h:8443/hook?a=1"),
        # A raw @ or / inside the password: parsers split at the last @.
        ("http://u:secret@pw@host/x", "http://u:***@host/x"),
        ("http://u:sec/retpw@host/x", "http://u:***@host/x"),
        ("(got http://u:pw@h:99999/x)", "(got http://u:***@h:99999/x)"),
        ("a http://u:p@h/x and https://v:q@k/ z", "a http://u:***@h/x and https://v:***@k/ z"),
        ("url=http://u:p@host", "url=http://u:***@host"),
        # PostgreSQL's other spellings: a URI parameter, a keyword/value string.
        ("postgresql://db.example/mail?password=s3cret&sslmode=require",
         "postgresql://db.example/mail?password=***&sslmode=require"),
        ("host=db user=mail password=s3cret dbname=mail",
         "host=db user=mail password=*** dbname=mail"),
        ("host=db PASSWORD = 's3 cr\\'et' dbname=mail", "host=db PASSWORD = *** dbname=mail"),
        ("postgresql://u:pw@h/db?password=other", "postgresql://u:***@h/db?password=***"),
    ],
)
def test_the_password_is_masked(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


@pytest.mark.parametrize(
    "text", ["http://host/a@b", "http://alice@host/x", "mailto:alice@example.org", "no url",
             "passwords=2 a=b", "password mismatch (given password)"]
)
def test_text_without_a_password_is_left_alone(text: str) -> None:
    assert mask_secrets(text) == text


def test_the_filter_masks_arguments_and_tracebacks() -> None:
    try:
        raise ValueError("cannot reach http://u:topsecret@h/x")
    except ValueError as exc:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "driver %s failed", ("http://u:topsecret@h/",),
            (type(exc), exc, exc.__traceback__),
        )
    assert SecretMaskingFilter().filter(record)
    assert "topsecret" not in record.getMessage()
    assert record.exc_text is not None and "topsecret" not in record.exc_text


# The masking rule as it was first written: a regex, easy to read, quadratic to run.
_REFERENCE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/\s:@]*):\S*@(?=[^\s@/]*(?:[/?#\s]|$))"
)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab1+.:/@ ?#\n-", max_size=40))
def test_masking_agrees_with_the_reference_rule(text: str) -> None:
    assert mask_secrets(text) == _REFERENCE.sub(r"\g<scheme>\g<user>:***@", text)


@pytest.mark.parametrize(
    "text",
    [
        "x" * 1_000_000 + "://",
        "a://" * 250_000,
        "a://b:" * 160_000 + "@",
        "http://u:" + "p" * 1_000_000,
        "h://u:" + "@" * 1_000_000,
        "password=" * 100_000,
        "password='" + "\\x" * 500_000,
    ],
    ids=["scheme-run", "many-separators", "many-users", "long-password", "many-ats",
         "many-parameters", "long-quoted-parameter"],
)
def test_masking_a_megabyte_without_spaces_takes_linear_time(text: str) -> None:
    """An endpoint's error body or a script's log text can be this; it must not stall."""
    started = time.monotonic()
    mask_secrets(text)
    assert time.monotonic() - started < 1.0
