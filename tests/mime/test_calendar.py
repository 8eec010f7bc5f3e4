"""Calendar-invitation detection (Chronos §4 c plus the product's superset)."""

from __future__ import annotations

from mailpush.mime.calendar import has_calendar
from mailpush.mime.structure import parse_structure


def mixed(*parts: bytes) -> bytes:
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    for part in parts:
        raw += b"--b\r\n" + part + b"\r\n"
    return raw + b"--b--\r\n"


def detects(raw: bytes) -> bool:
    return has_calendar(parse_structure(raw))


def test_text_calendar_part_is_detected_case_insensitively() -> None:
    assert detects(mixed(b"Content-Type: Text/Calendar; method=REQUEST\r\n\r\nBEGIN"))


def test_calendar_as_whole_message_is_detected() -> None:
    assert detects(b"Content-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR")


def test_disposition_filename_with_ics_extension_is_detected() -> None:
    part = b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; "
    assert detects(mixed(part + b'filename="Invite.ICS"\r\n\r\nx'))


def test_content_type_name_with_ics_extension_is_detected_as_superset() -> None:
    assert detects(mixed(b'Content-Type: application/octet-stream; name="invite.ics"\r\n\r\nx'))


def test_rfc2231_encoded_filename_is_detected() -> None:
    disposition = b"Content-Disposition: attachment; filename*=UTF-8''Termin%20%C3%BC.ics"
    assert detects(
        mixed(b"Content-Type: application/octet-stream\r\n" + disposition + b"\r\n\r\nx")
    )


def test_calendar_nested_in_alternative_is_detected() -> None:
    inner = (
        b"Content-Type: multipart/alternative; boundary=i\r\n\r\n"
        b"--i\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--i\r\nContent-Type: text/calendar\r\n\r\nBEGIN\r\n--i--"
    )
    assert detects(mixed(b"Content-Type: text/plain\r\n\r\nhello", inner))


def test_plain_mail_has_no_calendar() -> None:
    assert not detects(b"Subject: hi\r\n\r\nsee attached.ics file")


def test_ics_must_be_the_extension() -> None:
    assert not detects(mixed(b'Content-Type: application/pdf; name="ics.pdf"\r\n\r\nx'))
    assert not detects(mixed(b'Content-Type: application/pdf; name="invite_ics"\r\n\r\nx'))
