"""The connectivity test across all things of a manifest: which connect and which do not, and why.

Run after provisioning (the bulk seed kit does): every certificate should be ACTIVE by then, so the
check is less patient than a first connect (:data:`CHECK_BACKOFF`: three attempts, short waits); a device
still being activated shows as ``not-activated``. By default a device only connects and disconnects;
``publish=True`` also sends one QoS 1 message, which proves the policy allows publishing too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from base.backoff import Backoff
from base.names import DEFAULT_TOPIC_ROOT
from device.client import ConnectOptions, DeviceResult, Messages
from device.endpoint import Endpoint, parse_endpoint
from device.simulate import DEFAULT_CONCURRENCY, FleetSummary, manifest_entries, run_fleet

CHECK_BACKOFF = Backoff(base=0.5, cap=2.0, attempts=3)


@dataclass(frozen=True)
class CheckRow:
    """One thing's line in the report."""

    thing_name: str
    ok: bool
    outcome: str  # connected, published, or the failure's reason
    attempts: int
    seconds: float
    why: str  # the failure's sentence; empty for a thing that connects

    @classmethod
    def of(cls, result: DeviceResult) -> CheckRow:
        why = "" if result.error is None else str(result.error)
        return cls(result.thing_name, result.ok, result.outcome, len(result.attempts), result.seconds, why)

    def to_dict(self) -> dict:
        return {
            "thingName": self.thing_name,
            "ok": self.ok,
            "outcome": self.outcome,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
            "why": self.why,
        }


@dataclass(frozen=True)
class CheckReport:
    rows: list[CheckRow]  # in manifest order
    summary: FleetSummary

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def failing(self) -> list[CheckRow]:
        return [row for row in self.rows if not row.ok]

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "things": len(self.rows),
            "connected": sum(row.ok for row in self.rows),
            "failing": len(self.failing),
            "failuresByReason": dict(sorted(self.summary.failures_by_reason.items())),
            "seconds": round(self.summary.seconds, 3),
            "rows": [row.to_dict() for row in self.rows],
        }


def check_manifest(
    manifest: Path,
    endpoint: str | Endpoint,
    *,
    root_ca: Path | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    publish: bool = False,
    topic_root: str = DEFAULT_TOPIC_ROOT,
    options: ConnectOptions | None = None,
    progress: Callable[[DeviceResult], None] | None = None,
) -> CheckReport:
    """Connect every thing of ``manifest`` once (with :data:`CHECK_BACKOFF` unless ``options`` say otherwise)."""
    target = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint)
    order: dict[str, int] = {}
    rows: list[CheckRow] = []

    def numbered():
        for index, entry in enumerate(manifest_entries(manifest)):
            order.setdefault(entry.thing_name, index)
            yield entry

    def collect(result: DeviceResult) -> None:
        rows.append(CheckRow.of(result))  # list.append is atomic: worker threads may call this together
        if progress is not None:
            progress(result)

    summary = run_fleet(
        numbered(),
        target,
        root_ca=root_ca,
        concurrency=concurrency,
        messages=Messages(count=1 if publish else 0, topic_root=topic_root),
        options=options or ConnectOptions(backoff=CHECK_BACKOFF),
        progress=collect,
    )
    rows.sort(key=lambda row: order.get(row.thing_name, len(order)))
    return CheckReport(rows, summary)
