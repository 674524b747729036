"""Exponential backoff with full jitter, as AWS recommends for retrying clients.

The n-th wait (n = 0, 1, ...) is drawn uniformly from ``[0, min(cap, base * 2**n)]``: a fleet whose
first connections were all dropped at once spreads its reconnects out instead of returning in step.
Pure: the random source is a parameter, and nothing here sleeps.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from base.errors import InvalidInputError

DEFAULT_BASE = 1.0
DEFAULT_CAP = 30.0
DEFAULT_ATTEMPTS = 10


@dataclass(frozen=True)
class Backoff:
    """How often and how patiently to retry: ``attempts`` connections in all, the waits between them capped."""

    base: float = DEFAULT_BASE
    cap: float = DEFAULT_CAP
    attempts: int = DEFAULT_ATTEMPTS

    def __post_init__(self) -> None:
        if self.base <= 0:
            raise InvalidInputError(f"The backoff base must be more than 0 seconds, not {self.base}.")
        if self.cap < self.base:
            raise InvalidInputError(f"The backoff cap ({self.cap} s) must be at least its base ({self.base} s).")
        if self.attempts < 1:
            raise InvalidInputError(f"At least one connection attempt is needed, not {self.attempts}.")

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry number ``retry`` (0 is the wait after the first attempt)."""
        if retry >= 64:  # 2**64 * base is far beyond any cap; avoid huge floats
            return self.cap
        return min(self.cap, self.base * 2**retry)

    def delay(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry number ``retry``: full jitter, uniform in [0, ceiling]."""
        return rand() * self.ceiling(retry)

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        """The ``attempts - 1`` waits between ``attempts`` connections."""
        return (self.delay(retry, rand) for retry in range(self.attempts - 1))
