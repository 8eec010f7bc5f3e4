"""Running one command's work against the configured mail store, then closing it."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from ..errors import MailpushError
from ..server import UserDirectory, open_store
from ..store import SqliteStore
from .config_file import load_config


def with_store(args: argparse.Namespace, work: Callable[[SqliteStore], Awaitable[int]]) -> int:
    settings = load_config(args)

    async def run() -> int:
        store = open_store(settings)
        try:
            return await work(store)
        finally:
            await asyncio.to_thread(store.close)

    return asyncio.run(run())


def with_user_store(
    args: argparse.Namespace, work: Callable[[SqliteStore, str], Awaitable[int]]
) -> int:
    """Run `work` with the store and the store's name for USER.

    An unknown USER is refused, so a typo never creates an empty account.
    """
    settings = load_config(args)
    user = UserDirectory(settings).resolve(args.user)
    if user is None:
        raise MailpushError(
            f"unknown user {args.user!r}: not in {settings.auth.passdb.path}"
            " (see `mailpush user list`)"
        )

    async def run() -> int:
        store = open_store(settings)
        try:
            return await work(store, user)
        finally:
            await asyncio.to_thread(store.close)

    return asyncio.run(run())
