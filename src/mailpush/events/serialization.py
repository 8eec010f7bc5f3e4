"""Push transactions as JSON: the outbox row format and the `events tail` view.

Two shapes, for two readers:

* `transaction_to_json` / `transaction_from_json` — the stored form. A
  transaction is written inside the store's database transaction and read
  back by the dispatcher, possibly after a restart or by a newer mailpush,
  so the form is versioned (`"v": 1`), exact on round trip, compact (fields
  at their defaults are left out; outbox rows are written for every change)
  and strict on reading: a row that does not parse is reported, not guessed
  at, because a guessed notification is worse than a dead letter.
* `transaction_to_dict` — what an operator sees: each event with exactly the
  keys Dovecot's Lua driver puts in its event table
  (docs/dovecot-reference.md#event-table-fields), so a line can be compared
  with what a Lua script would receive.

Stored form, version 1 (keys in `[]` are omitted at their default)::

    {"v": 1, "id": str, "user": str, "mailbox": str, "service": str,
     "created": number, ["events": [event, ...]], ["group": str],
     ["group_size": int], ["group_index": int], ["deferred": bool],
     ["rolled_back": bool], ["status": status]}
    status  = {"messages": int, "recent": int, "unseen": int, "uidnext": int,
               "uidvalidity": int, "highestmodseq": int,
               ["first_unseen_uid": int], ["keywords": [str]]}
    event   = {"name": str, "mailbox": str, ["mailbox_old": str],
               ["uid": int], ["uid_validity": int], ["flags": [str]],
               ["keywords": [str]], ["flags_old": [str]], ["keywords_old": [str]],
               ["message": message]}
    message = {["from": str], ["to": str], ["from_address": str],
               ["from_display_name": str], ["to_address": str],
               ["to_display_name": str], ["subject": str], ["subject_raw": str],
               ["date": int], ["tz": int], ["message_id": str], ["snippet": str],
               ["size": int], ["has_calendar": bool]}

Version 2 is what the outbox recorder writes: the same envelope without
`events`, and instead the store's change record the events are made from
(`events.mapping.expand`, run by the reader), so the write transaction does
not build and encode thousands of events for a STORE on 1:*::

    {"v": 2, <the version-1 keys but "events">, "change": change}
    change  = {"type": "saved", "mailbox": str, "uidvalidity": int,
               ["delivery": true], ["source_mailbox": str], "messages": [saved, ...]}
            | {"type": "flags", "mailbox": str, "uidvalidity": int, "changes": [flag, ...]}
            | {"type": "expunged", "mailbox": str, "uidvalidity": int, "uids": [int],
               "modseq": int}
            | {"type": "mailbox_created", "mailbox": str, "uidvalidity": int,
               ["delivery": true]}
            | {"type": "mailbox_deleted" | "rolled_back", "mailbox": str}
            | {"type": "mailbox_renamed", "old": str, "new": str}
            | {"type": "subscription", "mailbox": str, "subscribed": bool}
    saved   = [uid, flags, [keyword, ...], size, internal_date, modseq, summary,
               source_uid or null]          (summary: store/message_summaries.py)
    flag    = [uid, old_flags, new_flags, [old keyword, ...], [new keyword, ...],
               modseq, recent]

The change's user is the envelope's. `transaction_from_json` reads both
versions, so rows written before version 2 are still delivered.

Defaults: `""` for plain strings, absent (None) for `subject`, `subject_raw`,
`message_id`, `mailbox_old`, `uid`, `uid_validity`, `status`,
`first_unseen_uid`; `group_size` 1; `0`, `false`, `[]`. Rows written before
the group, rollback and status fields existed read as lone, committed
transactions without a status, which is what they were.
An empty `subject` is therefore written, so "no Subject header" (absent) and
"empty Subject" (`""`) stay different, as they are for Lua (nil vs "").
"""

from __future__ import annotations

import json
from typing import Final, TypeVar, cast

from mailpush.events.mapping import expand, saved_summary
from mailpush.events.model import (
    EVENT_NAMES,
    CompactTransaction,
    MessageData,
    PushEvent,
    PushTransaction,
)
from mailpush.store.changes import (
    Change,
    FlagChange,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesExpunged,
    MessagesSaved,
    SavedMessage,
    SubscriptionChanged,
    TransactionRolledBack,
)
from mailpush.store.message_summaries import (
    SummaryFormatError,
    summary_from_values,
    summary_values,
)
from mailpush.store.models import MailboxStatus

