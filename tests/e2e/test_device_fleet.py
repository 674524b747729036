"""`jitr device simulate` and `jitr device check` against the emulator's MQTT broker.

The devices are minted with ``ca.batch.mint_batch`` (JSON-lines manifest); the hooks play JITR
(first connection of each certificate dropped) and a revoked certificate (refused).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from base.backoff import Backoff
from base.certificates import to_pem
from base.keys import generate_key, private_key_pem
from ca.batch import BatchRequest, mint_batch, numbered_names
from ca.issue import issue_root, make_name
from cli import app
from device.check import check_manifest
from device.client import ConnectOptions
from device.simulate import simulate_manifest
from emulator.mqtt.broker import Broker, BrokerHooks, ConnectDecision

pytestmark = pytest.mark.timeout(120)
FAST = ConnectOptions(backoff=Backoff(base=0.02, cap=0.2, attempts=8))


def cli() -> CliRunner:
    return CliRunner()  # stdout and stderr apart (the pinned Click keeps them apart by default)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """100 devices fleet-001..fleet-100 in one JSON-lines manifest."""
    now = dt.datetime.now(dt.UTC)
    key = generate_key("ec-p256")
    ca = issue_root(key, make_name("Fleet CA", country="DE"), now=now, days=2)
    out = tmp_path_factory.mktemp("fleet") / "batch"
    request = BatchRequest(out=out, fmt="jsonl", country="DE", days=1, workers=1)
    result = mint_batch(
        numbered_names("fleet-", 100),
        ca_cert_pem=to_pem(ca),
        ca_key_pem=private_key_pem(key),
        passphrase=None,
        request=request,
        now=now,
    )
    return result.manifest


class Jitr:
    """Scripted AWS IoT: drop a certificate's first connection (JITR), refuse the revoked ones."""

    def __init__(self, revoked: frozenset[str] | set[str] = frozenset()) -> None:
        self.revoked = revoked
        self.registered: set[bytes] = set()
        self.messages: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def on_connect(self, info):
        if info.client_id in self.revoked:
            return ConnectDecision.REFUSE
        with self.lock:
            if info.certificate in self.registered:
                return ConnectDecision.ACCEPT
            self.registered.add(info.certificate)
        return ConnectDecision.DROP

    def on_message(self, info, topic, payload):
        self.messages.append((info.client_id, topic))


@pytest.fixture
def start_broker(tmp_path):
    brokers: list[Broker] = []

    def start(jitr: Jitr) -> Broker:
        broker = Broker(BrokerHooks(on_connect=jitr.on_connect, on_message=jitr.on_message), state_dir=tmp_path / "s")
        broker.start()
        brokers.append(broker)
        return broker

    yield start
    for broker in brokers:
        broker.stop()


def test_simulate_first_connects_100_jitr_devices_with_no_failures(start_broker, manifest):
    jitr = Jitr()
    broker = start_broker(jitr)
    progress = []
    summary = simulate_manifest(
        manifest,
        f"localhost:{broker.port}",
        root_ca=broker.ca_file,
        concurrency=32,
        messages=2,
        options=FAST,
        progress=progress.append,
    )
    data = summary.to_dict()
    assert data["failed"] == 0, data["failureExamples"]
    assert data["devices"] == data["succeeded"] == len(progress) == 100
    assert data["messagesSent"] == 200
    assert data["attempts"] >= 200  # every device was dropped once, then accepted
    assert 0 < data["timeToFirstPublish"]["p50"] <= data["timeToFirstPublish"]["p95"]
    assert data["devicesPerSecond"] > 0
    assert len(jitr.registered) == 100
    assert {topic for _, topic in jitr.messages} == {f"devices/fleet-{n:03d}/telemetry" for n in range(1, 101)}


def test_simulate_cli_prints_a_summary_and_json(start_broker, manifest):
    broker = start_broker(Jitr())
    args = ["device", "simulate", "--manifest", manifest, "--endpoint", f"localhost:{broker.port}"]
    args += ["--root-ca", broker.ca_file, "--count", "10", "--base", "0.02", "--cap", "0.2", "--json"]
    result = cli().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["devices"] == 10 and data["failuresByReason"] == {}


def test_check_reports_a_revoked_device_as_failing_with_its_reason(start_broker, manifest):
    jitr = Jitr(revoked={"fleet-007"})
    broker = start_broker(jitr)
    report = check_manifest(manifest, f"localhost:{broker.port}", root_ca=broker.ca_file, options=FAST)
    assert not report.ok
    assert [row.thing_name for row in report.rows][:3] == ["fleet-001", "fleet-002", "fleet-003"]  # manifest order
    (failing,) = report.failing
    assert failing.thing_name == "fleet-007" and failing.outcome == "certificate-refused"
    assert "refused the certificate" in failing.why
    assert sum(row.ok for row in report.rows) == 99
    assert jitr.messages == []  # a check only connects unless asked to publish


def test_check_cli_prints_a_table_and_exits_20_when_a_thing_does_not_connect(start_broker, manifest):
    broker = start_broker(Jitr(revoked={"fleet-003"}))
    args = ["device", "check", "--manifest", manifest, "--endpoint", f"localhost:{broker.port}"]
    args += ["--root-ca", broker.ca_file, "--base", "0.02", "--cap", "0.1", "--attempts", "4"]
    result = cli().invoke(app, [str(a) for a in args])
    assert result.exit_code == 20, result.stderr
    assert "99 of 100 things connect" in result.stdout
    assert "fleet-003" in result.stdout and "certificate-refused" in result.stdout
    assert "1 of 100 things do not connect" in result.stderr
    json_result = cli().invoke(app, [str(a) for a in [*args, "--json"]])
    data = json.loads(json_result.stdout)
    assert data["failuresByReason"] == {"certificate-refused": 1}
    assert [row["thingName"] for row in data["rows"] if not row["ok"]] == ["fleet-003"]
