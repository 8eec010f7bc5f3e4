"""The driver interface: as small as Dovecot's, the framework owns everything else.

A driver sees one push transaction at a time: `begin_txn` (return None to
skip it), `process_event` for each event it subscribes to, `end_txn`. The
dispatcher owns settings parsing, ordering, retries, dead letters and
metrics; a driver only says whether a failure is worth retrying by raising
`RetryableDriverError` or `PermanentDriverError` (anything else raised counts
as retryable), whether its transactions depend on each other (`ordered`),
and how often a failed one may be repeated (the defaults of the retry
options in its `option_schema`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from ..events import EventName, PushEvent, PushTransaction
from ..store.models import MailboxStatus
from .driver_config import DriverConfig
from .driver_options import DriverOptions, read_retry_options
from .option_schema import DriverOptionSchema
from .shared_options import RETRY_OPTIONS

if TYPE_CHECKING:
    import aiohttp


class StoreView(Protocol):
    """The part of the store drivers may use (Lua `mailbox:status()`, Chronos body, metadata).

    Reads only, except METADATA: a metadata write records no change and so
    produces no push event (Dovecot writes it NO_NOTIFY), which makes it safe for
    a driver to call while it handles a transaction (Lua `metadata_set`).
    `mailbox=None` means server entries, e.g. the OX opt-in
    `/private/vendor/vendor.dovecot/http-notify`.
    """

    async def status(self, user: str, mailbox: str) -> MailboxStatus: ...
    async def raw_message(self, user: str, mailbox: str, uid: int) -> bytes: ...
    async def get_metadata(self, user: str, mailbox: str | None, entry: str) -> str | None: ...
    async def set_metadata(
        self, user: str, mailbox: str | None, entry: str, value: str | None
    ) -> None: ...
    async def list_metadata(
        self, user: str, mailbox: str | None, prefix: str = ""
    ) -> dict[str, str]: ...
    async def claim_pushed_message_id(
        self, driver: str, user: str, message_id: str, owner: str, retention: float
    ) -> bool:
        """Durable once-per-Message-ID record (Chronos): True if `owner` is first, or
        the same owner asking again (a retry); claims older than `retention` seconds
        are forgotten. A write, but one that records no change and so no event."""
        ...


class RequestJournal(Protocol):
    """Keeps an HTTP request that failed, for the framework to send again (Lua `http_resend`).

    Bound to one driver instance and user. `record` returns once the request is
    stored durably in the outbox; the dispatcher then resends it with the
    driver's backoff until it is answered 2xx or becomes a dead letter.
    """

    async def record(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        *,
        timeout: float,
        user_agent: str | None = None,
        proxy_url: str | None = None,
    ) -> None: ...


class DriverServices(Protocol):
    """What the framework lends a driver."""

    @property
    def store(self) -> StoreView: ...

    def user_settings(self, user: str) -> Mapping[str, str]:
        """Global `plugin {}` settings overridden by the user's `userdb_*` fields."""
        ...

    def http(self) -> aiohttp.ClientSession:
        """The process-wide pooled HTTP client."""
        ...

    def plugin_settings(self) -> Mapping[str, str]:
        """The global `plugin {}` settings, to check driver settings at start-up."""
        ...

    @property
    def push_timeout(self) -> float | None:
        """`mailpush_push_timeout`, which bounds a whole transaction (None: unknown)."""
        ...

    @property
    def ssl_client_ca_file(self) -> Path | None:
        """`ssl_client_ca_file`: CAs HTTPS drivers trust besides the system ones."""
        ...

    def journal_requests(self, driver: str) -> DriverServices:
        """These services, with `request_journal` keeping `driver`'s failed requests
        (itself where nothing can be journaled, e.g. `mailpush lua run`)."""
        ...

    def request_journal(self, user: str) -> RequestJournal | None:
        """Where failed requests made for `user` are kept; None: they are not kept."""
        ...


class PushDriver(ABC):
    """Base of every driver. Subclasses set `name` and validate options in `__init__`."""

    name: ClassVar[str]
    #: Whether a user's transactions must reach this driver one after another, in
    #: commit order: then one that keeps failing holds back the user's later ones.
    #: Drivers whose requests do not depend on each other (chronos, ox, an unordered
    #: webhook) say False, and each transaction is retried on its own.
    ordered: bool = True
    #: Every option the driver accepts, its retry options (`shared_options`) included:
    #: their defaults are the driver's (empty: the global mailpush_push_*). A driver
    #: that declares none (a test double) still takes the retry options.
    option_schema: ClassVar[DriverOptionSchema] = DriverOptionSchema(
        "driver", "Declares no options of its own.", RETRY_OPTIONS
    )
    #: Whether this driver reads a transaction's mailbox status (Lua `mailbox:status()`):
    #: then the outbox recorder captures the status the transaction committed, in its
    #: database transaction, and `PushTransaction.status` carries it.
    wants_mailbox_status: ClassVar[bool] = False

    def __init__(self, config: DriverConfig, services: DriverServices) -> None:
        self.config = config
        self.services = services
        #: delivery_attempts, retry_initial, retry_max_interval, max_age (the dispatcher's).
        self.retry = read_retry_options(DriverOptions(config), self.option_schema)

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Called once before the first transaction (load scripts, open clients)."""

    def accepts(self, txn: PushTransaction) -> bool:
        """Whether this transaction is worth queueing for this driver at all.

        Called on the store's writer thread inside the commit: it must only
        look at `txn` (e.g. Chronos: is there a MessageNew?). Default: every
        transaction, as Dovecot calls every driver for every transaction.
        A driver that overrides it accepts only transactions holding an event
        it `subscribes` to: the recorder asks it only about those, and makes a
        transaction's events for it only then (dispatch/outbox_recorder.py).
        """
        return True

    def subscribes(self, event: EventName) -> bool:
        """Whether `process_event` wants events of this type."""
        return True

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        """Per-transaction state, or None to take no part in this transaction."""
        return txn

    @abstractmethod
    async def process_event(self, state: object, event: PushEvent) -> None: ...

    async def end_txn(self, state: object, success: bool) -> None:  # noqa: B027
        """After the last event; `success` is False when processing an event failed."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """At shutdown: release clients and scripts."""
