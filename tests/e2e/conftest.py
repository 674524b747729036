"""The emulator in-process on free loopback ports, and helpers to drive it like a user would."""

from __future__ import annotations

import json
import ssl
import threading
import time
from pathlib import Path

import boto3
import paho.mqtt.client as mqtt
import pytest

from emulator.local import LocalIot, Options
from emulator.stack import StackDeployer

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "sam" / "template.yaml"


@pytest.fixture(scope="module")
def local_iot(tmp_path_factory):
    """One emulator per test module (moto's state is process-wide); reset before each test."""
    state = tmp_path_factory.mktemp("local-iot")
    with (
        pytest.MonkeyPatch.context() as patch,
        LocalIot(Options(state_dir=state, lambda_retry_delays=(0.2, 0.4))) as iot,
    ):
        for name, value in iot.environment().items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        yield iot


@pytest.fixture
def emulator(local_iot):
    local_iot.api.reset()
    return local_iot


@pytest.fixture
def aws(emulator):
    return boto3.Session(region_name=emulator.info()["region"])


def deploy_stack(session, ca_certificate_id: str, stack: str = "jitr-test") -> dict:
    return StackDeployer(session).deploy(TEMPLATE, stack, {"CaCertificateId": ca_certificate_id})


class Device:
    """A paho client with a device chain: one connect attempt at a time, so tests see each outcome."""

    def __init__(self, emulator: LocalIot, chain: Path, key: Path, client_id: str) -> None:
        self.info = emulator.info()
        self.client_id = client_id
        self.chain, self.key = chain, key

    def connect_once(self, timeout: float = 10.0):
        """``(rc, client)``: rc is the CONNACK reason code, or None when the server dropped us."""
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311)
        context = ssl.create_default_context(cafile=self.info["endpoint_ca"])
        context.load_cert_chain(self.chain, self.key)
        client.tls_set_context(context)
        outcome: dict = {}
        done = threading.Event()
        client.on_connect = lambda c, u, flags, rc, props: (outcome.setdefault("rc", rc.value), done.set())
        client.on_disconnect = lambda c, u, flags, rc, props: done.set()
        try:
            client.connect(self.info["mqtt_host"], self.info["mqtt_port"], keepalive=30)
        except OSError:
            return None, None
        client.loop_start()
        done.wait(timeout)
        if outcome.get("rc") != 0:
            client.loop_stop()
            client.disconnect()
            return outcome.get("rc"), None
        return 0, client

    def connect_until_accepted(self, attempts: int = 40, delay: float = 0.25):
        history = []
        for _ in range(attempts):
            rc, client = self.connect_once()
            history.append(rc)
            if client is not None:
                return client, history
            time.sleep(delay)
        raise AssertionError(f"never accepted: {history}")


def publish(client, topic: str, payload: dict, timeout: float = 10.0) -> None:
    info = client.publish(topic, json.dumps(payload), qos=1)
    info.wait_for_publish(timeout)
    assert info.is_published()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
