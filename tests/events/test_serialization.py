"""The stored JSON form of push transactions and the Dovecot-named `events tail` view."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpush.events import (
    EVENT_NAMES,
    EventFormatError,
    MessageData,
    PushEvent,
    PushTransaction,
    transaction_from_json,
    transaction_to_dict,
    transaction_to_json,
    transactions_for_change,
)
from mailpush.mime import summarize
from mailpush.store import MailboxStatus
from mailpush.store import flags as F
from mailpush.store.changes import (
    FlagChange,
    FlagsChanged,
    MailboxRenamed,
    MessagesExpunged,
    MessagesSaved,
    SavedMessage,
)

UIDVALIDITY = 1795395289


def message_data(**overrides: object) -> MessageData:
    fields: dict[str, object] = {
        "from_": "=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.net>",
        "to": "alice@example.org",
        "from_address": "joerg@example.net",
        "from_display_name": "Jörg Müller",
        "to_address": "alice@example.org",
        "to_display_name": "",
        "subject": "Grüße aus Münchenund Köln",
        "subject_raw": "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?= =?ISO-8859-1?Q?und_K=F6ln?=",
        "date": 1672646400,
        "tz": 120,
        "message_id": "<plain.1@example.net>",
        "snippet": "Hello Alice",
        "size": 321,
        "has_calendar": False,
    }
    fields.update(overrides)
    return MessageData(**fields)  # type: ignore[arg-type]


def new_event(message: MessageData, **overrides: object) -> PushEvent:
    fields: dict[str, object] = {
        "name": "MessageNew",
        "mailbox": "INBOX",
        "uid": 1,
        "uid_validity": UIDVALIDITY,
        "message": message,
    }
    fields.update(overrides)
    return PushEvent(**fields)  # type: ignore[arg-type]


def transaction(*events: PushEvent, mailbox: str = "INBOX") -> PushTransaction:
    return PushTransaction(
        id="0f3c", user="alice", mailbox=mailbox, service="lmtp", created=1.5, events=events
    )


# --- round trip ----------------------------------------------------------------------------


def mapped_transactions() -> list[PushTransaction]:
    raw = b"Subject: Hi\r\nFrom: a@example.org\r\n\r\nBody\r\n"
    saved = SavedMessage(1, F.SEEN, ("$Label1",), len(raw), 0, 1, summarize(raw))
    return [
        *transactions_for_change(MailboxRenamed("alice", "Work", "Work Renamed")),
        *transactions_for_change(MessagesSaved("alice", "INBOX", UIDVALIDITY, (saved,), True)),
        *transactions_for_change(
            FlagsChanged(
                "alice",
                "INBOX",
                UIDVALIDITY,
                (FlagChange(1, F.SEEN, F.DELETED, ("A",), ("B",), 2, recent=True),),
            )
        ),
        *transactions_for_change(MessagesExpunged("alice", "INBOX", UIDVALIDITY, (1, 2), 3)),
    ]


@pytest.mark.parametrize("txn", mapped_transactions(), ids=lambda t: t.events[0].name)
def test_mapped_transactions_round_trip_exactly(txn: PushTransaction) -> None:
    assert transaction_from_json(transaction_to_json(txn)) == txn


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param("Grüße aus Münchenund Köln", id="decoded_non_ascii"),
        pytest.param("This is a folded\n  subject line with raw UTF-8 ünïcödé", id="folded"),
        pytest.param("", id="empty_header"),
        pytest.param(None, id="no_header"),
        pytest.param('quote " backslash \\ tab \t nul \x00', id="json_special_characters"),
        pytest.param("emoji 📬 and RTL שלום and U+2028 \u2028", id="astral_and_separators"),
        pytest.param("\ufffd replaced invalid UTF-8", id="replacement_character"),
        pytest.param("lone surrogate \udcff", id="lone_surrogate"),
    ],
)
def test_odd_subjects_round_trip_exactly(subject: str | None) -> None:
    txn = transaction(new_event(message_data(subject=subject, subject_raw=subject)))
    data = transaction_to_json(txn)
    data.decode("utf-8")  # always valid UTF-8, whatever the text
    assert transaction_from_json(data) == txn


def test_non_ascii_is_stored_as_utf8_not_escapes() -> None:
    data = transaction_to_json(transaction(new_event(message_data()), mailbox="Entwürfe"))
    assert "Entwürfe".encode() in data
    assert "Jörg Müller".encode() in data
    assert b"\\u" not in data


def test_empty_subject_and_missing_subject_stay_different() -> None:
    empty = transaction_to_json(transaction(new_event(message_data(subject=""))))
    missing = transaction_to_json(transaction(new_event(message_data(subject=None))))
    assert b'"subject":""' in empty
    assert b'"subject"' not in missing


def test_stored_form_is_compact_versioned_and_omits_defaults() -> None:
    txn = PushTransaction(
        id="abc",
        user="alice",
        mailbox="Work",
        service="imap",
        created=1700000000.25,
        events=(PushEvent("MailboxCreate", "Work"),),
    )
    assert transaction_to_json(txn) == (
        b'{"v":1,"id":"abc","user":"alice","mailbox":"Work","service":"imap",'
        b'"created":1700000000.25,"events":[{"name":"MailboxCreate","mailbox":"Work"}]}'
    )


def test_message_fields_at_their_defaults_are_left_out() -> None:
    bare = message_data(
        from_="",
        to="",
        from_address="",
        from_display_name="",
        to_address="",
        to_display_name="",
        subject=None,
        subject_raw=None,
        date=0,
        tz=0,
        message_id=None,
        snippet="",
        size=0,
    )
    data = transaction_to_json(transaction(new_event(bare)))
    assert b'"message":{}' in data
    assert transaction_from_json(data).events[0].message == bare


def test_transaction_without_events_round_trips() -> None:
    txn = transaction()
    assert b"events" not in transaction_to_json(txn)
    assert transaction_from_json(transaction_to_json(txn)) == txn


def test_whole_number_timestamp_written_without_fraction_is_read() -> None:
    data = b'{"v":1,"id":"a","user":"u","mailbox":"m","service":"imap","created":17}'
    assert transaction_from_json(data).created == 17.0


def test_timestamp_json_cannot_carry_is_refused_when_storing() -> None:
    txn = PushTransaction("a", "u", "m", "imap", math.nan)
    with pytest.raises(EventFormatError, match="finite"):
        transaction_to_json(txn)


names = st.lists(st.text(max_size=12), max_size=4).map(tuple)
optional_int = st.none() | st.integers(min_value=0, max_value=2**32 - 1)
messages = st.builds(
    MessageData,
    from_=st.text(),
    to=st.text(),
    from_address=st.text(),
    from_display_name=st.text(),
    to_address=st.text(),
    to_display_name=st.text(),
    subject=st.none() | st.text(),
    subject_raw=st.none() | st.text(),
    date=st.integers(min_value=-(2**40), max_value=2**40),
    tz=st.integers(min_value=-1440, max_value=1440),
    message_id=st.none() | st.text(),
    snippet=st.text(max_size=200),
    size=st.integers(min_value=0, max_value=2**40),
    has_calendar=st.booleans(),
)
events = st.builds(
    PushEvent,
    name=st.sampled_from(EVENT_NAMES),
    mailbox=st.text(),
    mailbox_old=st.none() | st.text(),
    uid=optional_int,
    uid_validity=optional_int,
    flags=names,
    keywords=names,
    flags_old=names,
    keywords_old=names,
    message=st.none() | messages,
)
transactions = st.builds(
    PushTransaction,
    id=st.text(min_size=1),
    user=st.text(),
    mailbox=st.text(),
    service=st.sampled_from(["imap", "lmtp"]),
    created=st.floats(allow_nan=False, allow_infinity=False),
    events=st.lists(events, max_size=5).map(tuple),
)


@given(transactions)
def test_any_transaction_round_trips_exactly(txn: PushTransaction) -> None:
    data = transaction_to_json(txn)
    data.decode("utf-8")
    assert transaction_from_json(data) == txn


@given(transactions)
def test_any_transaction_has_a_json_tail_line(txn: PushTransaction) -> None:
    assert json.loads(json.dumps(transaction_to_dict(txn)))["id"] == txn.id


# --- invalid input -------------------------------------------------------------------------

VALID = {"v": 1, "id": "a", "user": "u", "mailbox": "m", "service": "imap", "created": 1.0}
EVENT = {"name": "MessageRead", "mailbox": "m", "uid": 1, "uid_validity": 2}


def with_event(**fields: object) -> bytes:
    return json.dumps({**VALID, "events": [{**EVENT, **fields}]}).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"\xff\xfe", "not UTF-8", id="not_utf8"),
        pytest.param(b"{", "not JSON", id="not_json"),
        pytest.param(b"[]", "expected a JSON object, got a list", id="not_an_object"),
        pytest.param(
            json.dumps({**VALID, "v": 3}).encode(), "format version 3", id="newer_version"
        ),
        pytest.param(
            json.dumps({k: v for k, v in VALID.items() if k != "user"}).encode(),
            "missing field 'user'",
            id="missing_field",
        ),
        pytest.param(
            json.dumps({**VALID, "created": "now"}).encode(),
            "'created' must be a number, found a string",
            id="created_not_a_number",
        ),
        pytest.param(
            json.dumps({**VALID, "extra": 1}).encode(), "unknown field(s) extra", id="unknown_key"
        ),
        pytest.param(with_event(uid=True), "'uid' must be an integer", id="boolean_for_int"),
        pytest.param(with_event(uid=1.5), "'uid' must be an integer", id="float_for_int"),
        pytest.param(with_event(name="Login"), "unknown event name 'Login'", id="unknown_event"),
        pytest.param(
            with_event(flags=["\\Seen", 8]), "list of strings", id="flag_list_with_a_number"
        ),
        pytest.param(
            with_event(message={"subject": None}),
            "'subject' must be a string, found null",
            id="null_subject",
        ),
        pytest.param(
            with_event(message={"has_calendar": 1}),
            "'has_calendar' must be true or false",
            id="number_for_bool",
        ),
        pytest.param(with_event(message=[]), "'message' must be an object", id="message_list"),
    ],
)
def test_invalid_stored_form_is_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(EventFormatError) as caught:
        transaction_from_json(data)
    assert message in str(caught.value)


def test_format_error_is_a_value_error() -> None:
    assert issubclass(EventFormatError, ValueError)


def test_error_names_the_transaction_and_event() -> None:
    with pytest.raises(EventFormatError, match=r"push transaction 'a', event 0: .*'mailbox'"):
        transaction_from_json(with_event(mailbox=3))


# --- the Dovecot view (events tail) --------------------------------------------------------

#: The exact key sets of Lua's event tables (docs/dovecot-reference.md#event-table-fields).
MESSAGE_KEYS = {
    "date",
    "flags",
    "from",
    "from_address",
    "from_display_name",
    "keywords",
    "mailbox",
    "message_id",
    "name",
    "snippet",
    "subject",
    "to",
    "to_address",
    "to_display_name",
    "tz",
    "uid",
    "uid_validity",
}
OBSERVED_KEYS: dict[str, set[str]] = {
    "MailboxCreate": {"mailbox", "name"},
    "MailboxDelete": {"mailbox", "name"},
    "MailboxSubscribe": {"mailbox", "name"},
    "MailboxUnsubscribe": {"mailbox", "name"},
    "MailboxRename": {"mailbox", "mailbox_old", "name"},
    "MessageRead": {"mailbox", "name", "uid", "uid_validity"},
    "MessageTrash": {"mailbox", "name", "uid", "uid_validity"},
    "MessageExpunge": {"mailbox", "name", "uid", "uid_validity"},
    "FlagsSet": {"flags", "keywords", "mailbox", "name", "uid", "uid_validity"},
    "FlagsClear": {
        "flags",
        "flags_old",
        "keywords",
        "keywords_old",
        "mailbox",
        "name",
        "uid",
        "uid_validity",
    },
    "MessageNew": MESSAGE_KEYS,
    "MessageAppend": MESSAGE_KEYS,
}


def only_event_table(txn: PushTransaction) -> dict[str, object]:
    tables = transaction_to_dict(txn)["events"]
    assert isinstance(tables, list) and len(tables) == 1
    table: dict[str, object] = tables[0]
    return table


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_item11_tail_view_has_exactly_dovecots_keys(name: str) -> None:
    is_message = name in ("MessageNew", "MessageAppend")
    event = PushEvent(
        name,  # type: ignore[arg-type]
        "INBOX",
        mailbox_old="Old" if name == "MailboxRename" else None,
        uid=None if name.startswith("Mailbox") else 3,
        uid_validity=None if name.startswith("Mailbox") else UIDVALIDITY,
        message=message_data() if is_message else None,
    )
    assert set(only_event_table(transaction(event))) == OBSERVED_KEYS[name]


def test_item11_tail_view_leaves_out_missing_subject_and_message_id() -> None:
    event = new_event(message_data(subject=None, message_id=None))
    table = only_event_table(transaction(event))
    assert set(table) == MESSAGE_KEYS - {"subject", "message_id"}


def test_tail_view_flattens_message_fields_with_dovecot_names() -> None:
    event = new_event(message_data(), flags=("\\Seen",), keywords=("$Label1",))
    assert transaction_to_dict(transaction(event)) == {
        "id": "0f3c",
        "user": "alice",
        "mailbox": "INBOX",
        "service": "lmtp",
        "created": 1.5,
        "events": [
            {
                "name": "MessageNew",
                "mailbox": "INBOX",
                "uid": 1,
                "uid_validity": UIDVALIDITY,
                "flags": ["\\Seen"],
                "keywords": ["$Label1"],
                "from": "=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.net>",
                "to": "alice@example.org",
                "from_address": "joerg@example.net",
                "from_display_name": "Jörg Müller",
                "to_address": "alice@example.org",
                "to_display_name": "",
                "subject": "Grüße aus Münchenund Köln",
                "message_id": "<plain.1@example.net>",
                "date": 1672646400,
                "tz": 120,
                "snippet": "Hello Alice",
            }
        ],
    }


def test_tail_view_of_flags_clear_keeps_empty_lists() -> None:
    event = PushEvent("FlagsClear", "INBOX", uid=9, uid_validity=1, flags_old=("\\Recent",))
    table = only_event_table(transaction(event))
    assert table == {
        "name": "FlagsClear",
        "mailbox": "INBOX",
        "uid": 9,
        "uid_validity": 1,
        "flags": [],
        "keywords": [],
        "flags_old": ["\\Recent"],
        "keywords_old": [],
    }


# --- groups, rollbacks and the committed status ---------------------------------------------


def test_group_rollback_and_status_round_trip_and_are_left_out_at_defaults() -> None:
    status = MailboxStatus("INBOX", 4, 4, 3, 5, UIDVALIDITY, 9, 2, ("$Label1",))
    grouped = dataclasses.replace(
        transaction(), group="g1", group_size=2, group_index=1, deferred=True, status=status
    )
    rolled_back = dataclasses.replace(transaction(), rolled_back=True)
    for txn in (grouped, rolled_back):
        assert transaction_from_json(transaction_to_json(txn)) == txn
    plain = json.loads(transaction_to_json(transaction()))
    assert not {"group", "group_size", "group_index", "deferred", "rolled_back",
                "status"} & plain.keys()


def test_rows_written_before_groups_existed_read_as_lone_committed_transactions() -> None:
    old = b'{"v":1,"id":"x","user":"alice","mailbox":"INBOX","service":"imap","created":1}'
    txn = transaction_from_json(old)
    assert (txn.group, txn.group_size, txn.group_index, txn.deferred, txn.rolled_back,
            txn.status) == ("", 1, 0, False, False, None)


def test_a_group_place_outside_the_group_is_refused() -> None:
    bad = (b'{"v":1,"id":"x","user":"alice","mailbox":"INBOX","service":"imap","created":1,'
           b'"group":"g","group_size":2,"group_index":2}')
    with pytest.raises(EventFormatError, match="group_index 2"):
        transaction_from_json(bad)
