"""How a command handler ends other than with its OK: the tagged NO, and its wording.

    CommandSyntaxError (parser.py)    -> tagged BAD (MailboxNameSyntaxError -> NO)
    CommandFailedError                -> tagged NO with the handler's text
    StoreError (errors.py)            -> tagged NO worded by `store_error_text`
    AlreadyAnswered                   -> nothing: the handler wrote its tagged reply
"""

from __future__ import annotations

import logging

from ..errors import (
    InvalidMailboxNameError,
    MailboxExistsError,
    MailboxNotFoundError,
    MailboxNotSelectableError,
    MessageTooLargeError,
    StoreError,
    StoreFullError,
)

__all__ = ["AlreadyAnswered", "CommandFailedError", "store_error_text"]

log = logging.getLogger(__name__)


class CommandFailedError(Exception):
    """A handler's way to answer `NO`: the text may start with a response code."""


class AlreadyAnswered(Exception):  # noqa: N818 - control flow, not an error
    """The handler wrote its own tagged reply (STARTTLS must, before the handshake)."""


def store_error_text(exc: StoreError, trycreate: bool = False) -> str:
    """A store refusal as Dovecot words it, with the RFC 5530 response code."""
    if isinstance(exc, MailboxNotFoundError):
        code = "TRYCREATE" if trycreate else "NONEXISTENT"
        return f"[{code}] Mailbox doesn't exist: {exc.name}"
    if isinstance(exc, MailboxExistsError):
        return f"[ALREADYEXISTS] Mailbox already exists: {exc.name}"
    if isinstance(exc, InvalidMailboxNameError):
        return f"[CANNOT] Invalid mailbox name: {exc}"
    if isinstance(exc, MailboxNotSelectableError):
        return f"[CANNOT] {exc}"
    if isinstance(exc, MessageTooLargeError):
        return f"[TOOBIG] {exc}"
    if isinstance(exc, StoreFullError):
        # Dovecot 2.3 maps ENOSPC (and EDQUOT) to MAIL_ERROR_NOQUOTA: this code and text.
        return "[OVERQUOTA] Not enough disk quota"
    log.error("store error: %s", exc)
    return "[SERVERBUG] Internal error occurred. Refer to server log for more information."
