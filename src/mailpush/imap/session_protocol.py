"""What a command handler may use of the connection that runs it: the `Session` protocol.

Handlers (the `*_commands` modules) import this protocol, never the
connection: dependencies point from the connection to the command table and
from the commands to this interface, so neither side imports the other.
`ImapConnection` implements it.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from ..store import MailStore
from ..store.models import MailboxStatus
from .fetch import StructureCache
from .heavy_work import HeavyWork
from .literal_spool import AppendSpool, SpooledLiteral
from .notify import NotifySettings
from .options import ImapOptions
from .responses import ResponseBuffer
from .session import MailboxView
from .sort_memory import FactsCache
from .states import State

if TYPE_CHECKING:  # search_updates runs searches through this protocol
    from .search_updates import SearchUpdates

__all__ = ["Session"]


class Session(Protocol):
    """One client's connection as its commands see it."""

    #: Handlers move the state only through the methods below, except LOGOUT.
    state: State
    user: str | None
    view: MailboxView | None
    #: Whether the client enabled CONDSTORE / QRESYNC (RFC 7162), by ENABLE or by use.
    condstore: bool
    qresync: bool
    #: What NOTIFY set (RFC 5465); None until the client uses it.
    notify: NotifySettings | None

    @property
    def options(self) -> ImapOptions: ...

    @property
    def store(self) -> MailStore: ...

    @property
    def out(self) -> ResponseBuffer:
        """The untagged responses being built; the tagged reply follows them."""
        ...

    @property
    def spooled(self) -> Mapping[int, SpooledLiteral]:
        """The current command's literals that went to spool files, by offset in it."""
        ...

    @property
    def append_spool(self) -> AppendSpool: ...

    @property
    def heavy(self) -> HeavyWork: ...

    @property
    def structures(self) -> StructureCache: ...

    @property
    def sort_facts(self) -> FactsCache:
        """What SORT and THREAD read of each message, kept for the server's lifetime."""
        ...

    @property
    def search_updates(self) -> SearchUpdates:
        """The selected mailbox's UPDATE searches (RFC 5267) this session follows."""
        ...

    @property
    def tls_active(self) -> bool: ...

    @property
    def tag(self) -> str:
        """The running command's tag (ESEARCH responses quote it)."""
        ...

    def require_user(self) -> str:
        """The logged-in user (commands allowed only after login may rely on one)."""
        ...

    def require_view(self) -> MailboxView:
        """The selected mailbox; NO when there is none or it was deleted."""
        ...

    def capabilities(self) -> str: ...

    def plaintext_allowed(self) -> bool: ...

    def log_auth(self, what: str, user: str, mechanism: str) -> None: ...

    async def login(self, login: str, password: str, mechanism: str = "PLAIN") -> str:
        """Check credentials and enter the authenticated state; the tagged OK text."""
        ...

    async def ask_continuation(self, request: str) -> bytes:
        """Send `request` (a `+` line) and read the line the client answers with."""
        ...

    async def start_tls(self, context: ssl.SSLContext, reply: str) -> None:
        """Answer the current command with `reply`, then run the TLS handshake."""
        ...

    @property
    def compression_active(self) -> bool: ...

    def start_compression(self, reply: str) -> None:
        """Answer the current command with `reply` (uncompressed), then deflate both ways."""
        ...

    async def wait_in_idle(self) -> bytes | None:
        """Send pending updates as they come until the client's next line (None: timed out)."""
        ...

    async def ensure_inbox(self, name: str) -> None: ...

    def enable_condstore(self) -> None:
        """Turn CONDSTORE on (a no-op when on); says HIGHESTMODSEQ if a mailbox is selected."""
        ...

    def enable_qresync(self) -> None:
        """Turn QRESYNC on, and CONDSTORE with it."""
        ...

    async def start_notify(
        self,
        settings: NotifySettings,
        fetch_new: Callable[[list[int]], Awaitable[None]] | None,
    ) -> list[MailboxStatus]:
        """Replace what an earlier NOTIFY set with `settings` (`fetch_new` answers
        MessageNew's FETCH); the status of each covered mailbox, read now (none when
        no filter asks for message events)."""
        ...

    def begin_select(self) -> None: ...

    def finish_select(self, view: MailboxView | None) -> None: ...

    def unselect(self) -> None: ...

    def write_flags_lines(self, view: MailboxView) -> None: ...

    async def drain(self) -> None:
        """Wait until the client has read enough of what was written."""
        ...
