"""Per-API transactions-per-second quotas, answered with ``ThrottlingException`` like AWS.

A quota of ``{"UpdateCertificate": 10}`` gives each (account, region) a token bucket that holds
at most 10 tokens and refills at 10 a second: a burst of 10 calls passes, then one call every
100 ms. Operations without a quota are never throttled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping

from base.errors import InvalidInputError


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up; thread-safe."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one token if there is one; False means the call is throttled."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


class Quotas:
    """TPS limits by IoT operation name (``UpdateCertificate``), one bucket per account and region."""

    def __init__(
        self,
        limits: Mapping[str, float] | None = None,
        *,
        known_operations: Iterable[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = dict(limits or {})
        known = set(known_operations) if known_operations is not None else None
        for name, rate in self.limits.items():
            if known is not None and name not in known:
                raise InvalidInputError(
                    f"Unknown AWS IoT operation {name!r} in the quotas; use names like UpdateCertificate."
                )
            if not isinstance(rate, int | float) or rate <= 0:
                raise InvalidInputError(
                    f"The quota for {name} must be a positive number of calls a second, not {rate!r}."
                )
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}
        self._lock = threading.Lock()

    def allow(self, operation: str, account: str, region: str) -> bool:
        """True if the call may proceed; False if AWS would answer ThrottlingException."""
        rate = self.limits.get(operation)
        if rate is None:
            return True
        key = (operation, account, region)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(rate, max(1.0, float(rate)), self._clock)
        return bucket.take()
