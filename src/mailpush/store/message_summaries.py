"""A message's push summary as the store keeps it: computed once, before the write.

Push events carry header and body facts of each saved message
(`mime.summarize`). Parsing a body is the costly part of recording a save,
and the store's write transaction is shared by every writer, so the summary
is computed before the transaction (off the event loop), stored beside the
body (`bodies.summary`) and read back with it: a COPY or MOVE, which shares
the body, parses nothing and reads no body. While the store records no
pushes (no push driver) the parse is skipped and the column left empty; a
COPY made once pushes are recorded makes the summary then and stores it.

The stored form is a JSON array of the fields in `MessageSummary` order —
compact, since it is also what the outbox rows of saves carry.
"""

from __future__ import annotations

import json
from dataclasses import fields
from operator import attrgetter
from typing import Final

from ..mime.summary import MessageSummary

__all__ = ["SummaryFormatError", "summary_from_text", "summary_to_text", "summary_values"]

_FIELDS: Final = tuple(f.name for f in fields(MessageSummary))
#: Every field's value, in `_FIELDS` order. Not `dataclasses.astuple`, which deep-copies
#: each value: the fields are scalars, and this runs inside the store's write transaction
#: for every saved message (its stored summary and its outbox row).
_VALUES: Final = attrgetter(*_FIELDS)
_OPTIONAL_TEXT: Final = (str, type(None))
#: The JSON type of each field, in `_FIELDS` order.
_TYPES: Final[tuple[type | tuple[type, ...], ...]] = (
    str, str, str, str, str, str, _OPTIONAL_TEXT, _OPTIONAL_TEXT, int, int, _OPTIONAL_TEXT, str,
    bool,
)


class SummaryFormatError(ValueError):
    """A stored summary is not the array `summary_to_text` writes; the message says where."""


def summary_values(summary: MessageSummary) -> list[object]:
    """The summary as a JSON-ready list (the outbox form embeds it as it is)."""
    return list(_VALUES(summary))


def summary_to_text(summary: MessageSummary) -> str:
    """The stored form of `summary`."""
    return json.dumps(summary_values(summary), ensure_ascii=False, separators=(",", ":"))


def summary_from_text(text: str) -> MessageSummary:
    """Read back what `summary_to_text` wrote; SummaryFormatError for anything else."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SummaryFormatError(f"message summary: not JSON ({exc})") from None
    return summary_from_values(values)


def summary_from_values(values: object) -> MessageSummary:
    """A summary from its list form (as read from JSON)."""
    if not isinstance(values, list) or len(values) != len(_FIELDS):
        raise SummaryFormatError(
            f"message summary: expected a list of {len(_FIELDS)} values ({', '.join(_FIELDS)})"
        )
    for name, kind, value in zip(_FIELDS, _TYPES, values, strict=True):
        # JSON booleans are ints to Python: never take one for the other.
        wrong_bool = isinstance(value, bool) != (kind is bool)
        if wrong_bool or not isinstance(value, kind):
            raise SummaryFormatError(f"message summary: field {name!r} has the wrong type")
    return MessageSummary(*values)
