"""What SORT and THREAD read of a message, from its header block through the shared MIME readers.

The store keeps no summary fields per message, so the first SORT or THREAD
over a message cuts it at its empty line and reads everything any sort key
or threading needs into one `MessageFacts`; messages never change, so the
server keeps the facts (`sort_memory.FactsCache`) and
later commands read no mail at all. Readings follow Dovecot 2.3's
index-sort: FROM, TO and CC compare the first address's local part,
DISPLAYFROM and DISPLAYTO its decoded display name or else `local@domain`
(RFC 5957), DATE the Date header in UTC or the arrival time when the header
is missing or unusable; strings are kept in the titlecased, decomposed form
of `base_subject.collation_key`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from typing import NamedTuple, cast

from ..mime.addresses import parse_address_list, parse_first_address
from ..mime.dates import parse_date
from ..mime.headers import HeaderFields, parse_header_block
from .base_subject import base_subject, collation_key

__all__ = [
    "LIST_KEYS",
    "SORT_KEYS",
    "MessageFacts",
    "SortCriterion",
    "SortValue",
    "SortValues",
    "ThreadRow",
    "message_facts",
    "message_ids",
    "sort_values",
    "thread_rows",
]

#: Every sort key of RFC 5256 and RFC 5957 (REVERSE is a modifier, not a key).
SORT_KEYS = frozenset(
    {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
)
#: Keys answered from the store's message list, without reading the message.
LIST_KEYS = frozenset({"ARRIVAL", "SIZE"})

_MESSAGE_ID = re.compile(r"<([^<>]*)>")
_BLANKS = re.compile(r"[ \t\r\n]+")

SortValue = int | str
#: `thread.ThreadFields` as a plain tuple: number, uid, message id, references, base
#: subject, reply, has subject, date.
ThreadRow = tuple[int, int, str | None, tuple[str, ...], str, bool, bool, int]
#: One value per criterion of a sort program.
SortValues = tuple[SortValue, ...]


@dataclass(frozen=True, slots=True)
class SortCriterion:
    key: str
    reverse: bool = False


class MessageFacts(NamedTuple):
    """Everything SORT and THREAD compare of one message, strings in collation form.

    A NamedTuple because thousands cross from the worker pool at a time and
    tuples pickle several times faster than objects.
    """

    arrival: int
    size: int
    #: The Date header in UTC, or `arrival` when it is missing or unusable.
    date: int
    base_subject: str
    reply: bool
    has_subject: bool
    from_mailbox: str
    from_display: str
    to_mailbox: str
    to_display: str
    cc_mailbox: str
    message_id: str | None
    #: References' ids in order, or In-Reply-To's first id when References has none.
    references: tuple[str, ...]


def message_facts(header: bytes, arrival: int, size: int) -> MessageFacts:
    """Read one message's header block (everything before its empty line)."""
    fields = parse_header_block(header)
    subject = fields.first("Subject")
    base, reply = _subject_keys(subject)
    from_mailbox, from_display = _address_keys(fields.first("From"))
    to_mailbox, to_display = _address_keys(fields.first("To"))
    own = message_ids(fields.first("Message-ID"))
    references = tuple(message_ids(fields.first("References")))
    if not references:
        references = tuple(message_ids(fields.first("In-Reply-To"))[:1])
    return MessageFacts(
        arrival=arrival,
        size=size,
        date=_sent_date(fields, arrival),
        base_subject=base,
        reply=reply,
        has_subject=subject is not None,
        from_mailbox=from_mailbox,
        from_display=from_display,
        to_mailbox=to_mailbox,
        to_display=to_display,
        cc_mailbox=_mailbox_key(fields.first("Cc")),
        message_id=own[0] if own else None,
        references=references,
    )


def sort_values(criteria: tuple[SortCriterion, ...]) -> Callable[[MessageFacts], SortValues]:
    """What reads one value per criterion from a message's facts; ties are left to the
    caller (sequence order). One C-level attribute getter per sort program, made once."""
    return _values_getter(tuple(c.key for c in criteria))


@lru_cache(maxsize=64)
def _values_getter(keys: tuple[str, ...]) -> Callable[[MessageFacts], SortValues]:
    names = [_ATTRIBUTE[key] for key in keys]
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda facts: (one(facts),)
    return cast("Callable[[MessageFacts], SortValues]", attrgetter(*names))


