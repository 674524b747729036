"""Minted batches and the checks that AWS IoT (the emulator) holds them registered, for the fleet register tests."""

from __future__ import annotations

import json
from pathlib import Path

ROLE = "arn:aws:iam::123456789012:role/BulkRegistration"


def mint_batch(jitr, pki: Path, *, count: int, prefix: str = "sensor-") -> Path:
    result = jitr("device", "mint", "--dir", pki, "--count", count, "--prefix", prefix, "--workers", 1, "--json")
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["manifest"])


def records(manifest: Path, count: int | None = None) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines()[:count] if line.strip()]


def assert_registered(emulator, entries: list[dict], *, ca_id: str | None, thing_type=None, group=None, policy=None):
    """Each device: certificate ACTIVE (under the CA), its thing attached, the policy attached, type and group."""
    registry = emulator.api.registry()
    members = set()
    if group:
        [found] = [g for g in registry.backend.thing_groups.values() if g.thing_group_name == group]
        members = {thing.thing_name for thing in found.things.values()}
    for entry in entries:
        cert = registry.certificate(entry["certificateId"])
        assert cert is not None, entry["thingName"]
        assert (cert.status, cert.ca_certificate_id) == ("ACTIVE", ca_id)
        assert registry.things_for(cert.arn) == [entry["thingName"]]
        assert [p.name for p in registry.policies_for(cert.arn)] == [policy or "jitr-fleet-device"]
        thing = registry.thing(entry["thingName"])
        assert thing.thing_type_name == thing_type
        assert thing.attributes["country"] == "DE" and thing.attributes["serial"] == entry["serial"]
        if group:
            assert entry["thingName"] in members
