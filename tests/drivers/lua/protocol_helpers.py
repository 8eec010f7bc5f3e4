"""Synthetic push transactions, and running them through a driver as the dispatcher does."""

from __future__ import annotations

import itertools
import time
from typing import Any

from mailpush.drivers import PushDriver
from mailpush.events import MessageData, PushEvent, PushTransaction

_ids = itertools.count(1)

MESSAGE = MessageData(
    from_='"Alice Example" <alice@example.org>',
    to="bob@example.org",
    from_address="alice@example.org",
    from_display_name="Alice Example",
    to_address="bob@example.org",
    to_display_name="",
    subject="Grüße",
    subject_raw="=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=",
    date=1672646400,
    tz=120,
    message_id="<m.1@example.org>",
    snippet="Hello Bob",
    size=123,
    has_calendar=False,
)


def transaction(user: str, *events: PushEvent, service: str = "lmtp") -> PushTransaction:
    mailbox = events[0].mailbox if events else "INBOX"
    return PushTransaction(f"txn-{next(_ids)}", user, mailbox, service, time.time(), events)


def message_new(uid: int = 1, mailbox: str = "INBOX", message: MessageData = MESSAGE) -> PushEvent:
    return PushEvent("MessageNew", mailbox, uid=uid, uid_validity=1795395289, message=message)


async def run(driver: PushDriver, txn: PushTransaction) -> bool:
    """begin / every subscribed event / end, as Dispatcher._run_driver does; False if skipped."""
    state = await driver.begin_txn(txn)
    if state is None:
        return False
    for event in txn.events:
        if driver.subscribes(event.name):
            await driver.process_event(state, event)
    await driver.end_txn(state, True)
    return True


def lua_list(table: Any) -> list[Any]:
    """A Lua array as a Python list, strings decoded."""
    if table is None:
        return []
    values = [table[i] for i in range(1, len(table) + 1)]
    return [v.decode() if isinstance(v, bytes) else v for v in values]
