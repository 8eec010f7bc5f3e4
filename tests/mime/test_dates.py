"""Date header parsing with lib-mail's forgiving grammar."""

from __future__ import annotations

import pytest

from mailpush.mime.dates import MessageDate, parse_date


def test_observed_date_with_positive_offset() -> None:
    assert parse_date("Mon, 02 Jan 2023 10:00:00 +0200") == MessageDate(1672646400, 120)


@pytest.mark.parametrize(
    ("zone", "minutes"),
    [("-0500", -300), ("+1345", 825), ("+0530", 330), ("-0800", -480), ("+0000", 0)],
)
def test_offset_is_minutes_east_of_utc(zone: str, minutes: int) -> None:
    parsed = parse_date(f"Mon, 02 Jan 2023 10:00:00 {zone}")
    assert parsed is not None
    assert parsed.tz_minutes == minutes
    assert parsed.timestamp == 1672653600 - minutes * 60


def test_invalid_date_is_unusable() -> None:
    assert parse_date("not a valid date") is None


def test_missing_date_is_unusable() -> None:
    assert parse_date(None) is None


def test_weekday_is_optional() -> None:
    assert parse_date("2 Jan 2023 10:00 GMT") == MessageDate(1672653600, 0)


def test_named_us_zone_and_trailing_comment() -> None:
    assert parse_date("Mon, 02 Jan 2023 10:00:00 EST (Eastern)") == MessageDate(1672671600, -300)


def test_unknown_zone_counts_as_utc() -> None:
    assert parse_date("Mon, 02 Jan 2023 10:00:00 XYZT") == MessageDate(1672653600, 0)


def test_missing_zone_counts_as_utc() -> None:
    assert parse_date("Mon, 02 Jan 2023 10:00:00") == MessageDate(1672653600, 0)


def test_two_digit_year_before_70_is_20xx() -> None:
    parsed = parse_date("02 Jan 23 10:00:00 +0000")
    assert parsed is not None and parsed.timestamp == 1672653600


def test_dot_separated_time_is_accepted() -> None:
    assert parse_date("02 Jan 2023 10.00.00 +0000") == MessageDate(1672653600, 0)


def test_impossible_calendar_day_is_unusable() -> None:
    assert parse_date("31 Feb 2023 10:00:00 +0000") is None


def test_weekday_without_comma_is_unusable() -> None:
    assert parse_date("Mon 02 Jan 2023 10:00:00 +0000") is None


def test_minutes_and_seconds_take_two_digits_each() -> None:
    assert parse_date("02 Jan 2023 10:5:00 +0000") is None
    assert parse_date("02 Jan 2023 10:05:7 +0000") is None
    assert parse_date("02 Jan 2023 10:05:007 +0000") is None


def test_a_comment_or_space_may_follow_a_time_separator() -> None:
    expected = MessageDate(1672653907, 0)
    assert parse_date("02 Jan 2023 10: (c) 05:07 +0000") == expected
    assert parse_date("02 Jan 2023 10:05: 07 +0000") == expected
