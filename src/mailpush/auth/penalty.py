"""Slowing down password guessing per client IP, as Dovecot's `auth_penalty`.

Each failed login from an IP raises its penalty by one (up to 4); the next
login from that IP, on any connection, waits `initial * 2**penalty` seconds
(at most `maximum`) before its password is checked. With Dovecot's numbers
(2 s, 15 s) the waits are 4, 8, 15, 15 s after the first, second, third and
later failures, on top of the `auth_failure_delay` every failure gets. A
success resets the penalty. The penalty wears off on its own: once
`maximum` seconds passed since the last failure it no longer applies, and the
entry is forgotten after `initial + 2*initial + 4*initial + maximum` seconds
(Dovecot's AUTH_PENALTY_TIMEOUT, 29 s).

Also as in Dovecot (`src/auth/auth-penalty.c`, `src/anvil/penalty.c`):
IPv6 addresses count per /48, so one host cannot escape by rotating
addresses; and a login that repeats one of the last ten failed user+password
pairs does not raise the penalty, since it is most likely a client with a
stale saved password rather than a guesser. The pairs are kept as keyed
digests, never as passwords.

The state is one in-memory table shared by every IMAP listener of the
process; waiting is `asyncio.sleep`, so a penalised client never holds up
the event loop.

Password checks from one IP (or /48) run one at a time (`turn`): the wait is
read when a login's turn comes, after the check before it has counted its
failure, so parallel connections cannot all pass at penalty 0 and then guess
at once. (Dovecot's auth process reads the penalty per request and does not
serialise; this is stricter on purpose.) The queue behind a penalised IP is
bounded: beyond `max_waiting` waiting logins, more are refused at once
(`TooManyLoginsWaitingError`) instead of each holding a connection for
minutes. An IP without a penalty is never refused, since its queue drains at
the speed of password checks (a NAT or a client opening many connections).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from ..errors import TooManyLoginsWaitingError

__all__ = ["AuthPenalty"]

#: Dovecot's AUTH_PENALTY_INIT_SECS and AUTH_PENALTY_MAX_SECS.
DEFAULT_INITIAL = 2.0
DEFAULT_MAXIMUM = 15.0
#: Dovecot's AUTH_PENALTY_MAX_PENALTY: the count stops rising here.
MAX_PENALTY = 4
#: Failed user+password pairs remembered per IP (Dovecot's CHECKSUM_VALUE_PTR_COUNT).
REMEMBERED_PAIRS = 10
#: IPv6 addresses share a penalty per prefix of this length (PENALTY_IPV6_MASK_BITS).
IPV6_PREFIX = 48
#: Logins that may queue behind the one being checked, per penalised IP.
DEFAULT_MAX_WAITING = 16


@dataclass
class _Entry:
    penalty: int = 0
    last_penalty: float = 0.0
    last_update: float = 0.0
    pairs: deque[bytes] = field(default_factory=lambda: deque(maxlen=REMEMBERED_PAIRS))


@dataclass
class _Turn:
    """One IP's password-check queue: the check in flight and the logins behind it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class AuthPenalty:
    """The per-IP failure penalty of one process."""

    def __init__(
        self,
        initial: float = DEFAULT_INITIAL,
        maximum: float = DEFAULT_MAXIMUM,
        *,
        max_waiting: int = DEFAULT_MAX_WAITING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.max_waiting = max_waiting
        self._turns: dict[str, _Turn] = {}
        self._clock = clock
        self._expire_after = initial + 2 * initial + 4 * initial + maximum
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._pair_key = secrets.token_bytes(16)

    def __len__(self) -> int:
        """How many IPs (or IPv6 /48s) are remembered."""
        return len(self._entries)

    @asynccontextmanager
    async def turn(self, remote_ip: str) -> AsyncIterator[None]:
        """Wait for this IP's turn and its penalty; check the password inside.

        Record the outcome (`failed`/`succeeded`) before leaving, so that the
        next login of the IP waits the penalty this one earned. Raises
        `TooManyLoginsWaitingError`, without waiting, when the IP has a penalty
        and `max_waiting` logins already queue behind its check (on arrival, or
        when a login that queued before the penalty reaches the front).
        """
        ident = _ident(remote_ip)
        turn = self._turns.get(ident)
        if turn is None:
            turn = self._turns[ident] = _Turn()
        if turn.users > self.max_waiting and self.penalty(remote_ip) > 0:
            raise TooManyLoginsWaitingError(remote_ip)
        turn.users += 1
        try:
            async with turn.lock:
                # Logins that queued while the IP had no penalty: once it has one,
                # those beyond the bound are refused as they come up, not kept waiting.
                if turn.users - 1 > self.max_waiting and self.penalty(remote_ip) > 0:
                    raise TooManyLoginsWaitingError(remote_ip)
                wait = self.delay(remote_ip)
                if wait > 0:
                    await asyncio.sleep(wait)
                yield
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._turns[ident]

    def delay(self, remote_ip: str) -> float:
        """Seconds a login from `remote_ip` waits before its password is checked."""
        penalty = self.penalty(remote_ip)
        return 0.0 if penalty == 0 else self._seconds(penalty)

    def penalty(self, remote_ip: str) -> int:
        """The current penalty count of `remote_ip`, after it wore off with time."""
        now = self._clock()
        self._forget_expired(now)
        entry = self._entries.get(_ident(remote_ip))
        if entry is None:
            return 0
        penalty = entry.penalty
        # Dovecot's decay: the penalty drops by one for each of the waits
        # (longest first) that has fully passed since the last failure.
        drop = MAX_PENALTY
        while penalty > 0 and now - entry.last_penalty >= self._seconds(drop):
            drop -= 1
            penalty -= 1
        return penalty

    def failed(self, remote_ip: str, user: str, password: str) -> None:
        """Count a failed login (the same user and password again counts once)."""
        now = self._clock()
        ident = _ident(remote_ip)
        current = self.penalty(remote_ip)
        entry = self._entries.pop(ident, None) or _Entry()
        pair = hmac.new(
            self._pair_key, f"{user}\0{password}".encode("utf-8", "surrogateescape"),
            hashlib.sha256,
        ).digest()[:16]  # fmt: skip
        value = min(current + 1, MAX_PENALTY)
        if pair in entry.pairs:
            entry.pairs.remove(pair)
            entry.pairs.appendleft(pair)
            entry.penalty = value - 1
        else:
            entry.pairs.appendleft(pair)
            entry.penalty = value
            entry.last_penalty = now
        entry.last_update = now
        self._entries[ident] = entry

    def succeeded(self, remote_ip: str) -> None:
        """A successful login clears the IP's penalty."""
        self._entries.pop(_ident(remote_ip), None)

    def _seconds(self, penalty: int) -> float:
        return float(min(self.initial * 2**penalty, self.maximum))

    def _forget_expired(self, now: float) -> None:
        entries = self._entries
        while entries:
            ident, entry = next(iter(entries.items()))
            if now - entry.last_update < self._expire_after:
                break
            del entries[ident]


def _ident(remote_ip: str) -> str:
    """The key an address is counted under: itself, or its /48 for IPv6."""
    try:
        address = ipaddress.ip_address(remote_ip.split("%")[0])
    except ValueError:
        return remote_ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False).network_address)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
