"""Running one command's work against the configured mail store, then closing it.

A command that changes mail (`mailbox create`, `expunge`…) installs the same
push recorder the server and `mailpush deliver` use, so its changes are queued
in the outbox as the push transactions IMAP's would be; the running server's
dispatcher sends them. The store serialises writers across processes
(`BEGIN IMMEDIATE` with a busy timeout), so this is safe while a server runs.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from ..config import Settings
from ..errors import MailpushError
from ..server import UserDirectory, build_push
from ..store import SqliteStore
from .config_file import load_config
from .data_dir import open_command_store, store_errors_explained


def with_store(
    args: argparse.Namespace,
    work: Callable[[SqliteStore], Awaitable[int]],
    *,
    settings: Settings | None = None,
) -> int:
    settings = settings or load_config(args)
    return _run(settings, work, pushes=False)


def with_user_store(
    args: argparse.Namespace,
    work: Callable[[SqliteStore, str], Awaitable[int]],
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
    settings: Settings, work: Callable[[SqliteStore], Awaitable[int]], *, pushes: bool
) -> int:
    async def run() -> int:
        store = open_command_store(settings)
        try:
            if pushes:
                build_push(settings, store, UserDirectory(settings))
            with store_errors_explained(settings):
                return await work(store)
        finally:
            await asyncio.to_thread(store.close)

    return asyncio.run(run())