__all__ = [
    "FORMAT_VERSION",
    "COMPACT_FORMAT_VERSION",
    "EventFormatError",
    "compact_transaction_to_json",
    "transaction_from_json",
    "transaction_to_dict",
    "transaction_to_json",
]

#: Bump when a reader of the previous version would misread the new form.
FORMAT_VERSION: Final = 1
#: The compact form (a change record instead of events), which the outbox recorder writes.
COMPACT_FORMAT_VERSION: Final = 2


class EventFormatError(ValueError):
    """A stored push transaction is not valid version-1 JSON of the expected shape.

    Raised by `transaction_from_json` (and by `transaction_to_json` for values
    JSON cannot carry, such as a NaN timestamp). It derives from ValueError
    rather than MailpushError because it lives here, next to the format it
    describes; the message names the offending field.
    """


def transaction_to_json(txn: PushTransaction) -> bytes:
    """The stored form of `txn`: compact UTF-8 JSON, see the module docstring."""
    document = _envelope_document(txn, FORMAT_VERSION)
    if txn.events:
        document["events"] = [_event_document(event) for event in txn.events]
    _add_envelope_tail(document, txn)
    return _encode(document, txn)


def compact_transaction_to_json(compact: CompactTransaction) -> bytes:
    """The version-2 form of `compact`: its envelope and its change record.

    Cheap enough for the write transaction: no event is made; a save's
    summaries are stored as they came (store/message_summaries.py).
    """
    document = _envelope_document(compact.envelope, COMPACT_FORMAT_VERSION)
    _add_envelope_tail(document, compact.envelope)
    document["change"] = _change_document(compact.change)
    return _encode(document, compact.envelope)


def _envelope_document(txn: PushTransaction, version: int) -> dict[str, object]:
    return {
        "v": version,
        "id": txn.id,
        "user": txn.user,
        "mailbox": txn.mailbox,
        "service": txn.service,
        "created": txn.created,
    }


def _add_envelope_tail(document: dict[str, object], txn: PushTransaction) -> None:
    if txn.group:
        document["group"] = txn.group
    if txn.group_size != 1:
        document["group_size"] = txn.group_size
    if txn.group_index:
        document["group_index"] = txn.group_index
    if txn.deferred:
        document["deferred"] = True
    if txn.rolled_back:
        document["rolled_back"] = True
    if txn.status is not None:
        document["status"] = _status_document(txn.status)


