"""Match types and comparators (RFC 5228 §2.7, RFC 4790)."""

from __future__ import annotations

import time

import pytest

from mailpush.sieve.matching import matches_any
from mailpush.sieve.script import Match

CASEMAP = "i;ascii-casemap"
OCTET = "i;octet"


@pytest.mark.parametrize(
    ("match_type", "comparator", "value", "key", "expected"),
    [
        ("is", CASEMAP, "Hello World", "hello world", True),
        ("is", CASEMAP, "Hello World", "hello", False),
        ("is", OCTET, "Hello", "hello", False),
        ("is", OCTET, "Hello", "Hello", True),
        ("is", CASEMAP, "", "", True),
        ("contains", CASEMAP, "Your INVOICE is ready", "invoice", True),
        ("contains", OCTET, "Your INVOICE is ready", "invoice", False),
        ("contains", CASEMAP, "anything", "", True),
        ("matches", CASEMAP, "[list-dev] news", "[LIST-*]*", True),
        ("matches", CASEMAP, "abc", "a?c", True),
        ("matches", CASEMAP, "abbc", "a?c", False),
        ("matches", CASEMAP, "abc", "*", True),
        ("matches", CASEMAP, "", "*", True),
        ("matches", CASEMAP, "", "?*", False),
        ("matches", CASEMAP, "a*c", "a\\*c", True),
        ("matches", CASEMAP, "abc", "a\\*c", False),
        ("matches", CASEMAP, "what?", "*\\?", True),
        ("matches", CASEMAP, "mississippi", "*sip*i", True),
        ("matches", CASEMAP, "mississippi", "m*ss*x", False),
        ("matches", OCTET, "ABC", "a*", False),
    ],
)
def test_match_types_under_each_comparator(
    match_type: str, comparator: str, value: str, key: str, expected: bool
) -> None:
    match = Match(match_type, comparator)  # type: ignore[arg-type]
    assert matches_any([value], [key], match) is expected


def test_casemap_folds_only_ascii_letters() -> None:
    assert matches_any(["ÉCOLE"], ["école"], Match("is")) is False
    assert matches_any(["École"], ["école"], Match("is")) is False
    assert matches_any(["ÉCOLE"], ["Écol*"], Match("matches")) is True


def test_any_value_against_any_key() -> None:
    assert matches_any(["a", "b"], ["x", "b"], Match("is")) is True
    assert matches_any(["a", "b"], ["x", "y"], Match("is")) is False
    assert matches_any([], ["x"], Match("contains")) is False


def test_matches_pattern_with_many_stars_stays_fast() -> None:
    started = time.perf_counter()
    assert matches_any(["a" * 20_000], ["*a*a*a*a*a*a*a*a*b"], Match("matches")) is False
    assert time.perf_counter() - started < 2.0
