"""Hands committed push transactions to drivers: ordered per user, bounded, retried.

The dispatcher claims due deliveries from the outbox (a database row per
transaction and driver instance). For a driver whose transactions depend on
each other (`PushDriver.ordered`: lua, dlog, a webhook with `ordered = yes`)
it groups them by (driver, user) and runs each group strictly in commit order
in its own task, a failing transaction holding back the user's later ones.
Every other delivery (chronos, ox, an unordered webhook, and requests the
Lua option `http_resend` journaled) is retried on its own: those claimed
together still run in commit order, one after another, but a failure does
not stop the group, and a retry runs beside the user's newer deliveries, not
before them. At most `concurrency` groups run at once. It wakes on every commit (the change hub),
other processes' too (`mailpush deliver`, admin commands, other workers: the
change feed publishes them as `ChangedElsewhere`, docs/operations.md#the-change-feed),
and otherwise every `poll_interval` seconds for retries that fell due and for an
announcement that came late.

Retries follow each driver instance's policy: the global one narrowed by the
driver's retry options (`delivery_attempts`, `retry_initial`,
`retry_max_interval`, `max_age`; see retry_policy.py).

The framework, not each driver, decides the order of a driver's calls, as
Dovecot makes them (docs/dovecot-reference.md#call-order-of-interleaved-transactions,
docs/dovecot-reference.md#rolled-back-transactions). The transactions one
store operation produced form an operation group (events/model.py), run and
settled (completed, retried, buried) as one unit by an ordered driver:
walking the group in order, a transaction that completes at once (a mailbox
operation) gets begin_txn, its events and end_txn where it stands; a
`deferred` one (a message transaction, committed with the operation) gets
begin_txn where it stands and its events and end_txn after the walk, in the
order they began. MOVE thus gives begin(dest), begin(source), dest events,
end, source events, end; with at most one deferred transaction this is
simply one transaction after another. A rolled-back transaction gets
begin_txn and end_txn(false), no event. A claim that the claim limit cut in
the middle of a group gives the group's tail back, to be taken whole in the
next round. Unordered drivers run each transaction on its own.

Time limits: `mailpush_push_timeout` bounds one attempt per event it carries
(at least one per transaction, summed over a group). The simple example
script of Dovecot's Lua push documentation
(docs/dovecot-reference.md#http-requests-of-the-example-scripts) sends one
POST per message from end_txn, so a 150-message COPY takes 150
times as long as one delivery and must not be cut (and sent again) for that;
a stuck one is still cut, at that bound. The cut is an attempt of the
transaction that was running; the group's others not yet run (or begun and
waiting for their events) are given back untouched, not retried: they were
never tried, and with few `delivery_attempts` would be buried unsent.

Nothing is lost on a crash: a claim is only a state in the database, held
under a lease (`store/outbox_claimants.py`) that this dispatcher renews every
third of `claim_lease` (`mailpush_push_claim_lease`) while it runs. Claims of
a dead process of this host are pending again when the next dispatcher
starts; those of a dispatcher on another node (several nodes on one
PostgreSQL database) when their lease has run out, which every dispatcher
looks for as it renews its own (docs/postgresql.md#dispatch-across-nodes).
Delivery is at-least-once; every transaction keeps its id across attempts.
No crash loops either: a delivery is marked started just before it runs, and
one that was running each time the process died, twice, is a dead letter at
start rather than run a third time — its answer may be what kills the server.

Successful deliveries are marked done in batches, written by one flusher
task while the next transactions already run: the store's writer is shared
with mail delivery, and one write per pushed transaction would compete with
it. A crash before the batch commits only means those transactions are
delivered again (at-least-once), never lost.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..drivers.base import PushDriver
from ..drivers.http_tls import driver_ssl_context
from ..errors import PermanentDriverError, RetryableDriverError
from ..events import PushTransaction, transaction_from_json
from ..logging_config import mask_secrets
from ..store.models import ClaimedDelivery, InflightRecovery
from ..store.outbox import HTTP_REQUEST, DeliveryKey, PushOutbox
from ..store.outbox_claimants import CLAIM_LEASE
from .metrics import PushMetrics
from .request_journal import resend
from .retry_policy import RetryPolicy

log = logging.getLogger(__name__)

CLAIM_LIMIT = 1000
PURGE_INTERVAL = 60.0
#: The longest error text kept with a delivery (dead letters, logs); the rest is cut.
MAX_ERROR_LENGTH = 1000

#: (driver, user, outbox id): what one task works on. The outbox id is 0 for an
#: ordered (driver, user) group (one at a time), else the group's first delivery's.
GroupKey = tuple[str, str, int]


@dataclass(slots=True)
class _Unit:
    """What is delivered and settled together: one claim, or an operation group's."""

    claims: list[ClaimedDelivery]
    #: Their transactions, in order; empty for a journaled request.
    txns: list[PushTransaction] = field(default_factory=list)
    #: Why the (one) claim's payload cannot be read, if it cannot.
    unreadable: str | None = None

    @property
    def group(self) -> str:
        return self.txns[-1].group if self.txns else ""


