"""`mailpush events tail`: print push transactions as the outbox receives them."""

from __future__ import annotations

import argparse
import asyncio
import json

from ..errors import MailpushError
from ..events import transaction_from_json, transaction_to_dict
from ..server import UserDirectory
from ..store import MailStore
from .config_file import Commands, add_config_option, load_config
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
    tail.add_argument("--count", type=_positive_count, default=None, metavar="N",
                      help="stop after N transactions (default: run until interrupted)")
    tail.set_defaults(run=_events_tail)


def _positive_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if count < 1:
        raise argparse.ArgumentTypeError(
            f"{count} would print nothing; give 1 or more, or leave --count out to run"
            " until interrupted"
        )
    return count


def _events_tail(args: argparse.Namespace) -> int:
    settings = load_config(args)
    user = args.user
    if user is not None:
        user = UserDirectory(settings).resolve(args.user)
        if user is None:
            raise MailpushError(
                f"unknown user {args.user!r}: not in {settings.auth.passdb.path}"
                " (see `mailpush user list`)"
            )

    async def work(store: MailStore) -> int:
        last = 0 if args.from_start else await store.outbox.last_id()
        shown = 0
        while True:
            for record in await store.outbox.records_after(last, user):
                last = record.outbox_id
                txn = transaction_from_json(record.payload)
                print(json.dumps(transaction_to_dict(txn), ensure_ascii=False), flush=True)
                shown += 1
                if args.count is not None and shown >= args.count:
                    return 0
            await asyncio.sleep(0.2)

    return with_store(args, work, settings=settings)
