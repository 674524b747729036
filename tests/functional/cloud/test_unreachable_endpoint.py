"""An endpoint that is down, or that accepts connections and never answers: one sentence, exit code 6, soon."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from cloud import session as aws_access

CA_ID = "ab" * 32
COMMANDS = [
    ("fleet", "describe", "--stack", "kit"),
    ("fleet", "reset", "--stack", "kit", "--yes"),
    ("fleet", "endpoint"),
    ("local", "deploy", "--stack", "kit", "--parameter-overrides", f"CaCertificateId={CA_ID}"),
    ("local", "destroy", "--stack", "kit"),
    ("local", "outputs", "--stack", "kit"),
]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (the socket that never answers)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    server.close()


def pointed_at(monkeypatch, port: int) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "emulator")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "emulator")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a[:2]) for a in COMMANDS])
def test_a_stopped_emulator_is_one_sentence_and_exit_code_6(jitr, monkeypatch, closed_port, args):
    pointed_at(monkeypatch, closed_port)
    result = jitr(*args)
    assert result.exit_code == 6, result.output
    assert f"Cannot reach http://127.0.0.1:{closed_port}" in result.stderr and "jitr local up" in result.stderr
    assert "Traceback" not in result.output and ".." not in result.stderr


def test_ca_register_against_a_stopped_emulator_is_exit_code_6(jitr, pki, monkeypatch, closed_port):
    pointed_at(monkeypatch, closed_port)
    result = jitr("ca", "register", "--dir", pki)
    assert result.exit_code == 6 and "Cannot reach" in result.stderr, result.output


@pytest.mark.parametrize("args", [COMMANDS[0], COMMANDS[3]], ids=["fleet describe", "local deploy"])
def test_an_endpoint_that_never_answers_is_reported_after_the_read_timeout_and_bounded_retries(
    jitr, monkeypatch, silent_port, args
):
    monkeypatch.setattr(aws_access, "READ_TIMEOUT", 0.3)  # the kit's is 8 s, three attempts: about 25 s
    pointed_at(monkeypatch, silent_port)
    started = time.monotonic()
    result = jitr(*args)
    elapsed = time.monotonic() - started
    assert result.exit_code == 6, result.output
    assert "did not answer within 0.3 s (3 attempts)" in result.stderr
    assert elapsed < 10, elapsed  # not botocore's 60 s a read, retried: a bound, however slow the machine


def test_a_fleet_register_against_a_silent_endpoint_stops_after_the_bounded_attempts(monkeypatch, silent_port):
    """The paced API (fleet register) retries dropped connections longer, but not a dead endpoint."""
    from base.errors import AwsError
    from cloud.iot import IotApi
    from cloud.pacing import Pacer

    monkeypatch.setattr(aws_access, "READ_TIMEOUT", 0.2)
    pointed_at(monkeypatch, silent_port)
    api = IotApi.connect(pacer=Pacer())
    api._sleep = lambda _seconds: None
    calls = []
    original = api.client.describe_endpoint
    api._iot = type("Counting", (), {"describe_endpoint": lambda _s, **k: calls.append(1) or original(**k)})()
    with pytest.raises(AwsError, match="did not answer"):
        api.call("describe_endpoint", endpointType="iot:Data-ATS")
    assert len(calls) == aws_access.MAX_ATTEMPTS
