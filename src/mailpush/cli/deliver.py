"""`mailpush deliver`: file a message from standard input, as dovecot-lda does.

The exit status tells the MTA what to do: 75 (keep the mail queued, retry)
for anything that may pass later, the sysexits.h codes for what will not.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from ..config import Settings
from ..delivery import DeliveryRequest
from ..errors import ConfigError, MailpushError, StoreError
from ..lmtp import split_detail
from ..logging_config import configure_logging
from ..logs.session import LogSession, enter_session, new_session_id
from ..server import UserDirectory, build_delivery_agent, build_push
from .config_file import Commands, add_config_option, load_config
from .exit_status import EX_CONFIG, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL
from .store_session import announcing_store


def register(commands: Commands) -> None:
    help_text = "deliver a message read from standard input (like dovecot-lda)"
    deliver = commands.add_parser("deliver", help=help_text, description=help_text)
    add_config_option(
        deliver, "configuration file (default: built-in defaults, data in ./mailpush-data)"
    )
    deliver.add_argument("-d", dest="user", required=True, metavar="USER",
                         help="recipient user or address")
    deliver.add_argument("-m", dest="mailbox", metavar="MAILBOX",
                         help="mailbox to save into (default INBOX; missing → INBOX)")
    deliver.set_defaults(run=_deliver)


def _deliver(args: argparse.Namespace) -> int:
    configure_logging()
    try:
        settings = load_config(args)
    except ConfigError as exc:
        print(f"mailpush deliver: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    configure_logging(settings.log, settings.mail_debug)
    raw = sys.stdin.buffer.read()
    if not raw:
        print("mailpush deliver: empty message on standard input", file=sys.stderr)
        return EX_DATAERR
    if len(raw) > settings.max_message_size:
        print(
            f"mailpush deliver: message of {len(raw)} bytes exceeds"
            f" mailpush_max_message_size ({settings.max_message_size} bytes)",
            file=sys.stderr,
        )
        return EX_DATAERR
    # dovecot-lda's service name: `protocol lda { }` values apply, pushes carry "lda".
    lda = settings.for_protocol("lda")
    local, detail = split_detail(args.user, lda.lmtp.recipient_delimiter)
    user = UserDirectory(settings).resolve(local)
    if user is None:
        print(f"mailpush deliver: unknown user {args.user!r}", file=sys.stderr)
        return EX_NOUSER
    request = DeliveryRequest(user, raw, args.user, detail, args.mailbox)
    try:
        asyncio.run(_deliver_once(settings, request))
    except StoreError as exc:
        print(f"mailpush deliver: temporary failure: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    except MailpushError:
        raise
    except Exception as exc:
        # Exit 75 rather than 1: an MTA bounces on 1 but keeps the mail queued on 75.
        logging.getLogger(__name__).exception("delivery failed unexpectedly")
        print(f"mailpush deliver: internal error, try again later: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    return 0


async def _deliver_once(settings: Settings, request: DeliveryRequest) -> None:
    # dovecot-lda's log prefix: `lda(alice)<pid><session>: Info: msgid=...`.
    enter_session(LogSession.for_user("lda", request.user, new_session_id(16)))
    # Announced on the change feed: the running server's IDLE sessions see the new
    # message and its dispatcher sends the queued push transactions at once.
    async with announcing_store(settings) as store:
        users = UserDirectory(settings)
        build_push(settings, store, users, delivery_service="lda")
        await build_delivery_agent(settings.for_protocol("lda"), store, users).deliver(request)
