"""Sieve as a `FilingPlanner`: the scripts' actions become the delivery's target mailboxes.

The planner never loses a message. A broken script, a runtime error, a
`fileinto` to a mailbox that does not exist (without `:create` or
`lda_mailbox_autocreate`) or a bad setting all end in the default plan:
INBOX, or the `+detail` mailbox when `lmtp_save_to_detail_mailbox` is on,
exactly what delivery does without Sieve. So does an unreadable passwd-file
and any unexpected exception (a bug of ours), logged with the script paths.
Only an explicit `discard` (with no keep left anywhere in the sequence)
returns no target at all.

Every target is saved in one store transaction, each as its own change
record, so filing into two folders reports two MessageNew, as Dovecot does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..config import Settings
from ..config.values import parse_int, parse_size
from ..delivery import DeliveryRequest, FilingPlanner
from ..errors import (
    InvalidMailboxNameError,
    InvalidValueError,
    MailboxExistsError,
    MailboxNotFoundError,
    MailboxNotSelectableError,
    PasswdFileError,
    SettingError,
    SieveRuntimeError,
    TooManyMailboxesError,
    UnknownUserError,
)
from ..store import DeliveryTarget, MailStore
from ..store.flags import STORED_FLAGS, split_flags
from ..store.mailbox_names import INBOX, normalize_mailbox_name
from .cache import DEFAULT_MAX_SCRIPT_SIZE, LoadedScript, ScriptCache
from .locations import ScriptLocation, has_sieve_settings, script_locations
from .message import Envelope, SieveMessage
from .runner import (
    DEFAULT_MAX_ACTIONS,
    FileIntoAction,
    KeepAction,
    RedirectAction,
    SieveResult,
    run_sequence,
)

__all__ = ["SieveFilingPlanner", "build_sieve_planner"]

log = logging.getLogger(__name__)

#: Sieve's own worker threads. Every delivery with Sieve settings passes through them,
#: so they must not queue behind other users of the loop's default executor: with
#: that one full, deliveries would stall until it drains.
_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mailpush-sieve")

#: Characters IMAP does not allow in a keyword (RFC 3501 atom-specials and `]`).
_NOT_IN_KEYWORD = frozenset('(){ %*"\\]')


def build_sieve_planner(
    settings: Settings,
    store: MailStore,
    fallback: FilingPlanner,
    userdb_fields: Callable[[str], Mapping[str, str]],
    home: Callable[[str], str | None] | None = None,
) -> SieveFilingPlanner:
    """The planner LMTP and `mailpush deliver` use: Sieve first, `fallback` for the keep.

    Raises SettingError for a bad global `sieve_max_actions` or `sieve_max_script_size`.
    """
    if has_sieve_settings(settings.plugin) and "sieve" not in settings.mail_plugins:
        log.warning(
            "Sieve scripts are configured but mail_plugins lacks sieve (Dovecot would not "
            "run them); mailpush runs them anyway"
        )
    return SieveFilingPlanner(
        store,
        fallback,
        settings.plugin,
        userdb_fields,
        home=home,
        autocreate=settings.lmtp.mailbox_autocreate,
        autosubscribe=settings.lmtp.mailbox_autosubscribe,
    )


class SieveFilingPlanner:
    """Runs `sieve_before`…, the user's `sieve` and `sieve_after`… scripts for each delivery.

    `plugin` holds the global `plugin {}` settings and `userdb_fields(user)`
    the user's overrides (userdb `sieve=...` fields), merged like
    `FrameworkServices.user_settings`. `home(user)` gives the home directory
    that `~` in a script path stands for. Users without any Sieve setting go
    straight to `fallback` once their fields are read.
    """

    def __init__(
        self,
        store: MailStore,
        fallback: FilingPlanner,
        plugin: Mapping[str, str],
        userdb_fields: Callable[[str], Mapping[str, str]],
        *,
        home: Callable[[str], str | None] | None = None,
        autocreate: bool = False,
        autosubscribe: bool = False,
        cache: ScriptCache | None = None,
    ) -> None:
        self._store = store
        self._fallback = fallback
        self._plugin = dict(plugin)
        self._userdb_fields = userdb_fields
        self._home = home
        self._autocreate = autocreate
        self._autosubscribe = autosubscribe
        self._cache = cache or ScriptCache()
        # Global limits are checked now, so a typo stops start-up instead of every delivery.
        _limits(self._plugin, strict=True)

    async def plan(self, request: DeliveryRequest) -> Sequence[DeliveryTarget]:
        # The user's fields are read on the loop, as RCPT's lookup of the same user
        # read them a moment ago (a stat; a re-read if the file changed): a delivery
        # without Sieve settings, most of them, then costs no thread hop. Locating,
        # loading and running scripts (file reads, compiling) goes to Sieve's threads.
        settings = self._sieve_settings(request.user)
        result = None
        if settings is not None:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(_THREADS, self._evaluate, request, settings)
        if result is None:
            return await self._fallback.plan(request)
        try:
            return await self._targets(request, result)
        except Exception:  # a bug in mailpush must not cost the message
            log.exception(
                "delivery to %s: unexpected error while filing; keeping the message",
                request.user,
            )
            return await self._fallback.plan(request)

    # --- on the loop: whether Sieve applies; on a worker thread: locate, load, run -----

    def _sieve_settings(self, user: str) -> dict[str, str] | None:
        """The user's settings if they name any Sieve script, else None (the default plan)."""
        try:
            settings = {**self._plugin, **self._userdb_fields(user)}
        except PasswdFileError as exc:
            log.error("delivery to %s: %s; keeping the message", user, exc)
            return None
        return settings if has_sieve_settings(settings) else None

    def _evaluate(self, request: DeliveryRequest, settings: dict[str, str]) -> SieveResult | None:
        """What the scripts decided; None for the default plan (no usable scripts)."""
        user = request.user
        try:
            home = self._home(user) if self._home is not None else None
            locations = script_locations(settings, user, home or settings.get("home"))
        except (SettingError, PasswdFileError) as exc:
            log.error("delivery to %s: %s; keeping the message", user, exc)
            return None
        try:
            max_actions, max_size = _limits(settings, strict=False)
            scripts = [loaded for at in locations for loaded in self._load(at, max_size)]
            if not scripts:
                return None
            message = SieveMessage(request.raw, Envelope(request.sender or "", request.recipient))
            return run_sequence(scripts, message, max_actions=max_actions)
        except Exception:  # a bug in mailpush must not cost the message
            log.exception(
                "delivery to %s: unexpected error with the script(s) %s; "
                "keeping the message",
                user,
                ", ".join(str(location.path) for location in locations),
            )
            return None

    def _load(self, location: ScriptLocation, max_size: int) -> list[LoadedScript]:
        return self._cache.scripts_at(location, max_size)

    # --- back on the event loop: actions → targets -------------------------------------

    async def _targets(
        self, request: DeliveryRequest, result: SieveResult
    ) -> Sequence[DeliveryTarget]:
        user = request.user
        if result.failure is not None:
            if isinstance(result.failure, SieveRuntimeError):
                log.error("%s", result.failure)  # compile errors were logged at load
            log.info("delivery to %s: a script failed, keeping the message", user)
        targets = _Targets()
        keep = result.implicit_keep
        keep_flags = result.keep_flags
        for action in result.actions:
            if isinstance(action, RedirectAction):
                log.warning(
                    "%s:%d: redirect to <%s> not performed: mailpush does not send "
                    "mail; the message is kept instead",
                    action.script,
                    action.line,
                    action.address,
                )
            elif isinstance(action, KeepAction):
                for target in await self._fallback.plan(request):
                    targets.add(target.mailbox, action.flags, target.create)
            elif isinstance(action, FileIntoAction):
                if not await self._file_into(user, action, targets):
                    keep = True
        if keep:
            for target in await self._fallback.plan(request):
                targets.add(target.mailbox, keep_flags, target.create)
        return targets.wanted_targets()

    async def _file_into(self, user: str, action: FileIntoAction, targets: _Targets) -> bool:
        """Add the fileinto target; False when it cannot be done and the keep must step in."""
        try:
            name = normalize_mailbox_name(action.mailbox)
        except InvalidMailboxNameError as exc:
            log.error(
                "%s:%d: fileinto %r: %s; keeping the message in INBOX",
                action.script, action.line, action.mailbox, exc,
            )
            return False
        if name == INBOX or await self._exists(user, name):
            targets.add(name, action.flags, False)
            return True
        if not (action.create or self._autocreate):
            log.warning(
                "%s:%d: fileinto %r: mailbox doesn't exist (use fileinto :create or "
                "lda_mailbox_autocreate); keeping the message in INBOX",
                action.script, action.line, name,
            )
            return False
        if self._autosubscribe:
            # Dovecot creates and subscribes before saving; the target still says
            # create in case the mailbox is deleted in between.
            try:
                await self._store.create_mailbox(user, name)
                await self._store.subscribe(user, name)
            except MailboxExistsError:
                await self._store.subscribe(user, name)
            except (TooManyMailboxesError, InvalidMailboxNameError):
                pass  # not created: the store's delivery files into INBOX instead
        targets.add(name, action.flags, True)
        return True

    async def _exists(self, user: str, name: str) -> bool:
        try:
            await self._store.mailbox(user, name)
        except (MailboxNotFoundError, MailboxNotSelectableError, UnknownUserError):
            return False
        return True


