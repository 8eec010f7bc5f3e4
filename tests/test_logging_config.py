"""Passwords in URLs never reach a log line, however the URL is written."""

from __future__ import annotations

import logging

import pytest

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
    ],
)
def test_the_password_is_masked(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


@pytest.mark.parametrize(
    "text", ["http://host/a@b", "http://alice@host/x", "mailto:alice@example.org", "no url"]
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
