"""`mailpush metadata get|set|unset|list`: RFC 5464 METADATA entries, without IMAP."""

from __future__ import annotations

import argparse
import json
import sys

from ..store import MailStore
from .config_file import Commands, add_command
from .store_session import with_user_store

#: `metadata list` prints one entry per line: values keep their line breaks escaped.
_LINE_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def register(commands: Commands) -> None:
    metadata = commands.add_parser(
        "metadata", help="read and write RFC 5464 METADATA (server or mailbox entries)"
    )
    metadata_commands = metadata.add_subparsers(title="metadata commands", metavar="ACTION")

    def metadata_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = add_command(metadata_commands, name, help_text, user=True)
        sub.add_argument("-m", "--mailbox", metavar="MAILBOX",
                         help="a mailbox's entries (default: the user's server entries)")
        return sub

    entry_help = "entry name, e.g. /private/vendor/vendor.dovecot/http-notify"
    meta_get = metadata_command("get", "print one entry's value")
    meta_get.add_argument("entry", metavar="ENTRY", help=entry_help)
    meta_get.set_defaults(run=_metadata_get)
    meta_set = metadata_command("set", "set one entry (creates no push event)")
    meta_set.add_argument("entry", metavar="ENTRY", help=entry_help)
    meta_set.add_argument("value", metavar="VALUE")
    meta_set.set_defaults(run=_metadata_set)
    meta_unset = metadata_command("unset", "remove one entry")
    meta_unset.add_argument("entry", metavar="ENTRY", help=entry_help)
    meta_unset.set_defaults(run=_metadata_unset)
    meta_list = metadata_command("list", "list entries (all, or those at or below PREFIX)")
    meta_list.add_argument("prefix", metavar="PREFIX", nargs="?", default="",
                           help="e.g. /private or /shared/vendor")
    meta_list.add_argument("--json", action="store_true",
                           help="print one JSON object instead of ENTRY<TAB>VALUE lines")
    meta_list.set_defaults(run=_metadata_list)


def _metadata_get(args: argparse.Namespace) -> int:
    async def work(store: MailStore, user: str) -> int:
        value = await store.get_metadata(user, args.mailbox, args.entry)
        if value is None:
            print(f"mailpush: {args.entry} is not set", file=sys.stderr)
            return 1
        print(value)
        return 0

    return with_user_store(args, work)


def _metadata_set(args: argparse.Namespace) -> int:
    async def work(store: MailStore, user: str) -> int:
        await store.set_metadata(user, args.mailbox, args.entry, args.value)
        return 0

    return with_user_store(args, work)


def _metadata_unset(args: argparse.Namespace) -> int:
    async def work(store: MailStore, user: str) -> int:
        await store.set_metadata(user, args.mailbox, args.entry, None)
        return 0

    return with_user_store(args, work)


def _metadata_list(args: argparse.Namespace) -> int:
    async def work(store: MailStore, user: str) -> int:
        entries = await store.list_metadata(user, args.mailbox, args.prefix)
        if args.json:
            print(json.dumps(entries, ensure_ascii=False))
            return 0
        for entry, value in entries.items():
            print(f"{entry}\t{value.translate(_LINE_ESCAPES)}")
        return 0

    return with_user_store(args, work)