def _encode(document: dict[str, object], txn: PushTransaction) -> bytes:
    try:
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise EventFormatError(
            f"push transaction {txn.id!r}: cannot store it as JSON ({exc});"
            " 'created' must be a finite number"
        ) from exc
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (e.g. from a client-supplied mailbox name) has no UTF-8 form;
        # \u escapes keep the row valid UTF-8 and the round trip exact.
        return json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def transaction_from_json(data: bytes) -> PushTransaction:
    """Read back what `transaction_to_json` wrote.

    Raises EventFormatError for anything else: bytes that are not UTF-8 JSON,
    another format version, a missing or mistyped field, an unknown key or
    event name.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventFormatError(f"push transaction: not UTF-8 ({exc})") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventFormatError(f"push transaction: not JSON ({exc})") from exc
    reader = _Reader(document, "push transaction")
    version = reader.required("v", int)
    if version not in (FORMAT_VERSION, COMPACT_FORMAT_VERSION):
        raise EventFormatError(
            f"push transaction: format version {version} is not supported"
            f" (this mailpush reads versions {FORMAT_VERSION} and {COMPACT_FORMAT_VERSION});"
            " upgrade mailpush"
        )
    txn_id = reader.required("id", str)
    reader.where = f"push transaction {txn_id!r}"
    user = reader.required("user", str)
    mailbox = reader.required("mailbox", str)
    service = reader.required("service", str)
    created = float(reader.required("created", float))
    raw_events = reader.optional("events", list, []) if version == FORMAT_VERSION else []
    raw_change = (
        reader.required("change", dict) if version == COMPACT_FORMAT_VERSION else None
    )
    group = reader.optional("group", str, "")
    group_size = reader.optional("group_size", int, 1)
    group_index = reader.optional("group_index", int, 0)
    if group_size < 1 or not 0 <= group_index < group_size:
        raise EventFormatError(
            f"{reader.where}: group_index {group_index} is not a place in a group of"
            f" {group_size}"
        )
    deferred = reader.optional("deferred", bool, False)
    rolled_back = reader.optional("rolled_back", bool, False)
    raw_status = reader.optional("status", dict, None)
    reader.finish()
    events = tuple(
        _read_event(raw, f"{reader.where}, event {index}") for index, raw in enumerate(raw_events)
    )
    status = (
        None if raw_status is None
        else _read_status(raw_status, mailbox, f"{reader.where}, status")
    )
    txn = PushTransaction(
        id=txn_id, user=user, mailbox=mailbox, service=service, created=created, events=events,
        group=group, group_size=group_size, group_index=group_index, deferred=deferred,
        rolled_back=rolled_back, status=status,
    )
    if raw_change is None:
        return txn
    change = _read_change(raw_change, user, f"{reader.where}, change")
    return expand(CompactTransaction(txn, change))


def transaction_to_dict(txn: PushTransaction) -> dict[str, object]:
    """`txn` for humans and scripts (`mailpush events tail`), with Dovecot's field names.

    Each event carries exactly the keys Dovecot's Lua event table has for its
    type (`subject` and `message_id` only when the header exists); numbers are
    integers here, not Lua's floats, because JSON readers should not have to
    undo a Lua artefact.
    """
    return {
        "id": txn.id,
        "user": txn.user,
        "mailbox": txn.mailbox,
        "service": txn.service,
        "created": txn.created,
        "events": [_dovecot_event(event) for event in txn.events],
        **({"rolled_back": True} if txn.rolled_back else {}),
    }


# --- stored form ----------------------------------------------------------------------------

_MESSAGE_TEXT_FIELDS: Final = (
    ("from", "from_"),
    ("to", "to"),
    ("from_address", "from_address"),
    ("from_display_name", "from_display_name"),
    ("to_address", "to_address"),
    ("to_display_name", "to_display_name"),
)
_MESSAGE_OPTIONAL_TEXT_FIELDS: Final = (
    ("subject", "subject"),
    ("subject_raw", "subject_raw"),
    ("message_id", "message_id"),
)
_MESSAGE_INT_FIELDS: Final = (("date", "date"), ("tz", "tz"), ("size", "size"))
_EVENT_LIST_FIELDS: Final = ("flags", "keywords", "flags_old", "keywords_old")
_EVENT_INT_FIELDS: Final = ("uid", "uid_validity")


def _event_document(event: PushEvent) -> dict[str, object]:
    document: dict[str, object] = {"name": event.name, "mailbox": event.mailbox}
    if event.mailbox_old is not None:
        document["mailbox_old"] = event.mailbox_old
    for key in _EVENT_INT_FIELDS:
        value = getattr(event, key)
        if value is not None:
            document[key] = value
    for key in _EVENT_LIST_FIELDS:
        names: tuple[str, ...] = getattr(event, key)
        if names:
            document[key] = list(names)
    if event.message is not None:
        document["message"] = _message_document(event.message)
    return document


def _message_document(message: MessageData) -> dict[str, object]:
    document: dict[str, object] = {}
    for key, attribute in _MESSAGE_TEXT_FIELDS:
        text: str = getattr(message, attribute)
        if text:
            document[key] = text
    for key, attribute in _MESSAGE_OPTIONAL_TEXT_FIELDS:
        optional: str | None = getattr(message, attribute)
        if optional is not None:
            document[key] = optional
    for key, attribute in _MESSAGE_INT_FIELDS:
        number: int = getattr(message, attribute)
        if number:
            document[key] = number
    if message.snippet:
        document["snippet"] = message.snippet
    if message.has_calendar:
        document["has_calendar"] = True
    return document


# --- the change record of the compact form --------------------------------------------------


def _change_document(change: Change) -> dict[str, object]:
    if isinstance(change, MessagesSaved):
        saved: dict[str, object] = {
            "type": "saved", "mailbox": change.mailbox, "uidvalidity": change.uidvalidity,
        }
        if change.delivery:
            saved["delivery"] = True
        if change.source_mailbox is not None:
            saved["source_mailbox"] = change.source_mailbox
        saved["messages"] = [
            [m.uid, m.flags, list(m.keywords), m.size, m.internal_date, m.modseq,
             summary_values(saved_summary(change, m)), m.source_uid]
            for m in change.messages
        ]
        return saved
    if isinstance(change, FlagsChanged):
        return {
            "type": "flags", "mailbox": change.mailbox, "uidvalidity": change.uidvalidity,
            "changes": [
                [c.uid, c.old_flags, c.new_flags, list(c.old_keywords), list(c.new_keywords),
                 c.modseq, c.recent]
                for c in change.changes
            ],
        }
    if isinstance(change, MessagesExpunged):
        return {
            "type": "expunged", "mailbox": change.mailbox, "uidvalidity": change.uidvalidity,
            "uids": list(change.uids), "modseq": change.modseq,
        }
    if isinstance(change, MailboxCreated):
        created: dict[str, object] = {
            "type": "mailbox_created", "mailbox": change.mailbox,
            "uidvalidity": change.uidvalidity,
        }
        if change.delivery:
            created["delivery"] = True
        return created
    if isinstance(change, MailboxDeleted):
        return {"type": "mailbox_deleted", "mailbox": change.mailbox}
    if isinstance(change, TransactionRolledBack):
        return {"type": "rolled_back", "mailbox": change.mailbox}
    if isinstance(change, MailboxRenamed):
        return {"type": "mailbox_renamed", "old": change.old, "new": change.new}
    if isinstance(change, SubscriptionChanged):
        return {"type": "subscription", "mailbox": change.mailbox, "subscribed": change.subscribed}
    raise EventFormatError(f"cannot store change record {type(change).__name__!r}")


def _read_change(raw: dict[str, object], user: str, where: str) -> Change:
    reader = _Reader(raw, where)
    kind = reader.required("type", str)
    change: Change
    if kind == "saved":
        change = MessagesSaved(
            user, reader.required("mailbox", str), reader.required("uidvalidity", int),
            delivery=reader.optional("delivery", bool, False),
            source_mailbox=reader.optional("source_mailbox", str, None),
            messages=tuple(
                _read_saved(item, f"{where}, message {index}")
                for index, item in enumerate(reader.required("messages", list))
            ),
        )
    elif kind == "flags":
        change = FlagsChanged(
            user, reader.required("mailbox", str), reader.required("uidvalidity", int),
            tuple(
                _read_flag_change(item, f"{where}, flag change {index}")
                for index, item in enumerate(reader.required("changes", list))
            ),
        )
    elif kind == "expunged":
        mailbox, uidvalidity = reader.required("mailbox", str), reader.required("uidvalidity", int)
        uids = tuple(_ints(reader.required("uids", list), f"{where}, uids"))
        change = MessagesExpunged(user, mailbox, uidvalidity, uids, reader.required("modseq", int))
    elif kind == "mailbox_created":
        change = MailboxCreated(
            user, reader.required("mailbox", str), reader.required("uidvalidity", int),
            delivery=reader.optional("delivery", bool, False),
        )
    elif kind == "mailbox_deleted":
        change = MailboxDeleted(user, reader.required("mailbox", str))
    elif kind == "rolled_back":
        change = TransactionRolledBack(user, reader.required("mailbox", str))
    elif kind == "mailbox_renamed":
        change = MailboxRenamed(user, reader.required("old", str), reader.required("new", str))
    elif kind == "subscription":
        change = SubscriptionChanged(
            user, reader.required("mailbox", str), reader.required("subscribed", bool)
        )
    else:
        raise EventFormatError(f"{where}: unknown change type {kind!r}")
    reader.finish()
    return change


def _read_saved(item: object, where: str) -> SavedMessage:
    values = _fixed_list(item, 8, where)
    uid, flags, size, internal_date, modseq = _ints(
        [values[0], values[1], values[3], values[4], values[5]], where
    )
    source_uid = values[7]
    if source_uid is not None and not _is_instance(source_uid, int):
        raise EventFormatError(f"{where}: the source uid must be an integer or null")
    try:
        summary = summary_from_values(values[6])
    except SummaryFormatError as exc:
        raise EventFormatError(f"{where}: {exc}") from None
    return SavedMessage(
        uid, flags, _strings(values[2], where), size, internal_date, modseq, summary,
        None if source_uid is None else int(cast(int, source_uid)),
    )


def _read_flag_change(item: object, where: str) -> FlagChange:
    values = _fixed_list(item, 7, where)
    uid, old_flags, new_flags, modseq = _ints([values[0], values[1], values[2], values[5]], where)
    if not isinstance(values[6], bool):
        raise EventFormatError(f"{where}: 'recent' must be true or false")
    return FlagChange(
        uid, old_flags, new_flags, _strings(values[3], where), _strings(values[4], where),
        modseq, values[6],
    )


def _fixed_list(item: object, length: int, where: str) -> list[object]:
    if not isinstance(item, list) or len(item) != length:
        raise EventFormatError(f"{where}: expected a list of {length} values")
    return item


def _ints(values: list[object], where: str) -> list[int]:
    for value in values:
        if not _is_instance(value, int):
            raise EventFormatError(f"{where}: expected integers, found {_json_type(value)}")
    return cast(list[int], values)


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EventFormatError(f"{where}: expected a list of strings")
    return tuple(cast(list[str], value))


_STATUS_INT_FIELDS: Final = (
    "messages", "recent", "unseen", "uidnext", "uidvalidity", "highestmodseq",
)


def _status_document(status: MailboxStatus) -> dict[str, object]:
    document: dict[str, object] = {key: getattr(status, key) for key in _STATUS_INT_FIELDS}
    if status.first_unseen_uid is not None:
        document["first_unseen_uid"] = status.first_unseen_uid
    if status.keywords:
        document["keywords"] = list(status.keywords)
    return document


def _read_status(raw: dict[str, object], mailbox: str, where: str) -> MailboxStatus:
    reader = _Reader(raw, where)
    numbers = {key: reader.required(key, int) for key in _STATUS_INT_FIELDS}
    status = MailboxStatus(
        mailbox=mailbox,
        first_unseen_uid=reader.optional("first_unseen_uid", int, None),
        keywords=reader.optional_names("keywords"),
        **numbers,
    )
    reader.finish()
    return status


def _read_event(raw: object, where: str) -> PushEvent:
    reader = _Reader(raw, where)
    name = reader.required("name", str)
    if name not in EVENT_NAMES:
        raise EventFormatError(
            f"{where}: unknown event name {name!r} (known: {', '.join(EVENT_NAMES)})"
        )
    mailbox = reader.required("mailbox", str)
    mailbox_old = reader.optional("mailbox_old", str, None)
    uid = reader.optional("uid", int, None)
    uid_validity = reader.optional("uid_validity", int, None)
    lists = {key: reader.optional_names(key) for key in _EVENT_LIST_FIELDS}
    raw_message = reader.optional("message", dict, None)
    reader.finish()
    message = None if raw_message is None else _read_message(raw_message, f"{where}, message")
    return PushEvent(
        name=name,
        mailbox=mailbox,
        mailbox_old=mailbox_old,
        uid=uid,
        uid_validity=uid_validity,
        flags=lists["flags"],
        keywords=lists["keywords"],
        flags_old=lists["flags_old"],
        keywords_old=lists["keywords_old"],
        message=message,
    )


def _read_message(raw: dict[str, object], where: str) -> MessageData:
    reader = _Reader(raw, where)
    message = MessageData(
        from_=reader.optional("from", str, ""),
        to=reader.optional("to", str, ""),
        from_address=reader.optional("from_address", str, ""),
        from_display_name=reader.optional("from_display_name", str, ""),
        to_address=reader.optional("to_address", str, ""),
        to_display_name=reader.optional("to_display_name", str, ""),
        subject=reader.optional("subject", str, None),
        subject_raw=reader.optional("subject_raw", str, None),
        date=reader.optional("date", int, 0),
        tz=reader.optional("tz", int, 0),
        message_id=reader.optional("message_id", str, None),
        snippet=reader.optional("snippet", str, ""),
        size=reader.optional("size", int, 0),
        has_calendar=reader.optional("has_calendar", bool, False),
    )
    reader.finish()
    return message


_T = TypeVar("_T")


class _Reader:
    """Typed access to one JSON object, so every error names its field and place.

    Unknown keys are an error (`finish`): with a version key in the row, a
    field this reader does not know means the row was not written by this
    format, and dropping it would break the exact round trip silently.
    """

    def __init__(self, raw: object, where: str) -> None:
        if not isinstance(raw, dict):
            raise EventFormatError(f"{where}: expected a JSON object, got {_json_type(raw)}")
        self._raw: dict[str, object] = raw
        self._seen: set[str] = set()
        self.where = where

    def required(self, key: str, kind: type[_T]) -> _T:
        if key not in self._raw:
            raise EventFormatError(f"{self.where}: missing field {key!r}")
        return self._typed(key, kind)

    def optional(self, key: str, kind: type[_T], default: _T) -> _T:
        if key not in self._raw:
            return default
        return self._typed(key, kind)

    def optional_names(self, key: str) -> tuple[str, ...]:
        values: list[object] = self.optional(key, list, [])
        for value in values:
            if not isinstance(value, str):
                raise EventFormatError(
                    f"{self.where}: field {key!r} must be a list of strings,"
                    f" found {_json_type(value)}"
                )
        return tuple(cast(list[str], values))

    def finish(self) -> None:
        unknown = sorted(set(self._raw) - self._seen)
        if unknown:
            raise EventFormatError(f"{self.where}: unknown field(s) {', '.join(unknown)}")

    def _typed(self, key: str, kind: type[_T]) -> _T:
        self._seen.add(key)
        value = self._raw[key]
        if not _is_instance(value, kind):
            raise EventFormatError(
                f"{self.where}: field {key!r} must be {_KIND_NAMES.get(kind, kind.__name__)},"
                f" found {_json_type(value)}"
            )
        return cast(_T, value)


_KIND_NAMES: Final[dict[type, str]] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
}


def _is_instance(value: object, kind: type) -> bool:
    # JSON booleans arrive as Python bools, which are ints; never accept one for the other.
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is float:
        # A writer may drop the ".0" of a whole number; the value is the same.
        return isinstance(value, int | float)
    return isinstance(value, kind)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


# --- Dovecot view ---------------------------------------------------------------------------

#: Keys of each event table in Dovecot's Lua driver, beyond `name` and `mailbox`.
_DOVECOT_EXTRA_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "MailboxCreate": (),
    "MailboxDelete": (),
    "MailboxSubscribe": (),
    "MailboxUnsubscribe": (),
    "MailboxRename": ("mailbox_old",),
    "MessageRead": ("uid", "uid_validity"),
    "MessageTrash": ("uid", "uid_validity"),
    "MessageExpunge": ("uid", "uid_validity"),
    "FlagsSet": ("uid", "uid_validity", "flags", "keywords"),
    "FlagsClear": ("uid", "uid_validity", "flags", "keywords", "flags_old", "keywords_old"),
    "MessageNew": ("uid", "uid_validity", "flags", "keywords"),
    "MessageAppend": ("uid", "uid_validity", "flags", "keywords"),
}


def _dovecot_event(event: PushEvent) -> dict[str, object]:
    table: dict[str, object] = {"name": event.name, "mailbox": event.mailbox}
    for key in _DOVECOT_EXTRA_KEYS[event.name]:
        value = getattr(event, key)
        table[key] = list(value) if isinstance(value, tuple) else value
    if event.message is not None and event.name in ("MessageNew", "MessageAppend"):
        table.update(_dovecot_message_fields(event.message))
    return table


def _dovecot_message_fields(message: MessageData) -> dict[str, object]:
    fields: dict[str, object] = {
        "from": message.from_,
        "to": message.to,
        "from_address": message.from_address,
        "from_display_name": message.from_display_name,
        "to_address": message.to_address,
        "to_display_name": message.to_display_name,
    }
    # nil in Lua when the header is missing: the key is absent
    # (docs/dovecot-reference.md#event-table-fields).
    if message.subject is not None:
        fields["subject"] = message.subject
    if message.message_id is not None:
        fields["message_id"] = message.message_id
    fields["date"] = message.date
    fields["tz"] = message.tz
    fields["snippet"] = message.snippet
    return fields
