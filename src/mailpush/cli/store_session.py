"""Running one command's work against the configured mail store, then closing it.

A command that changes mail (`mailbox create`, `expunge`…) installs the same
push recorder the server and `mailpush deliver` use, so its changes are queued
in the outbox as the push transactions IMAP's would be; the running server's
dispatcher sends them. The store serialises writers across processes
(SQLite: `BEGIN IMMEDIATE` with a busy timeout; PostgreSQL: serializable
transactions), so this is safe while servers run. Every command announces its
commits on the store's change feed (docs/operations.md#the-change-feed:
datagrams to this host's servers, or a NOTIFY every node hears), so the
running servers' IDLE sessions and dispatchers hear of them at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from ..config import Settings
from ..errors import MailpushError
from ..server import ServedStore, UserDirectory, build_push
from ..store import MailStore
from ..store.feed_protocol import link_feed
from ..store.open_feed import configured_feed
from .config_file import load_config
from .data_dir import open_command_store, store_errors_explained


def with_store(
    args: argparse.Namespace,
    work: Callable[[MailStore], Awaitable[int]],
    *,
    settings: Settings | None = None,
) -> int:
    settings = settings or load_config(args)
    return _run(settings, work, pushes=False)


def with_user_store(
    args: argparse.Namespace,
    work: Callable[[MailStore, str], Awaitable[int]],
    *,
    pushes: bool = False,
) -> int:
    """Run `work` with the store and the store's name for USER.

    An unknown USER is refused, so a typo never creates an empty account.
    With `pushes`, the configured drivers get push transactions for the changes.
    """
    settings = load_config(args)
    user = UserDirectory(settings).resolve(args.user)
    if user is None:
        raise MailpushError(
            f"unknown user {args.user!r}: not in {settings.auth.passdb.path}"
            " (see `mailpush user list`)"
        )
    return _run(settings, lambda store: work(store, user), pushes=pushes)


def _run(
    settings: Settings, work: Callable[[MailStore], Awaitable[int]], *, pushes: bool
) -> int:
    async def run() -> int:
        async with announcing_store(settings) as store:
            if pushes:
                build_push(settings, store, UserDirectory(settings))
            with store_errors_explained(settings):
                return await work(store)

    return asyncio.run(run())


@contextlib.asynccontextmanager
async def announcing_store(settings: Settings) -> AsyncIterator[ServedStore]:
    """The store opened for one command, its commits announced on the change feed.

    The feed only announces here (a command has no sessions to wake) and is
    closed after the store, so the last commits the store drains are sent too.
    """
    store = open_command_store(settings)
    feed = configured_feed(settings, store.hub.users)
    link_feed(store.hub, feed)
    try:
        yield store
    finally:
        try:
            await asyncio.to_thread(store.close)
        finally:
            await feed.close()
