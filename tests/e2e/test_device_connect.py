"""`jitr device connect` against the emulator's MQTT broker with scripted connect decisions.

The hooks play AWS IoT Core's parts: JITR drops the first connection of a new certificate, JITP
accepts it at once, a revoked certificate is refused, a denied publish closes the connection.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from base.backoff import Backoff
from base.certificates import to_pem
from base.files import write_files
from base.keys import generate_key
from base.manifest import chain_path, key_path
from ca.issue import Issuer, issue_root, make_name
from ca.mint import mint_device
from cli import app
from device.client import ConnectOptions, Messages, run_device
from device.endpoint import Endpoint
from device.identity import identity_from_files
from emulator.mqtt.broker import Broker, BrokerHooks, ConnectDecision

pytestmark = pytest.mark.timeout(60)
FAST = ["--base", "0.02", "--cap", "0.1"]  # quick retries: the hooks decide at once
QUICK_FAILURE = 3.0  # seconds: a permanent failure must be reported well within this


def cli() -> CliRunner:
    return CliRunner()  # stdout and stderr apart (the pinned Click keeps them apart by default)


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    key = generate_key("ec-p256")
    return Issuer(issue_root(key, make_name("Device CA", country="DE"), now=dt.datetime.now(dt.UTC), days=2), key)


@pytest.fixture
def devices(tmp_path, issuer):
    """Mint a device into tmp_path/devices and return its (chain, key) paths."""

    def mint(thing: str = "thing-1") -> tuple[Path, Path]:
        identity = mint_device(issuer, thing, country="DE", now=dt.datetime.now(dt.UTC), days=1)
        write_files(tmp_path / "devices", identity.files())
        return tmp_path / "devices" / chain_path(thing), tmp_path / "devices" / key_path(thing)

    return mint


@pytest.fixture
def start_broker(tmp_path):
    brokers: list[Broker] = []

    def start(**hooks) -> Broker:
        broker = Broker(BrokerHooks(**hooks), state_dir=tmp_path / "state")
        broker.start()
        brokers.append(broker)
        return broker

    yield start
    for broker in brokers:
        broker.stop()


def jitr_hooks(seen: list, messages: list) -> dict:
    """JITR as AWS does it: a certificate's first connection is dropped, later ones accepted."""

    def on_connect(info):
        known = any(earlier.certificate == info.certificate for earlier in seen)
        seen.append(info)
        return ConnectDecision.ACCEPT if known else ConnectDecision.DROP

    return {"on_connect": on_connect, "on_message": lambda info, topic, payload: messages.append((topic, payload))}


@dataclass
class Timed:
    """A CLI run and how long it took."""

    result: Any
    seconds: float

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)


def connect(broker: Broker, chain: Path, key: Path, *args: str) -> Timed:
    endpoint = f"localhost:{broker.port}"
    argv: tuple[object, ...] = (
        "device",
        "connect",
        "--endpoint",
        endpoint,
        "--cert",
        chain,
        "--key",
        key,
        "--root-ca",
        broker.ca_file,
        *args,
    )
    started = time.monotonic()
    result = cli().invoke(app, [str(a) for a in argv])
    return Timed(result, time.monotonic() - started)


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


# --- first connect ----------------------------------------------------------------------------


