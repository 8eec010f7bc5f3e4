"""When to try a failed push transaction again, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    #: Delay before the first retry; doubled each time up to `max_interval`.
    initial: float = 1.0
    max_interval: float = 300.0
    #: A transaction still failing this long after its first attempt is a dead letter.
    max_age: float = 86400.0
    #: Each delay is drawn from [delay × (1 − jitter), delay × (1 + jitter)] so that
    #: many transactions failing together do not retry in lockstep.
    jitter: float = 0.2

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (1-based)."""
        base = min(self.max_interval, self.initial * (2 ** max(0, attempts - 1)))
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return float(max(0.0, base * (1 + spread)))

    def gives_up(self, first_attempt: float, now: float) -> bool:
        return now - first_attempt >= self.max_age
