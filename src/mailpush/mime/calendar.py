"""Does a message carry a calendar invitation? As the Chronos driver decides, and a little more.

Chronos only pushes mail that holds an invitation: it walks the MIME tree
breadth-first and accepts a part whose Content-Type is text/calendar, or
whose Content-Disposition `filename` ends in `.ics` (extension after the
last dot, case-insensitive; docs/dovecot-reference.md#calendar-detection).

This check is a deliberate superset of Chronos: it also accepts a part whose
only hint is a Content-Type `name=...ics` parameter, as some clients send
invitations as `application/octet-stream; name="invite.ics"` with no
filename in the disposition. Product wants those pushed too; Chronos would
skip them. File names are RFC 2231-decoded and, for this superset, also
RFC 2047-decoded.
"""

from __future__ import annotations

from mailpush.mime.headers import decode_encoded_words
from mailpush.mime.structure import MimePart

__all__ = ["has_calendar"]


def has_calendar(root: MimePart) -> bool:
    """Whether any part of the tree is a calendar object; never raises."""
    try:
        return any(_is_calendar_part(part) for part in root.walk_breadth_first())
    except Exception:  # detection failing must not fail a delivery
        return False


def _is_calendar_part(part: MimePart) -> bool:
    if part.content_type is not None and part.content_type.value == "text/calendar":
        return True
    names: list[str] = []
    if part.disposition is not None and "filename" in part.disposition.params:
        names.append(part.disposition.params["filename"])
    if part.content_type is not None and "name" in part.content_type.params:
        names.append(part.content_type.params["name"])
    return any(_has_ics_extension(name) for name in names)


def _has_ics_extension(name: str) -> bool:
    for candidate in (name, decode_encoded_words(name)):
        _, dot, extension = candidate.rpartition(".")
        if dot and extension.lower() == "ics":
            return True
    return False
