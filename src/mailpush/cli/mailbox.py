"""`mailpush mailbox list|status|create|delete USER …`: doveadm's mailbox commands.

They work on the store directly, safely beside a running server (the store
serialises writers across processes). Creating and deleting go through the
same store calls IMAP CREATE and DELETE use, with the push recorder
installed, so the configured drivers are told (MailboxCreate, MailboxDelete,
and the expunge of a deleted mailbox's messages), and IMAP sessions see the
change on their next command.
"""

from __future__ import annotations

import argparse

from ..errors import MailboxNotFoundError, MailpushError
from ..imap.list_pattern import ListPattern
from ..store import MailboxStatus, MailStore
from ..store.mailbox_names import INBOX
from .config_file import Commands, add_command
from .store_session import with_user_store

#: `mailbox status` fields, in doveadm's names; `all` is every one of them.
STATUS_FIELDS = ("messages", "recent", "unseen", "uidnext", "uidvalidity", "highestmodseq")


def register(commands: Commands) -> None:
    mailbox = commands.add_parser("mailbox", help="list, inspect, create and delete mailboxes")
    mailbox_commands = mailbox.add_subparsers(title="mailbox commands", metavar="ACTION")

    listing = add_command(
        mailbox_commands,
        "list",
        "list the user's mailboxes (all, or those matching MASK)",
        user=True,
    )
    listing.add_argument("masks", nargs="*", metavar="MASK",
                         help="LIST pattern: * matches anything, %% anything but '/'")
    listing.add_argument("-s", dest="subscribed", action="store_true",
                         help="only subscribed mailboxes")
    listing.set_defaults(run=_mailbox_list)
    status = add_command(mailbox_commands, "status", "print status fields of mailboxes", user=True)
    status.add_argument("fields", metavar="FIELDS",
                        help=f"'all' or space-separated fields: {' '.join(STATUS_FIELDS)}")
    status.add_argument("masks", nargs="+", metavar="MAILBOX", help="mailbox name or pattern")
    status.set_defaults(run=_mailbox_status)
    create = add_command(
        mailbox_commands, "create", "create mailboxes (a push MailboxCreate each)", user=True
    )
    create.add_argument("names", nargs="+", metavar="NAME")
    create.add_argument("-s", dest="subscribe", action="store_true", help="also subscribe")
    create.set_defaults(run=_mailbox_create)
    delete = add_command(
        mailbox_commands,
        "delete",
        "delete mailboxes and their messages (pushes the expunge and MailboxDelete)",
        user=True,
    )
    delete.add_argument("names", nargs="+", metavar="NAME")
    delete.set_defaults(run=_mailbox_delete)


def _mailbox_list(args: argparse.Namespace) -> int:
    patterns = [ListPattern(mask) for mask in args.masks]

    async def work(store: MailStore, user: str) -> int:
        subscribed = set(await store.subscriptions(user)) if args.subscribed else None
        names = [mailbox.name for mailbox in await store.list_mailboxes(user)]
        if INBOX not in names and subscribed is None:
            names.insert(0, INBOX)  # INBOX always exists for IMAP (created on first use)
        for name in names:
            if subscribed is not None and name not in subscribed:
                continue
            if patterns and not any(pattern.matches(name) for pattern in patterns):
                continue
            print(name)
        return 0

    return with_user_store(args, work)


def _mailbox_status(args: argparse.Namespace) -> int:
    fields = _status_fields(args.fields)
    patterns = [ListPattern(mask) for mask in args.masks]

    async def work(store: MailStore, user: str) -> int:
        found = False
        for mailbox in await store.list_mailboxes(user):
            if mailbox.selectable and any(pattern.matches(mailbox.name) for pattern in patterns):
                found = True
                status = await store.status(user, mailbox.name)
                values = " ".join(f"{field}={_status_value(status, field)}" for field in fields)
                print(f"{mailbox.name} {values}")
        if not found:
            raise _no_mailbox(args.masks)
        return 0

    return with_user_store(args, work)


def _mailbox_create(args: argparse.Namespace) -> int:
    async def work(store: MailStore, user: str) -> int:
        for name in args.names:
            await store.create_mailbox(user, name)
            if args.subscribe:
                await store.subscribe(user, name)
        return 0

    return with_user_store(args, work, pushes=True)


def _mailbox_delete(args: argparse.Namespace) -> int:
    async def work(store: MailStore, user: str) -> int:
        for name in args.names:
            await store.delete_mailbox(user, name)
        return 0

    return with_user_store(args, work, pushes=True)


def _status_fields(text: str) -> tuple[str, ...]:
    words = tuple(text.replace(",", " ").lower().split())
    if words == ("all",):
        return STATUS_FIELDS
    unknown = [word for word in words if word not in STATUS_FIELDS]
    if unknown or not words:
        raise MailpushError(
            f"mailbox status: unknown field(s) {' '.join(unknown) or '(none given)'}"
            f" (known: all {' '.join(STATUS_FIELDS)})"
        )
    return words


def _status_value(status: MailboxStatus, field: str) -> int:
    value: int = getattr(status, field)
    return value


def _no_mailbox(masks: list[str]) -> MailboxNotFoundError:
    return MailboxNotFoundError(" ".join(masks))
