"""Pacing throttled AWS calls together, so a bulk run sits at the account's quota, not past it.

AWS IoT gives every API its own per-account rate (RegisterCertificate 10 a second by default) and
answers ``ThrottlingException`` past it. A bulk run has many threads calling the same operation; if
each backed off on its own, every thread would keep being throttled and retrying blindly.
:class:`Pacer` paces each operation for all threads at once:

- an operation nobody was throttled on runs unpaced;
- once it is throttled, calls to it are spaced ``interval`` apart, threads taking turns (a slot
  each). The interval is set from the rate at which its calls went through in the last two seconds,
  which under a saturated token bucket is the quota itself, and grows by a fifth if it was already
  that slow;
- every call that goes through shortens the interval by ``ease`` (1 %), so the pace creeps up
  again until the next throttle: the run follows the quota if it changes, and sits just under it.

A throttled call is retried for ever: a device is never dropped because the account is busy. With
a token-bucket quota (AWS's, and the emulator's) the bucket holds about a second's worth of calls,
so the short dips below the quota after each throttle cost little.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW = 2.0  # seconds of successes the rate is estimated from


@dataclass
class _Pace:
    interval: float = 0.0  # seconds between two calls; 0: unpaced
    next_at: float = 0.0  # when the next slot starts
    cut_at: float = float("-inf")  # when the interval was last raised
    started: float | None = None  # the first call's time: the rate is estimated over at most this long
    successes: deque = field(default_factory=deque)


class Pacer:
    """Per-operation pacing shared by every thread of a bulk run; thread-safe."""

    def __init__(
        self,
        *,
        base: float = 0.05,
        cap: float = 2.0,
        ease: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = base  # the interval when nothing has gone through yet
        self.cap = cap  # the longest interval
        self.ease = ease
        self._clock = clock
        self._paces: dict[str, _Pace] = {}
        self._throttles: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _pace(self, operation: str) -> _Pace:
        pace = self._paces.get(operation)
        if pace is None:
            pace = self._paces[operation] = _Pace()
        return pace

    def before(self, operation: str) -> float:
        """Take the next slot for a call of ``operation``; the seconds to wait for it."""
        with self._lock:
            pace = self._pace(operation)
            now = self._clock()
            if pace.started is None:
                pace.started = now
            if pace.interval <= 0:
                return 0.0
            start = max(now, pace.next_at)
            pace.next_at = start + pace.interval
            return start - now

    def throttled(self, operation: str) -> None:
        """Record a throttle of ``operation``: pace it at the rate its calls have been going through."""
        with self._lock:
            self._throttles[operation] += 1
            pace = self._pace(operation)
            now = self._clock()
            if now - pace.cut_at < max(pace.interval, self.base):
                return  # calls already in flight under the old pace: one cut is enough
            _forget(pace.successes, now)
            span = min(WINDOW, max(self.base, now - (pace.started if pace.started is not None else now)))
            observed = len(pace.successes) / span
            wanted = 1.0 / observed if observed else max(2 * pace.interval, self.base)
            if pace.interval > 0 and wanted <= pace.interval:
                wanted = pace.interval * 1.2  # already that slow: slower still
            pace.interval = min(self.cap, wanted)
            pace.cut_at = now
            pace.next_at = max(pace.next_at, now + pace.interval)

    def succeeded(self, operation: str) -> None:
        """Record a call of ``operation`` that went through: the pace quickens a little."""
        with self._lock:
            pace = self._pace(operation)
            now = self._clock()
            pace.successes.append(now)
            _forget(pace.successes, now)
            if pace.interval > 0:
                pace.interval *= 1 - self.ease

    def interval(self, operation: str) -> float:
        """Seconds between two calls of ``operation`` at the moment (0: unpaced)."""
        with self._lock:
            return self._pace(operation).interval

    def throttles(self) -> dict[str, int]:
        """How many calls of each operation were throttled so far."""
        with self._lock:
            return dict(self._throttles)


def _forget(successes: deque, now: float) -> None:
    while successes and successes[0] < now - WINDOW:
        successes.popleft()
