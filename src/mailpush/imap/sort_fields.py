"""What SORT and THREAD read of a message, from its header block through the shared MIME readers.

The store keeps no summary fields per message, so the first SORT or THREAD
over a message cuts it at its empty line and reads everything any sort key
or threading needs into one `MessageFacts`; messages never change, so the
server keeps the facts (`FactsCache`) and later commands read no mail at
all. Readings follow Dovecot 2.3's index-sort: FROM, TO and CC compare the
first address's local part, DISPLAYFROM and DISPLAYTO its decoded display
name or else `local@domain` (RFC 5957), DATE the Date header in UTC or the
arrival time when the header is missing or unusable; strings are kept in
the titlecased, decomposed form of `base_subject.collation_key`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

from ..mime.addresses import parse_address_list, parse_first_address
from ..mime.dates import parse_date
from ..mime.headers import HeaderFields, parse_header_block
from .base_subject import base_subject, collation_key
from .thread import ThreadFields

__all__ = [
    "LIST_KEYS",
    "SORT_KEYS",
    "FactsCache",
    "MessageFacts",
    "SortCriterion",
    "SortValue",
    "message_facts",
    "message_ids",
    "sort_values",
    "thread_fields",
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


@dataclass(frozen=True, slots=True)
class SortCriterion:
    key: str
    reverse: bool = False


class MessageFacts(NamedTuple):
    """Everything SORT and THREAD compare of one message, strings in collation form.

    A NamedTuple, like `thread.ThreadFields`, because thousands cross from the
    worker pool at a time and tuples pickle several times faster.
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
    base, reply = base_subject(subject)
    sender = parse_first_address(fields.first("From"))
    recipient = parse_first_address(fields.first("To"))
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
        from_mailbox=collation_key(_first_mailbox(fields.first("From"), sender.address)),
        from_display=collation_key(sender.display_name or sender.address),
        to_mailbox=collation_key(_first_mailbox(fields.first("To"), recipient.address)),
        to_display=collation_key(recipient.display_name or recipient.address),
        cc_mailbox=collation_key(_first_mailbox(fields.first("Cc"))),
        message_id=own[0] if own else None,
        references=references,
    )


def sort_values(criteria: tuple[SortCriterion, ...], facts: MessageFacts) -> tuple[SortValue, ...]:
    """One value per criterion; ties are left to the caller (sequence order)."""
    return tuple(getattr(facts, _ATTRIBUTE[c.key]) for c in criteria)


def thread_fields(number: int, uid: int, facts: MessageFacts) -> ThreadFields:
    """What threading reads of a message, `number` being what the reply shows."""
    return ThreadFields(
        number, uid, facts.message_id, facts.references, facts.base_subject, facts.reply,
        facts.has_subject, facts.date,
    )  # fmt: skip


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


class FactsCache:
    """`MessageFacts` per (user, mailbox, UIDVALIDITY, UID), least recently used out first.

    Shared by every connection of a server, like `fetch.StructureCache`: a
    message never changes, so the facts never go stale; a renamed or
    re-created mailbox gets a new UIDVALIDITY. An entry is a few hundred
    bytes.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, str, int, int], MessageFacts] = OrderedDict()

    def get(self, key: tuple[str, str, int, int]) -> MessageFacts | None:
        facts = self._entries.get(key)
        if facts is not None:
            self._entries.move_to_end(key)
        return facts

    def put(self, key: tuple[str, str, int, int], facts: MessageFacts) -> None:
        self._entries[key] = facts
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)


_ATTRIBUTE = {
    "ARRIVAL": "arrival", "SIZE": "size", "DATE": "date", "SUBJECT": "base_subject",
    "FROM": "from_mailbox", "TO": "to_mailbox", "CC": "cc_mailbox",
    "DISPLAYFROM": "from_display", "DISPLAYTO": "to_display",
}  # fmt: skip


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