@dataclass(slots=True)
class _Outcome:
    """How one transaction of a unit went: delivered, failed with `error`, or not run."""

    done: bool = False
    error: Exception | None = None
    #: Its driver calls are under way (a deferred one between its begin_txn and its
    #: events is waiting, not running): the one a time-out is charged to.
    running: bool = False


class Dispatcher:
    def __init__(
        self,
        outbox: PushOutbox,
        drivers: Mapping[str, PushDriver],
        *,
        policy: RetryPolicy | None = None,
        concurrency: int = 64,
        call_timeout: float = 30.0,
        retention: float = 3600.0,
        poll_interval: float = 1.0,
        metrics: PushMetrics | None = None,
        claim_lease: float = CLAIM_LEASE,
    ) -> None:
        self._outbox = outbox
        self._drivers = dict(drivers)
        self._base_policy = policy or RetryPolicy()
        self._policies: dict[str, RetryPolicy] = {}
        #: Drivers whose deliveries need not wait for each other, and those that must.
        self._independent: frozenset[str] = frozenset()
        self._ordered: frozenset[str] = frozenset()
        self._derive_driver_policies()
        self._tls: dict[str, ssl.SSLContext] = {}
        self._concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        #: Drivers a reload replaced, closed once the deliveries they were running end.
        self._retiring: set[asyncio.Task[None]] = set()
        self._call_timeout = call_timeout
        self._retention = retention
        self._poll_interval = poll_interval
        self.metrics = metrics or PushMetrics()
        self._wake = asyncio.Event()
        self._active: dict[GroupKey, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_purge = 0.0
        self._completed: list[ClaimedDelivery] = []
        self._flusher: asyncio.Task[None] | None = None
        #: Claims whose groups start in this turn of the event loop, and the write that
        #: will mark them started (`_mark_started`).
        self._starting: tuple[list[ClaimedDelivery], asyncio.Future[None]] | None = None
        #: Those writes while they run (the loop keeps only weak references to tasks).
        self._start_writes: set[asyncio.Task[None]] = set()
        self._leases: asyncio.Task[None] | None = None
        self._claim_lease = claim_lease
        #: Set by a reload that changed the lease: renew under the new one now.
        self._lease_changed = asyncio.Event()

    @property
    def claim_lease(self) -> float:
        """Seconds this dispatcher's claims are held without renewal (renewed every third of
        it); how long another node waits before it sends the claims of a dead one."""
        return self._claim_lease

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        recovery = await self._outbox.reset_inflight()
        self._report(recovery, "left in flight by the last run")
        for driver in self._drivers.values():
            await driver.start()
        self._loop_task = asyncio.create_task(self._run(), name="push-dispatcher")
        self._leases = asyncio.create_task(self._keep_leases(), name="push-claim-leases")

    def _report(self, recovery: InflightRecovery, whose: str) -> None:
        if recovery.pending_again:
            log.info("%d deliveries %s are pending again", recovery.pending_again, whose)
        for letter in recovery.buried:
            self.metrics.dead_letters.labels(letter.driver).inc()
            self.metrics.transactions.labels(letter.driver, "dead").inc()
            log.error(
                "%s for %s, %s %s is a dead letter: %s (list: mailpush queue dead;"
                " retry: mailpush queue replay %d)",
                letter.driver, letter.user, _what(letter.kind), letter.txn_id, letter.last_error,
                letter.outbox_id,
            )

    async def _keep_leases(self) -> None:
        """Every third of the lease: renew this dispatcher's claims, and take over those of
        dispatchers whose lease ran out (another node died or lost the database).

        A task of its own, not a step of the claiming loop, which may sleep longer
        than a lease between rounds. A reload that changes the lease renews at once:
        claims made under a shorter one must not wait out the longer one's pause."""
        while True:
            try:
                await asyncio.wait_for(self._lease_changed.wait(), self._claim_lease / 3)
            except TimeoutError:
                pass
            self._lease_changed.clear()
            lease, now = self._claim_lease, time.time()
            try:
                await self._outbox.renew_claims(now, lease)
                recovery = await self._outbox.take_over_expired(now)
            except Exception:
                log.exception(
                    "could not renew the push claims' leases; another node may send"
                    " them again after %gs (mailpush_push_claim_lease)", lease,
                )  # fmt: skip
                continue
            if recovery.pending_again or recovery.buried:
                self._report(recovery, "whose dispatcher's lease ran out")
                self._wake.set()

    def wake(self, *_: object) -> None:
        """Something was committed: look for work now (a change-hub subscriber)."""
        self._wake.set()

    async def stop(self, timeout: float) -> None:
        """Stop claiming, let running deliveries finish (up to `timeout`), release the rest."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
            self._loop_task = None
        running = list(self._active.values())
        if running:
            _, pending = await asyncio.wait(running, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._flusher is not None:
            await self._flusher
        await self._flush_completed()
        if self._leases is not None:
            # After the last write: what is still claimed stays leased until then.
            self._leases.cancel()
            await asyncio.gather(self._leases, return_exceptions=True)
            self._leases = None
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        await _close_drivers(self._drivers.values())

    async def replace_drivers(
        self,
        drivers: Mapping[str, PushDriver],
        policy: RetryPolicy,
        *,
        concurrency: int,
        call_timeout: float,
        retention: float,
        claim_lease: float | None = None,
    ) -> asyncio.Task[None]:
        """A reload: claims from now on go to `drivers` (started here first).

        A delivery running now finishes with the driver it began with; the
        replaced drivers are closed once those deliveries end (the returned
        task). A claim of a later unit whose driver instance is gone is given
        back as pending (`_deliver`), and nothing claims the rows of an
        instance no longer configured: they stay pending in the outbox, to be
        sent if an instance of that name is configured again.

        A new `claim_lease` (None: unchanged) holds the claims from now on, those
        already made too: they are renewed under it at once. Each claim carries the
        end of its own lease, so nodes with different leases share an outbox.
        """
        started: list[PushDriver] = []
        try:
            for driver in drivers.values():
                await driver.start()
                started.append(driver)
        except BaseException:
            await _close_drivers(started)
            raise
        old = list(self._drivers.values())
        running = list(self._active.values())
        self._drivers = dict(drivers)
        self._base_policy = policy
        self._derive_driver_policies()
        self._tls = {}
        if concurrency != self._concurrency:
            # Running groups hold the old semaphore and give it back; new ones take this one.
            self._concurrency = concurrency
            self._slots = asyncio.Semaphore(concurrency)
        self._call_timeout = call_timeout
        self._retention = retention
        if claim_lease is not None and claim_lease != self._claim_lease:
            self._claim_lease = claim_lease
            self._lease_changed.set()
        self._wake.set()

        async def retire() -> None:
            if running:
                await asyncio.wait(running)
            await _close_drivers(old)

        task = asyncio.create_task(retire(), name="push-retire-drivers")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return task

    def _derive_driver_policies(self) -> None:
        """Each instance's retry policy (the base one narrowed by its retry options) and
        whether its deliveries are ordered, from `_drivers` and `_base_policy`: at start
        and after a reload, the one place both are derived."""
        self._policies = {
            name: self._base_policy.with_options(driver.retry)
            for name, driver in self._drivers.items()
        }
        self._independent = frozenset(
            name for name, driver in self._drivers.items() if not driver.ordered
        )
        self._ordered = frozenset(self._drivers) - self._independent

    @property
    def running(self) -> bool:
        """Whether the claiming loop is alive (`/readyz`)."""
        return self._loop_task is not None and not self._loop_task.done()

    # --- the claiming loop ----------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self._claim_and_start()
                await self._purge_now_and_then()
            except Exception:
                log.exception("dispatcher round failed; retrying shortly")
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            except TimeoutError:
                pass

    async def _claim_and_start(self) -> None:
        busy: set[DeliveryKey] = {(key[0], key[1]) for key in self._active if not key[2]}
        # Completions gathered so far go in the claiming write (the flusher writes those
        # that come while no round runs).
        completed, self._completed = self._completed, []
        try:
            claims = await self._outbox.claim_due(
                time.time(), CLAIM_LIMIT, busy,
                ordered=self._ordered, independent=self._independent, lease=self._claim_lease,
                completed=completed,
            )
        except BaseException:
            for claim in completed:
                self._mark_completed(claim)  # written by the flusher instead
            raise
        ordered: dict[DeliveryKey, list[_Unit]] = {}
        independent: dict[tuple[str, str, str], list[_Unit]] = {}
        for unit in map(_read_unit, claims):
            claim = unit.claims[0]
            if claim.kind == HTTP_REQUEST or claim.driver in self._independent:
                independent.setdefault((claim.driver, claim.user, claim.kind), []).append(unit)
            else:
                _add_to(ordered.setdefault((claim.driver, claim.user), []), unit)
        await self._release_cut_groups(ordered)
        for (driver, user), group in ordered.items():
            self._start_group((driver, user, 0), group, stop_at_failure=True)
        for (driver, user, _), group in independent.items():
            # Still one after another, in commit order (the copies of one delivery come
            # out as Dovecot sends them), but past failures, and beside other groups
            # of the user: a retry never waits for anything, nor anything for it.
            group.sort(key=lambda unit: unit.claims[0].outbox_id)
            first = group[0].claims[0].outbox_id
            self._start_group((driver, user, first), group, stop_at_failure=False)

    async def _release_cut_groups(self, ordered: dict[DeliveryKey, list[_Unit]]) -> None:
        """A claim may end a key's run inside an operation group (the claim limit cut
        it): give that group back, so that it is claimed whole next round, unless it
        is all the key has. Per (driver, user): each key's run is cut on its own."""
        cut: list[ClaimedDelivery] = []
        for units in ordered.values():
            last = units[-1]
            if len(units) > 1 and last.group and not last.txns[-1].last_in_group:
                cut += units.pop().claims
        await self._outbox.release(cut)

    def _start_group(
        self, key: GroupKey, group: list[_Unit], *, stop_at_failure: bool
    ) -> None:
        task = asyncio.create_task(
            self._run_group(key, group, stop_at_failure), name=f"push-{key[0]}-{key[1]}"
        )
        self._active[key] = task

    async def _mark_started(self, claims: Sequence[ClaimedDelivery]) -> None:
        """Mark `claims` started, in one write with those of every other group starting in
        the same turn of the event loop (after a claiming round, all of them): one write
        per group each cost the store's writer a job of its own."""
        if self._starting is None:
            loop = asyncio.get_running_loop()
            written: asyncio.Future[None] = loop.create_future()
            # Retrieved even if every group waiting for it was cancelled meanwhile.
            written.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._starting = ([], written)
            loop.call_soon(self._write_started)
        batch, written = self._starting
        batch.extend(claims)
        await asyncio.shield(written)

    def _write_started(self) -> None:
        assert self._starting is not None
        batch, written = self._starting
        self._starting = None

        async def write() -> None:
            try:
                await self._outbox.mark_started(batch)
            except Exception as exc:  # noqa: BLE001 - each waiting group gets it
                written.set_exception(exc)
            else:
                written.set_result(None)

        task = asyncio.create_task(write(), name="push-mark-started")
        self._start_writes.add(task)
        task.add_done_callback(self._start_writes.discard)

    async def _purge_now_and_then(self) -> None:
        now = time.time()
        if now - self._last_purge >= PURGE_INTERVAL:
            self._last_purge = now
            await self._outbox.purge(now - self._retention)
            await self.refresh_queue_depth()

    async def refresh_queue_depth(self) -> None:
        """Set the queue-depth gauge from the outbox (at each purge and at each scrape)."""
        for stats in await self._outbox.stats(time.time()):
            self.metrics.queue_depth.labels(stats.driver).set(
                stats.pending + stats.inflight + stats.retrying
            )

    async def _run_group(
        self, key: GroupKey, group: list[_Unit], stop_at_failure: bool
    ) -> None:
        done = 0
        try:
            async with self._slots:
                for unit in group:
                    if self._stopping and done:
                        break
                    await self._mark_started(unit.claims)
                    delivered = await self._deliver(unit)
                    done += 1
                    if not delivered and stop_at_failure:
                        break  # later transactions of this user wait for this one
        finally:
            try:
                rest = [claim for unit in group[done:] for claim in unit.claims]
                await asyncio.shield(self._outbox.release(rest))
            finally:
                self._active.pop(key, None)
                if not self._stopping:
                    self._wake.set()

    # --- one delivery -------------------------------------------------------------------

    async def _deliver(self, unit: _Unit) -> bool:
        """Run one unit through its driver; True if it may be followed by the next.

        Each transaction of an operation group is settled on its own: those that
        ran are completed, a failed one is retried or buried, and those the
        failure kept from running (or ended unsuccessfully) are given back.
        """
        claims = unit.claims
        driver = self._drivers.get(claims[0].driver)
        if driver is None:
            # Its instance was removed by a reload after the claim: pending again, kept.
            await self._outbox.release(claims)
            return False
        if unit.unreadable is not None:
            await self._bury(claims[0], f"unreadable outbox payload: {unit.unreadable}")
            return True
        outcomes = [_Outcome() for _ in claims]
        if not unit.txns:
            work = self._resend_as(driver, claims[0], outcomes[0])
            timeout = self._call_timeout
            limit = f"{timeout:g}s (mailpush_push_timeout)"
        else:
            work = self._run_driver(driver, unit.txns, outcomes)
            events = sum(max(1, len(txn.events)) for txn in unit.txns)
            timeout = self._call_timeout * events
            per = ", per event" if events > 1 else ""
            limit = f"{timeout:g}s (mailpush_push_timeout{per})"
        timed_out = None
        try:
            await asyncio.wait_for(work, timeout)
        except TimeoutError:
            timed_out = f"no result within {limit}"
        return await self._settle(claims, outcomes, timed_out)

    async def _settle(
        self, claims: Sequence[ClaimedDelivery], outcomes: Sequence[_Outcome],
        timed_out: str | None,
    ) -> bool:
        """Record each claim's outcome; True unless one is to be retried or was not run."""
        follow_on = True
        not_run: list[ClaimedDelivery] = []
        for claim, outcome in zip(claims, outcomes, strict=True):
            error = outcome.error
            if outcome.done:
                self._mark_completed(claim)
                self.metrics.transactions.labels(claim.driver, "delivered").inc()
                self.metrics.latency.labels(claim.driver).observe(
                    max(0.0, time.time() - claim.created)
                )
            elif isinstance(error, PermanentDriverError):
                await self._bury(claim, str(error))
            elif isinstance(error, RetryableDriverError):
                follow_on &= await self._retry_or_bury(claim, str(error))
            elif error is not None:
                log.error("driver %s raised unexpectedly", claim.driver, exc_info=error)
                follow_on &= await self._retry_or_bury(
                    claim, f"{error.__class__.__name__}: {error}"
                )
            elif timed_out is not None and outcome.running:
                follow_on &= await self._retry_or_bury(claim, timed_out)
            else:
                # Not begun, or begun and waiting for its events: an attempt of
                # another one used the time up, so this one is given back as it was.
                not_run.append(claim)
        if not_run:
            await self._outbox.release(not_run)
            follow_on = False
        return follow_on

    def _mark_completed(self, claim: ClaimedDelivery) -> None:
        self._completed.append(claim)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_completed(), name="push-completions")

    async def _flush_completed(self) -> None:
        """Write every completion gathered so far; those arriving meanwhile go in the next write."""
        while self._completed:
            batch, self._completed = self._completed, []
            try:
                await asyncio.shield(self._outbox.complete(batch))
            except Exception:
                # Still `inflight`: taken over when its lease runs out (or at the next
                # start) and delivered again.
                log.exception("could not mark %d deliveries done", len(batch))

    async def _run_driver(
        self, driver: PushDriver, txns: Sequence[PushTransaction], outcomes: list[_Outcome]
    ) -> None:
        """Run the transactions of one operation group in Dovecot's order (module docstring),
        recording each one's outcome; after a failure, what has not begun waits."""
        begun: list[tuple[int, PushTransaction, object]] = []
        try:
            for index, txn in enumerate(txns):
                outcomes[index].running = True
                try:
                    state = await driver.begin_txn(txn)
                except Exception as exc:
                    outcomes[index].error = exc
                    break
                if state is None:
                    outcomes[index].done = True
                elif txn.deferred:
                    outcomes[index].running = False
                    begun.append((index, txn, state))
                elif not await _finish(driver, txn, state, outcomes[index]):
                    break
            failed = any(outcome.error is not None for outcome in outcomes)
            while begun:
                index, txn, state = begun.pop(0)
                if failed:
                    await _end_unsuccessfully(driver, state)
                elif not await _finish(driver, txn, state, outcomes[index]):
                    failed = True
        except BaseException:
            for _, _, state in begun:
                await _end_unsuccessfully(driver, state)
            raise

    async def _resend_as(
        self, driver: PushDriver, claim: ClaimedDelivery, outcome: _Outcome
    ) -> None:
        outcome.running = True
        try:
            await self._resend(driver, claim)
        except Exception as exc:
            outcome.error = exc
        else:
            outcome.done = True

    async def _resend(self, driver: PushDriver, claim: ClaimedDelivery) -> None:
        """Send a request the driver journaled, with the TLS settings of its own requests."""
        name = driver.config.instance
        if name not in self._tls:
            self._tls[name] = driver_ssl_context(driver.config, driver.services)
        await resend(driver.services.http(), self._tls[name], claim.payload, self._call_timeout)

    async def _retry_or_bury(self, claim: ClaimedDelivery, error: str) -> bool:
        now = time.time()
        error = _kept(error)
        first = claim.first_attempt if claim.first_attempt is not None else now
        policy = self._policies.get(claim.driver, self._base_policy)
        attempts = claim.attempts + 1
        if policy.gives_up(first, now, attempts):
            await self._bury(claim, f"{error} ({policy.limits(attempts)})")
            return True
        delay = policy.delay(attempts)
        await self._outbox.retry(claim, now + delay, error)
        self.metrics.retries.labels(claim.driver).inc()
        self.metrics.transactions.labels(claim.driver, "retry").inc()
        log.warning(
            "%s for %s, %s %s: %s; retry %d in %.1fs",
            claim.driver, claim.user, _what(claim.kind), claim.txn_id, error, attempts, delay,
        )
        return False

    async def _bury(self, claim: ClaimedDelivery, error: str) -> None:
        error = _kept(error)
        await self._outbox.bury(claim, error)
        self.metrics.dead_letters.labels(claim.driver).inc()
        self.metrics.transactions.labels(claim.driver, "dead").inc()
        log.error(
            "%s for %s, %s %s is a dead letter: %s"
            " (list: mailpush queue dead; retry: mailpush queue replay %d)",
            claim.driver, claim.user, _what(claim.kind), claim.txn_id, error, claim.outbox_id,
        )