def test_a_jitr_device_whose_first_connect_is_dropped_publishes_after_a_retry(start_broker, devices):
    seen, messages = [], []
    broker = start_broker(**jitr_hooks(seen, messages))
    chain, key = devices("thing-1")
    result = connect(broker, chain, key, *FAST, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [a["outcome"] for a in report["attempts"]] == ["dropped", "accepted"]
    assert report["outcome"] == "published" and report["messagesSent"] == 1
    assert report["timeToFirstPublish"] >= report["attempts"][1]["at"] > 0
    assert wait_for(lambda: messages) and messages[0][0] == "devices/thing-1/telemetry"
    assert json.loads(messages[0][1])["thingName"] == "thing-1"
    first = seen[0]
    assert first.client_id == "thing-1"  # the certificate CN
    assert len(first.certificate_chain) == 2  # device certificate and its CA: what JITR needs
    assert first.sni == "localhost"


def test_a_jitp_device_accepted_at_once_publishes_every_message_on_the_first_attempt(start_broker, devices):
    messages = []
    broker = start_broker(on_message=lambda info, topic, payload: messages.append((info.client_id, topic, payload)))
    chain, key = devices("thing-2")
    result = connect(
        broker, chain, key, "--count", "3", "--interval", "0.05", "--topic", "fleet/t2", "--client-id", "c2"
    )
    assert result.exit_code == 0, result.stderr
    assert "thing-2 published 3 messages to fleet/t2" in result.stdout
    assert re.search(r"attempt 1 at \d+\.\d\d s: accepted", result.stderr)  # each attempt, as it happens
    assert wait_for(lambda: len(messages) == 3)
    assert [json.loads(payload)["seq"] for _, _, payload in messages] == [0, 1, 2]
    assert {(client, topic) for client, topic, _ in messages} == {("c2", "fleet/t2")}


def test_the_payload_can_come_from_stdin(start_broker, devices):
    messages = []
    broker = start_broker(on_message=lambda info, topic, payload: messages.append(payload))
    chain, key = devices()
    args = ["device", "connect", "--endpoint", f"localhost:{broker.port}", "--cert", chain, "--key", key]
    result = cli().invoke(app, [str(a) for a in [*args, "--root-ca", broker.ca_file, "--stdin"]], input="raw bytes\n")
    assert result.exit_code == 0, result.stderr
    assert wait_for(lambda: messages) and messages == [b"raw bytes\n"]


def test_a_device_refused_once_while_provisioning_propagates_still_gets_through(start_broker, devices):
    calls = []
    broker = start_broker(
        on_connect=lambda info: (
            calls.append(info) or (ConnectDecision.REFUSE if len(calls) == 1 else ConnectDecision.ACCEPT)
        )
    )
    chain, key = devices()
    result = connect(broker, chain, key, *FAST, "--json")
    assert result.exit_code == 0, result.stderr
    assert [a["outcome"] for a in json.loads(result.stdout)["attempts"]] == ["refused", "accepted"]


def test_run_device_is_the_api_the_emulator_tests_use(start_broker, devices):
    seen, messages = [], []
    broker = start_broker(**jitr_hooks(seen, messages))
    chain, key = devices()
    result = run_device(
        identity_from_files(chain, key),
        Endpoint("localhost", broker.port),
        root_ca=broker.ca_file,
        messages=Messages(count=2),
        options=ConnectOptions(backoff=Backoff(base=0.02, cap=0.1, attempts=5)),
    )
    assert result.ok, result.error
    assert [str(a.outcome) for a in result.attempts] == ["dropped", "accepted"]
    assert result.messages_sent == 2 and wait_for(lambda: len(messages) == 2)


# --- permanent failures: at once, each with its exit code ---------------------------------------


def test_an_untrusted_server_fails_at_once_with_exit_10(start_broker, devices, tmp_path, issuer):
    calls = []
    broker = start_broker(on_connect=lambda info: calls.append(info) or ConnectDecision.ACCEPT)
    chain, key = devices()
    wrong_ca = tmp_path / "wrong-ca.pem"
    wrong_ca.write_bytes(to_pem(issuer.certificate))  # a CA, but not the endpoint's
    args = ["device", "connect", "--endpoint", f"localhost:{broker.port}", "--cert", chain, "--key", key]
    started = time.monotonic()
    result = cli().invoke(app, [str(a) for a in [*args, "--root-ca", wrong_ca, "--json"]])
    assert result.exit_code == 10, result.stderr
    assert time.monotonic() - started < QUICK_FAILURE
    assert "is not trusted" in result.stderr and "--root-ca" in result.stderr
    assert len(json.loads(result.stdout)["attempts"]) == 1
    assert calls == []


def test_a_key_that_is_not_the_certificates_fails_before_connecting_with_exit_11(start_broker, devices):
    calls = []
    broker = start_broker(on_connect=lambda info: calls.append(info) or ConnectDecision.ACCEPT)
    chain, _ = devices("thing-1")
    _, other_key = devices("thing-2")
    result = connect(broker, chain, other_key)
    assert result.exit_code == 11, result.stderr
    assert "does not belong to its certificate" in result.stderr
    assert calls == []  # found locally: the endpoint never saw it


def test_a_refused_certificate_fails_fast_with_exit_12(start_broker, devices):
    calls = []
    broker = start_broker(on_connect=lambda info: calls.append(info) or ConnectDecision.REFUSE)
    chain, key = devices()
    result = connect(broker, chain, key, *FAST, "--json")
    assert result.exit_code == 12, result.stderr
    assert result.seconds < QUICK_FAILURE
    assert "refused the certificate" in result.stderr and "revoked" in result.stderr
    assert [a["outcome"] for a in json.loads(result.stdout)["attempts"]] == ["refused", "refused"]  # one tolerated
    assert len(calls) == 2


def test_a_publish_denied_by_policy_fails_with_exit_13(start_broker, devices):
    broker = start_broker(on_publish=lambda info, topic, payload, qos, retain: False)
    chain, key = devices()
    result = connect(broker, chain, key, "--json")
    assert result.exit_code == 13, result.stderr
    assert result.seconds < QUICK_FAILURE
    assert "does not allow client thing-1 to publish" in result.stderr
    assert json.loads(result.stdout)["outcome"] == "policy-denied"


def test_a_certificate_never_activated_gives_up_after_its_attempts_with_exit_14(start_broker, devices):
    broker = start_broker(on_connect=lambda info: ConnectDecision.DROP)
    chain, key = devices()
    result = connect(broker, chain, key, *FAST, "--attempts", "3")
    assert result.exit_code == 14, result.stderr
    assert "never activated" in result.stderr
    assert result.stderr.count("dropped (closed before CONNACK") == 3


def test_an_endpoint_nobody_listens_on_is_unreachable_with_exit_15(start_broker, devices):
    broker = start_broker()
    chain, key = devices()
    port, ca_file = broker.port, broker.ca_file
    broker.stop()
    args = ["device", "connect", "--endpoint", f"127.0.0.1:{port}", "--cert", chain, "--key", key]
    result = cli().invoke(app, [str(a) for a in [*args, "--root-ca", ca_file, *FAST, "--attempts", "2"]])
    assert result.exit_code == 15, result.stderr
    assert "Cannot reach 127.0.0.1" in result.stderr


def test_a_server_rejecting_the_client_certificate_in_tls_13_is_a_refusal_not_a_drop(start_broker, devices, tmp_path):
    """AWS IoT may reject an unknown certificate in TLS itself; with TLS 1.3 the alert comes after the handshake."""
    broker = start_broker()  # only for its endpoint certificate and CA
    pki_dir = tmp_path / "state"
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki_dir / "endpoint-server.pem", pki_dir / "private" / "endpoint-server.key")
    server.verify_mode = ssl.CERT_REQUIRED
    server.load_verify_locations(broker.ca_file)  # not the devices' CA: their certificates are unknown
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # the listener is closed: the test is over
                return
            tls = server.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            with contextlib.suppress(ssl.SSLError, OSError):
                tls.do_handshake()  # TLS 1.3: fails on the client certificate, after the client is done
            with contextlib.suppress(OSError):  # drain first: closing on unread data sends RST, losing the alert
                tls.shutdown(socket.SHUT_WR)
                tls.settimeout(2)
                while tls.recv(4096):
                    pass
            tls.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    chain, key = devices()
    args = ["device", "connect", "--endpoint", f"localhost:{port}", "--cert", chain, "--key", key]
    result = cli().invoke(app, [str(a) for a in [*args, "--root-ca", broker.ca_file, *FAST, "--json"]])
    listener.close()
    assert result.exit_code == 12, result.stderr
    attempts = json.loads(result.stdout)["attempts"]
    assert [a["outcome"] for a in attempts] == ["refused", "refused"]
    assert "TLS alert" in attempts[0]["detail"], attempts[0]["detail"]


