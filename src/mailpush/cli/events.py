"""`mailpush events tail`: print push transactions as the outbox receives them."""

from __future__ import annotations

import argparse
import asyncio
import json

from ..events import transaction_from_json, transaction_to_dict
from ..store import SqliteStore
from .config_file import Commands, add_config_option
from .store_session import with_store


def register(commands: Commands) -> None:
    events = commands.add_parser("events", help="watch push events")
    events_commands = events.add_subparsers(title="events commands", metavar="ACTION")
    tail = events_commands.add_parser(
        "tail", help="print push transactions as JSON lines as they are committed"
    )
    add_config_option(tail)
    tail.add_argument("--user", help="only this user's transactions")
    tail.add_argument("--from-start", action="store_true",
                      help="begin with the transactions still in the outbox")
    tail.add_argument("--count", type=int, default=0,
                      help="stop after this many transactions (default: run until interrupted)")
    tail.set_defaults(run=_events_tail)


def _events_tail(args: argparse.Namespace) -> int:
    async def work(store: SqliteStore) -> int:
        last = 0 if args.from_start else await store.outbox.last_id()
        shown = 0
        while True:
            for record in await store.outbox.records_after(last, args.user):
                last = record.outbox_id
                txn = transaction_from_json(record.payload)
                print(json.dumps(transaction_to_dict(txn), ensure_ascii=False), flush=True)
                shown += 1
                if args.count and shown >= args.count:
                    return 0
            await asyncio.sleep(0.2)

    return with_store(args, work)
