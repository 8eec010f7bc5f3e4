"""The IMAP connection states of RFC 3501 §3, which decide the commands a client may send."""

from __future__ import annotations

from enum import Enum

__all__ = ["ANY_STATE", "AUTHENTICATED", "NOT_AUTHENTICATED", "SELECTED", "State"]


class State(Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


#: Where a command may run: the sets a `CommandSpec` names.
ANY_STATE = frozenset(State)
NOT_AUTHENTICATED = frozenset({State.NOT_AUTHENTICATED})
#: Authenticated commands run with or without a selected mailbox.
AUTHENTICATED = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})
