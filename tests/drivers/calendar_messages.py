"""Messages for the calendar-invitation tests: an iTIP invite, plain mail, an .ics attachment."""

from __future__ import annotations


def invite(message_id: str = "<invite-1@example.net>", padding: int = 0) -> bytes:
    """An iTIP REQUEST as calendar clients send it: text/plain + text/calendar alternatives."""
    filler = ("X" * 70 + "\r\n") * (padding // 72 + 1) if padding else ""
    return (
        "From: Organizer <organizer@example.net>\r\n"
        "To: alice@example.org\r\n"
        "Subject: Invitation: Planning =?UTF-8?Q?f=C3=BCr?= Q3\r\n"
        f"Message-ID: {message_id}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b1"\r\n'
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "You are invited to \"Planning für Q3\".\r\n"
        f"{filler}"
        "--b1\r\n"
        "Content-Type: text/calendar; charset=utf-8; method=REQUEST\r\n"
        "\r\n"
        "BEGIN:VCALENDAR\r\n"
        "PRODID:-//Example//Test//EN\r\n"
        "VERSION:2.0\r\n"
        "METHOD:REQUEST\r\n"
        "BEGIN:VEVENT\r\n"
        "UID:planning-q3@example.net\r\n"
        "DTSTAMP:20260101T100000Z\r\n"
        "DTSTART:20260110T090000Z\r\n"
        "DTEND:20260110T100000Z\r\n"
        "SUMMARY:Planning für Q3\r\n"
        "ORGANIZER;CN=Organizer:mailto:organizer@example.net\r\n"
        "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:alice@example.org\r\n"
        "END:VEVENT\r\n"
        "END:VCALENDAR\r\n"
        "--b1--\r\n"
    ).encode()


def plain(subject: str = "Lunch?") -> bytes:
    return (
        f"From: bob@example.net\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
        "Message-ID: <plain@example.net>\r\n\r\nSee you at noon.\r\n"
    ).encode()


def ics_attachment() -> bytes:
    """An invitation attached with a generic type; only the file name says .ics."""
    return (
        b"From: organizer@example.net\r\nTo: alice@example.org\r\nSubject: Meeting\r\n"
        b"Message-ID: <attached@example.net>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        b"--m\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n"
        b"--m\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="meeting.ICS"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        b"QkVHSU46VkNBTEVOREFSDQpFTkQ6VkNBTEVOREFSDQo=\r\n"
        b"--m--\r\n"
    )