async def _close_drivers(drivers: Iterable[PushDriver]) -> None:
    for driver in drivers:
        try:
            await driver.close()
        except Exception:
            log.exception("closing driver %s failed", driver.config.instance)


async def _finish(
    driver: PushDriver, txn: PushTransaction, state: object, outcome: _Outcome
) -> bool:
    """A begun transaction's events, then end_txn (false, and no events, if rolled back);
    True if it went through."""
    outcome.running = True
    try:
        if not txn.rolled_back:
            try:
                for event in txn.events:
                    if driver.subscribes(event.name):
                        await driver.process_event(state, event)
            except Exception as exc:
                outcome.error = exc
                await driver.end_txn(state, False)
                return False
            except BaseException:
                await _end_unsuccessfully(driver, state)
                raise
        await driver.end_txn(state, not txn.rolled_back)
    except Exception as exc:
        outcome.error = outcome.error or exc
        return False
    outcome.done = True
    return True


async def _end_unsuccessfully(driver: PushDriver, state: object) -> None:
    """end_txn(false) for a transaction that cannot go on: a driver releases in end_txn
    what begin_txn took (a Lua state)."""
    try:
        await driver.end_txn(state, False)
    except Exception:
        log.exception("%s: end_txn after a failure failed", driver.config.instance)


def _read_unit(claim: ClaimedDelivery) -> _Unit:
    if claim.kind == HTTP_REQUEST:
        return _Unit([claim])
    try:
        return _Unit([claim], [transaction_from_json(claim.payload)])
    except ValueError as exc:
        return _Unit([claim], unreadable=str(exc))


def _add_to(units: list[_Unit], unit: _Unit) -> None:
    """Append `unit` to an ordered task's list, joining the previous one of its operation."""
    previous = units[-1] if units else None
    if previous is not None and unit.group and previous.group == unit.group:
        previous.claims += unit.claims
        previous.txns += unit.txns
    else:
        units.append(unit)


def _what(kind: str) -> str:
    return "journaled request" if kind == HTTP_REQUEST else "transaction"


def _kept(error: str) -> str:
    """An error as kept and logged: passwords masked, at most `MAX_ERROR_LENGTH` long.

    A script's reason can be megabytes. It is cut before masking too (with room
    to spare, so that a URL across the final cut is still masked whole): masking
    costs more than linear time in the length of the text.
    """
    error = mask_secrets(error[: 4 * MAX_ERROR_LENGTH])
    if len(error) <= MAX_ERROR_LENGTH:
        return error
    return error[: MAX_ERROR_LENGTH - 1] + "…"