class _Targets:
    """Targets by mailbox: a second action into the same mailbox adds its flags, no copy.

    RFC 5228 §4.2: the same message is never filed twice into one mailbox.
    """

    def __init__(self) -> None:
        self.wanted: dict[str, tuple[list[str], bool]] = {}

    def add(self, mailbox: str, flags: Sequence[str], create: bool) -> None:
        name = normalize_mailbox_name(mailbox)
        known, was_create = self.wanted.get(name, ([], False))
        self.wanted[name] = ([*known, *flags], was_create or create)

    def wanted_targets(self) -> list[DeliveryTarget]:
        targets = []
        for name, (flags, create) in self.wanted.items():
            system, keywords = split_flags(flag for flag in flags if _storable(flag))
            targets.append(DeliveryTarget(name, system & STORED_FLAGS, keywords, create))
        return targets


def _storable(flag: str) -> bool:
    """imap4flags ignores flags IMAP cannot store (RFC 5232 §3)."""
    if flag.startswith("\\"):
        return True  # split_flags keeps the system flags it knows and drops the rest
    return all(" " < char < "\x7f" and char not in _NOT_IN_KEYWORD for char in flag)


def _limits(settings: Mapping[str, str], *, strict: bool) -> tuple[int, int]:
    """(`sieve_max_actions`, `sieve_max_script_size`); 0 means no limit, as in Dovecot.

    At start-up (`strict`) a bad global value is a SettingError; a bad per-user
    value is logged and the default used, so one user's field cannot stop delivery.
    """
    values = []
    parsers: tuple[tuple[str, Callable[[str], int], int], ...] = (
        ("sieve_max_actions", lambda text: parse_int(text, minimum=0), DEFAULT_MAX_ACTIONS),
        ("sieve_max_script_size", parse_size, DEFAULT_MAX_SCRIPT_SIZE),
    )
    for name, parse, default in parsers:
        text = settings.get(name, "").strip()
        if not text:
            values.append(default)
            continue
        try:
            values.append(parse(text))
        except InvalidValueError as exc:
            if strict:
                raise SettingError(name, str(exc), "plugin") from exc
            log.error("%s = %r: %s; using %d", name, text, exc, default)
            values.append(default)
    return values[0], values[1]
