"""A fleet's first connect: every device of a mint manifest connects, self-registers and publishes, concurrently.

This is the load generator the benchmarks use: :func:`simulate_manifest` runs N devices of a manifest
and returns a :class:`FleetSummary` (devices/s, p50/p95 time to first publish, messages, failures by
reason). Devices run on ``concurrency`` worker threads, one device a thread at a time (paho is driven
from the worker; TLS handshakes release the GIL). The manifest is read lazily and at most twice
``concurrency`` devices are queued, so a million-device manifest costs little memory.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from base.errors import InvalidInputError, JitrError
from base.manifest import ManifestEntry, read_manifest
from base.names import DEFAULT_TOPIC_ROOT
from device.client import ConnectOptions, DeviceResult, Messages, run_device
from device.endpoint import Endpoint, parse_endpoint
from device.errors import FleetInterruptedError, UnexpectedDeviceError
from device.identity import identity_from_manifest

DEFAULT_CONCURRENCY = 64
FAILURE_EXAMPLES = 20  # failing devices named in a summary (the counts by reason cover them all)


def nearest_rank(values: Iterable[float], p: float) -> float | None:
    """The ``p``-th percentile of ``values`` by nearest rank (None when there are none)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered), max(1, math.ceil(p / 100 * len(ordered)))) - 1]


@dataclass
class FleetSummary:
    """What a fleet run came to. ``results`` holds every device's result only when asked (``keep_results``)."""

    devices: int = 0
    succeeded: int = 0
    seconds: float = 0.0
    messages_sent: int = 0
    attempts: int = 0
    first_publish_times: list[float] = field(default_factory=list)
    failures_by_reason: Counter = field(default_factory=Counter)
    failure_examples: list[dict] = field(default_factory=list)
    results: list[DeviceResult] | None = None

    @property
    def failed(self) -> int:
        return self.devices - self.succeeded

    @property
    def devices_per_second(self) -> float:
        """Devices that completed their first connect (and publishes) per second of the run."""
        return self.succeeded / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (nearest rank) of the time to first publish, in seconds."""
        return nearest_rank(self.first_publish_times, p)

    def add(self, result: DeviceResult) -> None:
        self.devices += 1
        self.attempts += len(result.attempts)
        self.messages_sent += result.messages_sent
        if result.time_to_first_publish is not None:
            self.first_publish_times.append(result.time_to_first_publish)
        if result.ok:
            self.succeeded += 1
        else:
            self.failures_by_reason[result.outcome] += 1
            if len(self.failure_examples) < FAILURE_EXAMPLES:
                self.failure_examples.append(
                    {"thingName": result.thing_name, "reason": result.outcome, "message": str(result.error)}
                )
        if self.results is not None:
            self.results.append(result)

    def to_dict(self) -> dict:
        p50, p95 = self.percentile(50), self.percentile(95)
        return {
            "devices": self.devices,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "devicesPerSecond": round(self.devices_per_second, 1),
            "timeToFirstPublish": {
                "p50": None if p50 is None else round(p50, 4),
                "p95": None if p95 is None else round(p95, 4),
                "max": round(max(self.first_publish_times), 4) if self.first_publish_times else None,
            },
            "messagesSent": self.messages_sent,
            "attempts": self.attempts,
            "failuresByReason": dict(sorted(self.failures_by_reason.items())),
            "failureExamples": self.failure_examples,
        }


def run_fleet(
    entries: Iterable[ManifestEntry],
    endpoint: Endpoint,
    *,
    root_ca: Path | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    messages: Messages | None = None,
    options: ConnectOptions | None = None,
    progress: Callable[[DeviceResult], None] | None = None,
    keep_results: bool = False,
) -> FleetSummary:
    """Run every device of ``entries`` against ``endpoint``, ``concurrency`` at a time; never raises for a device."""
    if concurrency < 1:
        raise InvalidInputError("--concurrency must be at least 1.")
    messages = messages if messages is not None else Messages()
    options = options or ConnectOptions()
    summary = FleetSummary(results=[] if keep_results else None)
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(concurrency * 2)
    stop = threading.Event()

    def sleep(seconds: float) -> None:
        """A backoff wait that Ctrl-C cuts short: the device then stops instead of trying again."""
        if stop.wait(seconds):
            raise FleetInterruptedError("The run was interrupted before this device connected.")

    def one(entry: ManifestEntry) -> None:
        try:
            if stop.is_set():
                return
            result = _run_entry(entry, endpoint, root_ca, messages, options, sleep)
            with lock:
                summary.add(result)
            if progress is not None:
                progress(result)
        finally:
            slots.release()

    started = time.monotonic()
    pool = ThreadPoolExecutor(concurrency, thread_name_prefix="device")
    try:
        for entry in entries:
            slots.acquire()
            pool.submit(one, entry)
    except BaseException:  # Ctrl-C, or a malformed manifest line: stop the devices in flight, then go
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    summary.seconds = time.monotonic() - started
    return summary


def _run_entry(
    entry: ManifestEntry,
    endpoint: Endpoint,
    root_ca: Path | None,
    messages: Messages,
    options: ConnectOptions,
    sleep: Callable[[float], None],
) -> DeviceResult:
    try:
        identity = identity_from_manifest(entry)
        return run_device(identity, endpoint, root_ca=root_ca, messages=messages, options=options, sleep=sleep)
    except Exception as exc:  # a broken manifest line, or a bug: it fails that device, not the run
        result = DeviceResult(entry.thing_name, entry.thing_name, str(endpoint), messages.topic_for(entry.thing_name))
        if isinstance(exc, JitrError):
            result.error = exc
        else:  # a bug: the sentence names it, and the exception stays as the cause for --debug to show
            result.error = UnexpectedDeviceError(f"Unexpected failure: {exc!r}.")
            result.error.__cause__ = exc
        return result


def manifest_entries(manifest: Path, count: int | None = None) -> Iterable[ManifestEntry]:
    """The first ``count`` devices of a manifest (all of them when None), read lazily."""
    if count is not None and count < 1:
        raise InvalidInputError("--count must be at least 1.")
    entries = read_manifest(Path(manifest))
    return entries if count is None else itertools.islice(entries, count)


def simulate_manifest(
    manifest: Path,
    endpoint: str | Endpoint,
    *,
    root_ca: Path | None = None,
    count: int | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    messages: int = 1,
    topic_root: str = DEFAULT_TOPIC_ROOT,
    options: ConnectOptions | None = None,
    progress: Callable[[DeviceResult], None] | None = None,
    keep_results: bool = False,
) -> FleetSummary:
    """First-connect the first ``count`` devices of ``manifest`` (all by default), each publishing ``messages``."""
    target = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint)
    return run_fleet(
        manifest_entries(manifest, count),
        target,
        root_ca=root_ca,
        concurrency=concurrency,
        messages=Messages(count=messages, topic_root=topic_root),
        options=options,
        progress=progress,
        keep_results=keep_results,
    )
