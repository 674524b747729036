"""A device run's results for people: sentences and the check table (``rich``)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from base.errors import InvalidInputError
from device.check import CheckReport
from device.client import DeviceResult
from device.simulate import FleetSummary

TABLE_LIMIT = 200  # beyond this many things, the table lists only the failing ones


def describe_result(result: DeviceResult) -> str:
    """``thing-1 published 3 messages to devices/thing-1/telemetry on localhost:8883: ...``."""
    tries = f"{len(result.attempts)} attempt{'s' if len(result.attempts) != 1 else ''}"
    if result.messages_sent:
        plural = "s" if result.messages_sent != 1 else ""
        return (
            f"{result.thing_name} published {result.messages_sent} message{plural} to {result.topic} on "
            f"{result.endpoint}: first accepted publish after {result.time_to_first_publish:.2f} s ({tries})."
        )
    return f"{result.thing_name} connected to {result.endpoint} after {result.time_to_connect or 0:.2f} s ({tries})."


def describe_summary(summary: FleetSummary) -> str:
    """A few lines: rate, latency percentiles, messages, failures by reason."""
    p50, p95 = summary.percentile(50), summary.percentile(95)
    lines = [
        f"{summary.succeeded} of {summary.devices} devices first-connected in {summary.seconds:.1f} s "
        f"({summary.devices_per_second:,.1f} devices/s, {summary.attempts} connection attempts).",
    ]
    if p50 is not None:
        lines.append(
            f"Time to first publish: p50 {p50:.3f} s, p95 {p95:.3f} s, max {max(summary.first_publish_times):.3f} s."
        )
    lines.append(f"Messages sent: {summary.messages_sent}.")
    if summary.failures_by_reason:
        lines.append("Failures by reason:")
        lines += [f"  {reason}: {count}" for reason, count in sorted(summary.failures_by_reason.items())]
        lines += [f"  e.g. {example['thingName']}: {example['message']}" for example in summary.failure_examples[:5]]
    else:
        lines.append("No failures.")
    return "\n".join(lines)


def check_table(report: CheckReport, limit: int = TABLE_LIMIT) -> Table:
    """One row a thing (only the failing ones past ``limit`` things)."""
    rows = report.rows if len(report.rows) <= limit else report.failing
    title = f"{len(report.rows) - len(report.failing)} of {len(report.rows)} things connect"
    if rows is not report.rows:
        title += f" (showing the {len(rows)} that do not)"
    table = Table(title=title)
    for name in ("thing", "result"):
        table.add_column(name, justify="left", no_wrap=True)
    for name in ("attempts", "seconds"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("why", overflow="fold")
    for row in rows:
        result = f"[green]{row.outcome}[/green]" if row.ok else f"[red]{row.outcome}[/red]"
        table.add_row(row.thing_name, result, str(row.attempts), f"{row.seconds:.2f}", row.why)
    return table


def count_devices(manifest: Path, count: int | None = None) -> int:
    """How many devices a run over ``manifest`` will take (for the progress bar's total)."""
    with Path(manifest).open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    if not lines:  # a run over nothing would report success
        raise InvalidInputError(
            f"The manifest {manifest} holds no devices; mint a batch with 'jitr device mint --count'."
        )
    return lines if count is None else min(lines, count)