def thread_rows(
    numbers: list[int], uids: list[int], facts: dict[int, MessageFacts]
) -> list[ThreadRow]:
    """What threading reads of each message (`thread.ThreadFields`' values), `numbers` being
    what the reply shows: plain tuples, since they cross to the worker pool by the
    thousand and a NamedTuple pickles four times slower; the pool makes them fields."""
    get = _THREAD_PART
    return [(number, uid, *get(facts[uid])) for number, uid in zip(numbers, uids, strict=True)]


def message_ids(value: str | None) -> list[str]:
    """The `<id>`s of a Message-ID, References or In-Reply-To value, blanks removed.

    Text between them (comments, phrases of old In-Reply-To forms) is skipped,
    and so is a bracketed word without an `@`, which is no message id.
    """
    if not value:
        return []
    found = []
    for match in _MESSAGE_ID.finditer(value):
        identifier = _BLANKS.sub("", match.group(1))
        if "@" in identifier:
            found.append(identifier)
    return found


_THREAD_PART = attrgetter(
    "message_id", "references", "base_subject", "reply", "has_subject", "date"
)
_ATTRIBUTE = {
    "ARRIVAL": "arrival", "SIZE": "size", "DATE": "date", "SUBJECT": "base_subject",
    "FROM": "from_mailbox", "TO": "to_mailbox", "CC": "cc_mailbox",
    "DISPLAYFROM": "from_display", "DISPLAYTO": "to_display",
}  # fmt: skip


# Senders, recipients and subjects repeat from message to message, and reading an address
# list is most of the cost of a message's facts: the last few thousand values are
# remembered (per process; a worker keeps its own), short ones only, so that what is kept
# stays small whatever the mail holds. Each is a pure function of the header value.
_REMEMBERED_VALUES = 4096
_REMEMBERED_LENGTH = 500


def _subject_keys(value: str | None) -> tuple[str, bool]:
    if value is not None and len(value) > _REMEMBERED_LENGTH:
        return base_subject(value)
    return _remembered_subject_keys(value)


def _address_keys(value: str | None) -> tuple[str, str]:
    """(mailbox, display) sort keys of a From or To value (FROM/TO, DISPLAYFROM/DISPLAYTO)."""
    if value is not None and len(value) > _REMEMBERED_LENGTH:
        return _read_address_keys(value)
    return _remembered_address_keys(value)


def _mailbox_key(value: str | None) -> str:
    """The CC sort key of a Cc value."""
    if value is not None and len(value) > _REMEMBERED_LENGTH:
        return collation_key(_first_mailbox(value))
    return _remembered_mailbox_key(value)


def _read_address_keys(value: str | None) -> tuple[str, str]:
    first = parse_first_address(value)
    return (
        collation_key(_first_mailbox(value, first.address)),
        collation_key(first.display_name or first.address),
    )


_remembered_subject_keys = lru_cache(maxsize=_REMEMBERED_VALUES)(base_subject)
_remembered_address_keys = lru_cache(maxsize=_REMEMBERED_VALUES)(_read_address_keys)


@lru_cache(maxsize=_REMEMBERED_VALUES)
def _remembered_mailbox_key(value: str | None) -> str:
    return collation_key(_first_mailbox(value))


def _first_mailbox(value: str | None, first_address: str | None = None) -> str:
    """The mailbox of the list's first entry, as ENVELOPE shows it: a group's name for a group.

    Dovecot sorts FROM/TO/CC by that entry (`Cc: user2: a@b;` sorts as
    "user2"); where the list does not parse, the first address's local part.
    """
    if value is None:
        return ""
    entries = parse_address_list(value)
    if entries:
        return entries[0].mailbox or ""
    if first_address is None:
        first_address = parse_first_address(value).address
    return _local_part(first_address)


def _local_part(address: str) -> str:
    return address.rpartition("@")[0] if "@" in address else address


def _sent_date(fields: HeaderFields, arrival: int) -> int:
    parsed = parse_date(fields.first("Date"))
    if parsed is None or parsed.timestamp == 0:
        return arrival
    return parsed.timestamp
