"""Hands committed push transactions to drivers: ordered per user, bounded, retried.

The dispatcher claims due deliveries from the outbox (a database row per
transaction and driver instance), groups them by (driver, user) and runs each
group strictly in commit order in its own task; different groups run
concurrently, at most `concurrency` at a time. It wakes on every commit (the
change hub) and otherwise every `poll_interval` seconds for retries that fell
due and for transactions written by other processes (`mailpush deliver`).

Nothing is lost on a crash: a claim is only a state in the database, and
claims left `inflight` by a dead process are reset to pending at start.
Delivery is at-least-once; every transaction keeps its id across attempts.

Successful deliveries are marked done in batches, written by one flusher
task while the next transactions already run: the store's writer is shared
with mail delivery, and one write per pushed transaction would compete with
it. A crash before the batch commits only means those transactions are
delivered again (at-least-once), never lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from ..drivers.base import PushDriver
from ..errors import PermanentDriverError, RetryableDriverError
from ..events import PushTransaction, transaction_from_json
from ..logging_config import mask_secrets
from ..store.models import ClaimedDelivery
from ..store.sqlite_outbox import DeliveryKey, SqliteOutbox
from .metrics import PushMetrics
from .retry_policy import RetryPolicy

log = logging.getLogger("mailpush.push")

CLAIM_LIMIT = 1000
PURGE_INTERVAL = 60.0


class Dispatcher:
    def __init__(
        self,
        outbox: SqliteOutbox,
        drivers: Mapping[str, PushDriver],
        *,
        policy: RetryPolicy | None = None,
        concurrency: int = 64,
        call_timeout: float = 30.0,
        retention: float = 3600.0,
        poll_interval: float = 1.0,
        metrics: PushMetrics | None = None,
    ) -> None:
        self._outbox = outbox
        self._drivers = dict(drivers)
        self._policy = policy or RetryPolicy()
        self._slots = asyncio.Semaphore(concurrency)
        self._call_timeout = call_timeout
        self._retention = retention
        self._poll_interval = poll_interval
        self.metrics = metrics or PushMetrics()
        self._wake = asyncio.Event()
        self._active: dict[DeliveryKey, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_purge = 0.0
        self._completed: list[ClaimedDelivery] = []
        self._flusher: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        reset = await self._outbox.reset_inflight()
        if reset:
            log.info("push: %d deliveries left in flight by the last run are pending again", reset)
        for driver in self._drivers.values():
            await driver.start()
        self._loop_task = asyncio.create_task(self._run(), name="push-dispatcher")

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
        for driver in self._drivers.values():
            try:
                await driver.close()
            except Exception:
                log.exception("push: closing driver %s failed", driver.config.instance)

    # --- the claiming loop ----------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self._claim_and_start()
                await self._purge_now_and_then()
            except Exception:
                log.exception("push: dispatcher round failed; retrying shortly")
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            except TimeoutError:
                pass

    async def _claim_and_start(self) -> None:
        claims = await self._outbox.claim_due(time.time(), CLAIM_LIMIT, busy=set(self._active))
        groups: dict[DeliveryKey, list[ClaimedDelivery]] = {}
        for claim in claims:
            if claim.driver not in self._drivers:
                # Configured before, not any more: keep it for when it comes back.
                await self._outbox.release([claim])
                continue
            groups.setdefault((claim.driver, claim.user), []).append(claim)
        for key, group in groups.items():
            task = asyncio.create_task(self._run_group(key, group), name=f"push-{key[0]}-{key[1]}")
            self._active[key] = task

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

    async def _run_group(self, key: DeliveryKey, group: list[ClaimedDelivery]) -> None:
        done = 0
        try:
            async with self._slots:
                for claim in group:
                    if self._stopping and done:
                        break
                    delivered = await self._deliver(claim)
                    done += 1
                    if not delivered:
                        break  # later transactions of this user wait for this one
        finally:
            try:
                await asyncio.shield(self._outbox.release(group[done:]))
            finally:
                self._active.pop(key, None)
                if not self._stopping:
                    self._wake.set()

    # --- one delivery -------------------------------------------------------------------

    async def _deliver(self, claim: ClaimedDelivery) -> bool:
        """Run one transaction through one driver; True if it may be followed by the next."""
        driver = self._drivers[claim.driver]
        try:
            txn = transaction_from_json(claim.payload)
        except ValueError as exc:
            await self._bury(claim, f"unreadable outbox payload: {exc}")
            return True
        try:
            await asyncio.wait_for(self._run_driver(driver, txn), self._call_timeout)
        except PermanentDriverError as exc:
            await self._bury(claim, str(exc))
            return True
        except TimeoutError:
            return await self._retry_or_bury(
                claim, f"no result within {self._call_timeout:g}s (mailpush_push_timeout)"
            )
        except asyncio.CancelledError:
            raise
        except RetryableDriverError as exc:
            return await self._retry_or_bury(claim, str(exc))
        except Exception as exc:
            log.exception("push: driver %s raised unexpectedly", claim.driver)
            return await self._retry_or_bury(claim, f"{exc.__class__.__name__}: {exc}")
        self._mark_completed(claim)
        self.metrics.transactions.labels(claim.driver, "delivered").inc()
        self.metrics.latency.labels(claim.driver).observe(max(0.0, time.time() - claim.created))
        return True

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
                # Still `inflight`: reset to pending at the next start and delivered again.
                log.exception("push: could not mark %d deliveries done", len(batch))

    async def _run_driver(self, driver: PushDriver, txn: PushTransaction) -> None:
        state = await driver.begin_txn(txn)
        if state is None:
            return
        try:
            for event in txn.events:
                if driver.subscribes(event.name):
                    await driver.process_event(state, event)
        except BaseException:
            await driver.end_txn(state, False)
            raise
        await driver.end_txn(state, True)

    async def _retry_or_bury(self, claim: ClaimedDelivery, error: str) -> bool:
        now = time.time()
        error = mask_secrets(error)
        first = claim.first_attempt if claim.first_attempt is not None else now
        if self._policy.gives_up(first, now):
            await self._bury(claim, f"{error} (gave up after {claim.attempts + 1} attempts)")
            return True
        delay = self._policy.delay(claim.attempts + 1)
        await self._outbox.retry(claim, now + delay, error)
        self.metrics.retries.labels(claim.driver).inc()
        self.metrics.transactions.labels(claim.driver, "retry").inc()
        log.warning(
            "push: %s for %s, transaction %s: %s; retry %d in %.1fs",
            claim.driver, claim.user, claim.txn_id, error, claim.attempts + 1, delay,
        )
        return False

    async def _bury(self, claim: ClaimedDelivery, error: str) -> None:
        error = mask_secrets(error)
        await self._outbox.bury(claim, error)
        self.metrics.dead_letters.labels(claim.driver).inc()
        self.metrics.transactions.labels(claim.driver, "dead").inc()
        log.error(
            "push: %s for %s, transaction %s is a dead letter: %s"
            " (list: mailpush queue dead; retry: mailpush queue replay %d)",
            claim.driver, claim.user, claim.txn_id, error, claim.outbox_id,
        )
