"""`mailpush search|fetch|expunge USER QUERY…`: doveadm's message commands.

The query is IMAP SEARCH keys plus `mailbox NAME` (see `mail_query.py`).
`expunge` marks the matching messages `\\Deleted` and expunges exactly those,
through the store calls IMAP's `UID STORE +FLAGS (\\Deleted)` and `UID EXPUNGE`
use, so drivers get the same FlagsSet and MessageExpunge events and IMAP
sessions the same untagged EXPUNGE responses. Like doveadm, it refuses a query
without `mailbox`: a mistyped query must not empty every mailbox.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

from ..errors import MailpushError
from ..mime.headers import find_body_start
from ..store import MailStore
from ..store import flags as F
from .config_file import Commands, add_command
from .mail_query import QueryMatch, matching_messages, parse_query
from .store_session import with_user_store

#: `fetch` fields, in doveadm's names.
FETCH_FIELDS = (
    "mailbox", "uid", "seq", "flags", "size.physical", "date.received", "hdr", "body", "text"
)
#: Fields whose value is (part of) the message, printed after a `name:` line.
_CONTENT_FIELDS = ("hdr", "body", "text")
_QUERY_HELP = (
    "IMAP SEARCH keys, one token per argument (SUBJECT 'two words'), plus `mailbox NAME`"
    " (wildcards * and %%); no query: ALL"
)


def register(commands: Commands) -> None:
    search = add_command(
        commands, "search", "print MAILBOX<TAB>UID of the messages a query matches", user=True
    )
    search.add_argument("query", nargs="*", metavar="QUERY", help=_QUERY_HELP)
    search.set_defaults(run=_search)
    fetch = add_command(
        commands, "fetch", "print fields of the messages a query matches", user=True
    )
    fetch.add_argument("fields", metavar="FIELDS",
                       help=f"space-separated: {' '.join(FETCH_FIELDS)}")
    fetch.add_argument("query", nargs="*", metavar="QUERY", help=_QUERY_HELP)
    fetch.set_defaults(run=_fetch)
    expunge = add_command(
        commands,
        "expunge",
        "expunge the messages a query matches (the query must name a mailbox)",
        user=True,
    )
    expunge.add_argument("query", nargs="*", metavar="QUERY", help=_QUERY_HELP)
    expunge.set_defaults(run=_expunge)


def _search(args: argparse.Namespace) -> int:
    query = parse_query(args.query)

    async def work(store: MailStore, user: str) -> int:
        async for match in matching_messages(store, user, query):
            print(f"{match.mailbox}\t{match.info.uid}")
        return 0

    return with_user_store(args, work)


def _fetch(args: argparse.Namespace) -> int:
    fields = args.fields.replace(",", " ").lower().split()
    unknown = [field for field in fields if field not in FETCH_FIELDS]
    if unknown or not fields:
        raise MailpushError(
            f"fetch: unknown field(s) {' '.join(unknown) or '(none given)'}"
            f" (known: {' '.join(FETCH_FIELDS)})"
        )
    query = parse_query(args.query)
    needs_raw = any(field in _CONTENT_FIELDS for field in fields)

    async def work(store: MailStore, user: str) -> int:
        out = sys.stdout.buffer
        first = True
        async for match in matching_messages(store, user, query):
            raw = match.raw
            if needs_raw and raw is None:
                raw = await store.raw_message(user, match.mailbox, match.info.uid)
            if not first:
                out.write(b"\f\n")  # doveadm's separator between messages
            first = False
            for field in fields:
                out.write(_fetch_field(field, match, raw or b""))
        out.flush()
        return 0

    return with_user_store(args, work)


def _expunge(args: argparse.Namespace) -> int:
    query = parse_query(args.query)
    if not query.mailboxes:
        raise MailpushError(
            "expunge: the query must name the mailbox(es), e.g. `mailbox INBOX SEEN BEFORE"
            " 1-Jan-2026` (`mailbox *` for every mailbox), so a mistyped query cannot empty"
            " them all"
        )

    async def work(store: MailStore, user: str) -> int:
        found: defaultdict[str, list[int]] = defaultdict(list)
        async for match in matching_messages(store, user, query):
            found[match.mailbox].append(match.info.uid)
        for mailbox, uids in found.items():
            await store.update_flags(user, mailbox, uids, "add", F.DELETED)
            expunged = await store.expunge(user, mailbox, uids)
            print(f"{mailbox}: expunged {len(expunged.uids)} message(s)")
        return 0

    return with_user_store(args, work, pushes=True)


def _fetch_field(field: str, match: QueryMatch, raw: bytes) -> bytes:
    info = match.info
    if field in _CONTENT_FIELDS:
        body_start = find_body_start(raw)[1]
        content = {"hdr": raw[:body_start], "body": raw[body_start:], "text": raw}[field]
        return f"{field}:\n".encode() + content + (b"" if content.endswith(b"\n") else b"\n")
    if field == "mailbox":
        value = match.mailbox
    elif field == "uid":
        value = str(info.uid)
    elif field == "seq":
        value = str(match.seq)
    elif field == "flags":
        names = F.flag_names(info.flags) + (["\\Recent"] if info.recent else [])
        value = " ".join([*names, *info.keywords])
    elif field == "size.physical":
        value = str(info.size)
    else:  # date.received
        value = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.internal_date))
    return f"{field}: {value}\n".encode()
