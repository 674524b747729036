"""A fleet summary: rates, percentiles of the time to first publish, failures by reason."""

from __future__ import annotations

from device.client import DeviceResult
from device.errors import CertificateRefusedError
from device.simulate import FleetSummary


def result(thing: str, ttfp: float | None, error=None) -> DeviceResult:
    made = DeviceResult(thing, thing, "localhost:8883", f"devices/{thing}/telemetry", time_to_first_publish=ttfp)
    made.messages_sent = 0 if ttfp is None else 1
    made.error = error
    return made


def test_percentiles_are_nearest_rank_over_the_devices_that_published():
    summary = FleetSummary()
    for n in range(1, 101):
        summary.add(result(f"d{n}", n / 100))
    summary.seconds = 2.0
    assert summary.percentile(50) == 0.5
    assert summary.percentile(95) == 0.95
    data = summary.to_dict()
    assert data["devicesPerSecond"] == 50.0
    assert data["messagesSent"] == 100 and data["failed"] == 0


def test_failures_are_counted_by_reason_with_a_few_examples():
    summary = FleetSummary()
    summary.add(result("ok", 0.1))
    summary.add(result("revoked", None, CertificateRefusedError("refused")))
    data = summary.to_dict()
    assert data["failuresByReason"] == {"certificate-refused": 1}
    assert data["failureExamples"] == [{"thingName": "revoked", "reason": "certificate-refused", "message": "refused"}]
    assert FleetSummary().percentile(50) is None