# --- misleading ends: the wrong port, a client id taken over, an encrypted key ----------------------


def test_a_server_that_does_not_speak_tls_is_unreachable_at_once_not_never_activated(start_broker, devices):
    """Pointed at the emulator's HTTP API port: one attempt, exit 15, not 19 s of retries and exit 14."""
    import http.server

    broker = start_broker()  # for its CA
    http_api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=http_api.serve_forever, daemon=True).start()
    chain, key = devices()
    args = ["device", "connect", "--endpoint", f"127.0.0.1:{http_api.server_address[1]}", "--cert", chain]
    started = time.monotonic()
    result = cli().invoke(app, [str(a) for a in [*args, "--key", key, "--root-ca", broker.ca_file, "--json"]])
    elapsed = time.monotonic() - started
    http_api.shutdown()
    assert result.exit_code == 15, result.stderr
    assert "does not speak TLS" in result.stderr and "MQTT port" in result.stderr
    assert [a["outcome"] for a in json.loads(result.stdout)["attempts"]] == ["not-tls"]
    assert elapsed < QUICK_FAILURE


def test_a_device_knocked_off_by_another_connection_with_its_client_id_is_told_so(start_broker, devices):
    messages = []
    broker = start_broker(on_message=lambda info, topic, payload: messages.append(payload))
    chain, key = devices()
    outcome: dict = {}

    def run() -> None:
        outcome["result"] = connect(broker, chain, key, "--count", "3", "--interval", "1")

    thread = threading.Thread(target=run)
    thread.start()
    assert wait_for(lambda: messages)  # its first message is in: now it waits a second for the next
    time.sleep(0.3)  # past its check that the broker kept the connection after the PUBACK
    identity = identity_from_files(chain, key)
    second = run_device(
        identity,
        Endpoint("localhost", broker.port),
        root_ca=broker.ca_file,
        messages=Messages(count=0),
        options=ConnectOptions(backoff=Backoff(base=0.02, cap=0.1, attempts=2)),
    )  # the same client id (the thing name): AWS IoT keeps the newest connection
    thread.join(30)
    assert second.ok
    result = outcome["result"]
    assert result.exit_code == 15, result.stderr
    assert "another connection took client id thing-1" in result.stderr


def test_an_encrypted_device_key_connects_with_its_passphrase_from_the_environment(start_broker, devices, tmp_path):
    from cryptography.hazmat.primitives import serialization

    from base.keys import load_private_key

    broker = start_broker()
    chain, key = devices()
    encrypted = tmp_path / "encrypted.key"
    plain = load_private_key(key.read_bytes(), None, "the key")
    encrypted.write_bytes(
        plain.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"device secret"),
        )
    )
    without = connect(broker, chain, encrypted)
    assert without.exit_code == 5 and "--passphrase-env" in without.stderr, without.stderr
    empty = connect(broker, chain, encrypted, "--passphrase-env", "DEVICE_KEY_PASS")
    assert empty.exit_code == 2 and "DEVICE_KEY_PASS is empty" in empty.stderr
    args = ["--passphrase-env", "DEVICE_KEY_PASS"]
    runner = cli()
    command = ["device", "connect", "--endpoint", f"localhost:{broker.port}", "--cert", chain, "--key", encrypted]
    result = runner.invoke(
        app, [str(a) for a in [*command, "--root-ca", broker.ca_file, *args]], env={"DEVICE_KEY_PASS": "device secret"}
    )
    assert result.exit_code == 0, result.stderr
