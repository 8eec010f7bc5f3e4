"""The per-IP failure penalty follows Dovecot's auth_penalty numbers exactly."""

from __future__ import annotations

import asyncio
import time

from mailpush.auth import AuthPenalty
from mailpush.errors import TooManyLoginsWaitingError


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(penalty: AuthPenalty, ip: str, n: int, user: str = "alice") -> None:
    for i in range(n):
        penalty.failed(ip, user, f"guess{i}")


def test_waits_double_from_4_s_up_to_15_s_as_in_dovecot() -> None:
    penalty = AuthPenalty(clock=Clock())
    waits = []
    for i in range(6):
        waits.append(penalty.delay("192.0.2.1"))
        penalty.failed("192.0.2.1", "alice", f"guess{i}")
    # auth_penalty_to_secs(): 2 * 2**penalty, capped at 15; no wait before the first try.
    assert waits == [0.0, 4.0, 8.0, 15.0, 15.0, 15.0]


def test_the_penalty_is_per_ip() -> None:
    penalty = AuthPenalty(clock=Clock())
    fail(penalty, "192.0.2.1", 3)
    assert penalty.delay("192.0.2.1") == 15.0
    assert penalty.delay("192.0.2.2") == 0.0


def test_ipv6_addresses_share_a_penalty_per_48_bit_prefix() -> None:
    penalty = AuthPenalty(clock=Clock())
    fail(penalty, "2001:db8:1:aaaa::1", 2)
    assert penalty.delay("2001:db8:1:bbbb::2") == 8.0
    assert penalty.delay("2001:db8:2::1") == 0.0


def test_an_ipv4_mapped_address_counts_as_the_ipv4_address() -> None:
    penalty = AuthPenalty(clock=Clock())
    fail(penalty, "::ffff:192.0.2.7", 1)
    assert penalty.delay("192.0.2.7") == 4.0


def test_a_success_resets_the_penalty() -> None:
    penalty = AuthPenalty(clock=Clock())
    fail(penalty, "192.0.2.1", 3)
    penalty.succeeded("192.0.2.1")
    assert penalty.delay("192.0.2.1") == 0.0
    penalty.failed("192.0.2.1", "alice", "again")
    assert penalty.delay("192.0.2.1") == 4.0


def test_the_penalty_no_longer_applies_15_s_after_the_last_failure() -> None:
    clock = Clock()
    penalty = AuthPenalty(clock=clock)
    fail(penalty, "192.0.2.1", 4)
    clock.now += 14.9
    assert penalty.delay("192.0.2.1") == 15.0
    clock.now += 0.1
    assert penalty.delay("192.0.2.1") == 0.0


def test_entries_are_forgotten_after_29_s() -> None:
    clock = Clock()
    penalty = AuthPenalty(clock=clock)
    fail(penalty, "192.0.2.1", 1)
    clock.now += 28.9
    penalty.delay("192.0.2.9")
    assert penalty.penalty("192.0.2.1") == 0  # decayed, but still remembered
    assert len(penalty) == 1
    clock.now += 0.1
    penalty.delay("192.0.2.9")
    assert len(penalty) == 0


def test_the_same_user_and_password_again_does_not_raise_the_penalty() -> None:
    penalty = AuthPenalty(clock=Clock())
    for _ in range(5):
        penalty.failed("192.0.2.1", "alice", "stale saved password")
    assert penalty.delay("192.0.2.1") == 4.0
    penalty.failed("192.0.2.1", "alice", "a new guess")
    assert penalty.delay("192.0.2.1") == 8.0


def test_the_scale_follows_the_initial_delay() -> None:
    penalty = AuthPenalty(initial=0.05, maximum=0.3, clock=Clock())
    waits = []
    for i in range(4):
        penalty.failed("192.0.2.1", "alice", f"guess{i}")
        waits.append(penalty.delay("192.0.2.1"))
    assert waits == [0.1, 0.2, 0.3, 0.3]


async def test_checks_from_one_ip_take_turns_and_each_waits_the_penalty_before_it() -> None:
    penalty = AuthPenalty(initial=0.05, maximum=1.0)
    order: list[tuple[str, float]] = []
    started = time.monotonic()

    async def guess(n: int) -> None:
        async with penalty.turn("192.0.2.1"):
            order.append((f"check{n}", time.monotonic() - started))
            penalty.failed("192.0.2.1", "alice", f"guess{n}")

    await asyncio.gather(*(guess(n) for n in range(3)))
    # No wait, then 0.1 s (penalty 1), then 0.2 s (penalty 2): one after the other.
    times = [t for _, t in order]
    assert times[0] < 0.05
    assert times[1] - times[0] >= 0.09
    assert times[2] - times[1] >= 0.19
    assert penalty._turns == {}  # a drained queue is forgotten


async def test_a_penalised_ip_with_a_full_queue_is_refused_without_waiting() -> None:
    penalty = AuthPenalty(initial=0.05, maximum=1.0, max_waiting=1)
    penalty.failed("192.0.2.1", "alice", "guess")
    refused: list[int] = []

    async def login(n: int) -> None:
        try:
            async with penalty.turn("192.0.2.1"):
                pass
        except TooManyLoginsWaitingError:
            refused.append(n)

    await asyncio.gather(*(login(n) for n in range(4)))
    assert refused == [2, 3]  # one checked, one queued behind it
    # Without a penalty nobody is refused, however many queue.
    fresh = AuthPenalty(max_waiting=1)
    await asyncio.gather(*(_enter(fresh, "192.0.2.9") for _ in range(10)))


async def _enter(penalty: AuthPenalty, ip: str) -> None:
    async with penalty.turn(ip):
        await asyncio.sleep(0)


async def test_a_burst_queued_before_the_penalty_is_cut_to_the_bound_once_one_fails() -> None:
    penalty = AuthPenalty(initial=0.05, maximum=1.0, max_waiting=2)
    checked: list[int] = []
    refused: list[int] = []

    async def guess(n: int) -> None:
        try:
            async with penalty.turn("192.0.2.1"):
                checked.append(n)
                await asyncio.sleep(0.01)  # the password check, while the others queue
                penalty.failed("192.0.2.1", "alice", f"guess{n}")
        except TooManyLoginsWaitingError:
            refused.append(n)

    started = time.monotonic()
    await asyncio.gather(*(guess(n) for n in range(10)))
    # The first fails; the seven beyond the two allowed to wait are refused at once.
    assert checked == [0, 7, 8, 9]
    assert sorted(refused) == list(range(1, 7))
    assert time.monotonic() - started < 0.04 + 0.1 + 0.2 + 0.4 + 0.2
