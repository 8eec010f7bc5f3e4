"""IMAP4rev1 server with IDLE, driven by the store's change hub.

`ImapServer(store, authenticate, options)` listens; `start()` returns the
bound address and `stop(timeout)` ends it. Everything else here serves one
connection: the parser, the selected-mailbox view, FETCH/SEARCH rendering.
"""

from .connection import Authenticator
from .options import ImapOptions
from .server import ImapServer

__all__ = ["Authenticator", "ImapOptions", "ImapServer"]
