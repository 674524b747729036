"""The device client against the whole emulator: real JITR (register, drop, Lambda activates) and revocation."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli import app
from tests.e2e.conftest import deploy_stack, mint, register_ca

pytestmark = pytest.mark.timeout(180)


def cli() -> CliRunner:
    return CliRunner()  # stdout and stderr apart (the pinned Click keeps them apart by default)


@pytest.fixture
def pki(tmp_path, jitr, emulator):
    directory = tmp_path / "pki"
    assert jitr("ca", "init", "--dir", directory, "--country", "DE", "--intermediate").exit_code == 0
    return directory


def output(result) -> dict:
    """Our JSON document (indented), apart from the one-line logs the in-process Lambda prints to stdout."""
    return json.loads(result.stdout[result.stdout.index("{\n") :])


def endpoint_args(emulator) -> list[str]:
    info = emulator.info()
    return ["--endpoint", f"{info['mqtt_host']}:{info['mqtt_port']}", "--root-ca", info["endpoint_ca"]]


def test_connect_registers_a_jitr_device_and_publishes_once_the_lambda_activated_it(jitr, pki, emulator, aws):
    deploy_stack(aws, register_ca(jitr, pki))
    chain, key = mint(jitr, pki, "dev-1")
    args = ["device", "connect", "--cert", chain, "--key", key, *endpoint_args(emulator), "--base", "0.2", "--json"]
    args += ["--topic-root", "devices/jitr-test"]  # the stack's DeviceTopicRoot
    result = cli().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.stderr
    report = output(result)
    outcomes = [a["outcome"] for a in report["attempts"]]
    assert outcomes[0] == "dropped" and outcomes[-1] == "accepted"  # JITR: dropped while PENDING_ACTIVATION
    assert set(outcomes[:-1]) == {"dropped"}
    assert report["outcome"] == "published"


def test_simulate_and_check_a_jitr_batch_with_one_revoked_device(jitr, pki, emulator, aws):
    deploy_stack(aws, register_ca(jitr, pki))
    minted = jitr("device", "mint", "--dir", pki, "--count", "20", "--prefix", "sim-", "--format", "jsonl", "--json")
    manifest = json.loads(minted.stdout)["manifest"]
    args = ["device", "simulate", "--manifest", manifest, *endpoint_args(emulator), "--base", "0.2", "--json"]
    args += ["--topic-root", "devices/jitr-test"]
    result = cli().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.stderr
    summary = output(result)
    assert summary["succeeded"] == 20 and summary["failuresByReason"] == {}
    assert summary["attempts"] >= 40  # every device was dropped at least once

    iot = aws.client("iot")
    revoked = next(c for c in iot.list_certificates()["certificates"] if c["status"] == "ACTIVE")["certificateId"]
    iot.update_certificate(certificateId=revoked, newStatus="REVOKED")
    check = cli().invoke(
        app, [str(a) for a in ["device", "check", "--manifest", manifest, *endpoint_args(emulator), "--json"]]
    )
    assert check.exit_code == 20, check.stderr
    report = output(check)
    failing = [row for row in report["rows"] if not row["ok"]]
    assert len(failing) == 1 and failing[0]["outcome"] == "certificate-refused"
    assert report["connected"] == 19
