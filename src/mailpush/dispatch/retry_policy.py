"""When to try a failed push delivery again, and when to give up.

The global policy comes from `mailpush_push_retry_initial`,
`mailpush_push_retry_max_interval` and `mailpush_push_max_age`; each driver
instance may narrow it with its retry options (`delivery_attempts`,
`retry_initial`, `retry_max_interval`, `max_age`), whose defaults the driver
declares (`PushDriver.option_schema`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from ..drivers.driver_options import RetryOptions


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
    #: Attempts in all (the first included) before a dead letter; 0: only `max_age` counts.
    max_attempts: int = 0

    def with_options(self, options: RetryOptions) -> RetryPolicy:
        """This policy narrowed by one driver instance's retry options."""
        return replace(
            self,
            initial=self.initial if options.initial is None else options.initial,
            max_interval=self.max_interval if options.max_interval is None
            else options.max_interval,
            max_age=self.max_age if options.max_age is None else options.max_age,
            max_attempts=self.max_attempts if options.attempts is None else options.attempts,
        )

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (1-based)."""
        base = min(self.max_interval, self.initial * (2 ** max(0, attempts - 1)))
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return float(max(0.0, base * (1 + spread)))

    def gives_up(self, first_attempt: float, now: float, attempts: int = 0) -> bool:
        """Whether a delivery that has failed `attempts` times in all is a dead letter now."""
        if self.max_attempts and attempts >= self.max_attempts:
            return True
        return now - first_attempt >= self.max_age

    def limits(self, attempts: int) -> str:
        """Which limit `gives_up` reached, for the dead letter's reason."""
        if self.max_attempts and attempts >= self.max_attempts:
            return f"gave up after {attempts} attempts (delivery_attempts = {self.max_attempts})"
        return f"gave up after {attempts} attempts in {self.max_age:g}s (max_age)"
