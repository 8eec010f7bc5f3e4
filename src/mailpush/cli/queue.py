"""`mailpush queue status|dead|replay`: inspect the push outbox, send dead letters again.

Ids and driver names are checked before anything changes: a typo is an error
(exit 1) naming what exists, never a silent "replaying 0".
"""

from __future__ import annotations

import argparse
import time

from ..config import Settings
from ..drivers import driver_configs
from ..errors import MailpushError
from ..store import MailStore
from .config_file import Commands, add_command, load_config
from .store_session import with_store


def register(commands: Commands) -> None:
    queue = commands.add_parser("queue", help="inspect and replay the push outbox")
    queue_commands = queue.add_subparsers(title="queue commands", metavar="ACTION")
    add_command(
        queue_commands, "status", "pending, in flight, retrying and dead transactions per driver"
    ).set_defaults(run=_queue_status)
    dead = add_command(queue_commands, "dead", "list dead letters")
    dead.add_argument("--driver", help="only this driver instance")
    dead.set_defaults(run=_queue_dead)
    replay = add_command(queue_commands, "replay", "send dead letters again")
    replay.add_argument("ids", nargs="*", type=int, metavar="ID", help="outbox ids to replay")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.add_argument("--driver", help="only this driver instance")
    replay.set_defaults(run=_queue_replay)


def _queue_status(args: argparse.Namespace) -> int:
    async def work(store: MailStore) -> int:
        rows = await store.outbox.stats(time.time())
        print(f"{'driver':<16} {'pending':>8} {'inflight':>8} {'retrying':>8} {'dead':>6}"
              f" {'oldest':>10}")
        for row in rows:
            oldest = "-" if row.oldest_age is None else f"{row.oldest_age:.0f}s"
            print(f"{row.driver:<16} {row.pending:>8} {row.inflight:>8} {row.retrying:>8}"
                  f" {row.dead:>6} {oldest:>10}")
        return 0

    return with_store(args, work)


def _queue_dead(args: argparse.Namespace) -> int:
    settings = load_config(args)

    async def work(store: MailStore) -> int:
        await _check_driver(store, args.driver, _configured(settings))
        for letter in await store.outbox.dead_letters(args.driver):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(letter.created))
            print(f"{letter.outbox_id}\t{letter.driver}\t{letter.user}\t{letter.txn_id}\t"
                  f"{when}\tattempts={letter.attempts}\t{letter.last_error or ''}")
        return 0

    return with_store(args, work, settings=settings)


def _queue_replay(args: argparse.Namespace) -> int:
    if not args.ids and not args.all:
        raise MailpushError("queue replay: give outbox ids or --all")
    if args.ids and args.all:
        raise MailpushError("queue replay: give outbox ids or --all, not both")
    settings = load_config(args)

    async def work(store: MailStore) -> int:
        await _check_driver(store, args.driver, _configured(settings))
        dead = {letter.outbox_id for letter in await store.outbox.dead_letters(args.driver)}
        unknown = [outbox_id for outbox_id in args.ids if outbox_id not in dead]
        if unknown:
            which = f" of driver {args.driver}" if args.driver else ""
            raise MailpushError(
                f"queue replay: no dead letter{which} with id"
                f" {', '.join(map(str, unknown))} (see `mailpush queue dead`)"
            )
        count = await store.outbox.replay(None if args.all else args.ids, args.driver)
        print(f"replaying {count} dead letter(s); the running server sends them within a second")
        return 0

    return with_store(args, work, settings=settings)


def _configured(settings: Settings) -> set[str]:
    return {config.instance for config in driver_configs(settings)}


async def _check_driver(store: MailStore, driver: str | None, configured: set[str]) -> None:
    """A driver instance must be configured or have transactions in the outbox."""
    if driver is None:
        return
    known = configured | {row.driver for row in await store.outbox.stats(time.time())}
    if driver not in known:
        raise MailpushError(
            f"unknown driver instance {driver!r} (configured or in the outbox:"
            f" {', '.join(sorted(known)) or 'none'}; see `mailpush queue status`)"
        )
