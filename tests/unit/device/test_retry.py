"""The retry rule of a first connect, with the wire scripted: what is retried, what stops at once."""

from __future__ import annotations

import datetime as dt

import pytest

from base.backoff import Backoff
from base.certificates import to_pem
from base.errors import ExitStatus
from base.keys import generate_key, private_key_pem
from ca.issue import Issuer, issue_root, make_name
from device import client as client_module
from device.attempts import Outcome
from device.client import ConnectOptions, Messages, run_device
from device.endpoint import Endpoint
from device.identity import load_identity

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def identity():
    ca_key, key = generate_key("ec-p256"), generate_key("ec-p256")
    issuer = Issuer(issue_root(ca_key, make_name("Retry CA"), now=NOW, days=2), ca_key)
    cert = issuer.issue_device(key.public_key(), "dev-1", country="DE", now=NOW, days=1)
    return load_identity(to_pem(cert) + to_pem(issuer.certificate), private_key_pem(key))


class FakeConnection:
    def __init__(self, denied: bool = False, closes_after_ack: bool = False) -> None:
        self.closed = False
        self.denied = denied
        self.closes_after_ack = closes_after_ack
        self.published: list[tuple[str, bytes]] = []
        self.pumped: list[float] = []

    def publish(self, topic, payload, timeout):
        self.published.append((topic, payload))
        return None if self.denied else True

    def pump_for(self, seconds):
        self.pumped.append(seconds)
        self.closed = self.closes_after_ack

    def close(self):
        self.closed = True


def run_scripted(monkeypatch, identity, outcomes, *, connection=None, attempts=10, refusals=1, messages=None):
    """Run a device whose attempts end as ``outcomes`` say; return the result and the sleeps it took."""
    script = iter(outcomes)
    connection = connection or FakeConnection()

    def fake_open(context, endpoint, client_id, options, clock):
        outcome = next(script)
        return (connection if outcome is Outcome.ACCEPTED else None), outcome, f"scripted {outcome}"

    monkeypatch.setattr(client_module, "open_connection", fake_open)
    monkeypatch.setattr(client_module, "client_context", lambda *args: object())
    sleeps: list[float] = []
    options = ConnectOptions(backoff=Backoff(base=1.0, cap=4.0, attempts=attempts), refusals_tolerated=refusals)
    result = run_device(
        identity, Endpoint("localhost"), messages=messages, options=options, sleep=sleeps.append, rand=lambda: 0.5
    )
    return result, sleeps


def test_dropped_connections_are_retried_with_backoff_until_accepted(monkeypatch, identity):
    outcomes = [Outcome.DROPPED, Outcome.DROPPED, Outcome.TIMEOUT, Outcome.ACCEPTED]
    result, sleeps = run_scripted(monkeypatch, identity, outcomes)
    assert result.ok and result.outcome == "published"
    assert [a.outcome for a in result.attempts] == outcomes
    assert sleeps == [0.5, 1.0, 2.0]  # rand 0.5 times 1, 2, 4
    assert [a.retry_in for a in result.attempts] == [0.5, 1.0, 2.0, None]
    assert result.messages_sent == 1 and result.time_to_first_publish is not None


def test_one_refusal_is_tolerated_as_activation_in_progress(monkeypatch, identity):
    result, _ = run_scripted(monkeypatch, identity, [Outcome.REFUSED, Outcome.DROPPED, Outcome.ACCEPTED])
    assert result.ok


def test_refusals_beyond_the_tolerated_number_mean_the_certificate_is_refused(monkeypatch, identity):
    result, sleeps = run_scripted(monkeypatch, identity, [Outcome.REFUSED, Outcome.REFUSED, Outcome.ACCEPTED])
    assert result.outcome == "certificate-refused"
    assert result.error.exit_code == ExitStatus.CERTIFICATE_REFUSED
    assert len(result.attempts) == 2 and len(sleeps) == 1


def test_with_no_refusals_tolerated_the_first_refusal_is_final(monkeypatch, identity):
    result, sleeps = run_scripted(monkeypatch, identity, [Outcome.REFUSED], refusals=0)
    assert result.outcome == "certificate-refused" and sleeps == []


@pytest.mark.parametrize(
    ("outcome", "reason", "code"),
    [
        (Outcome.UNTRUSTED, "server-not-trusted", ExitStatus.SERVER_NOT_TRUSTED),  # retrying cannot fix trust
        (Outcome.REJECTED, "connection-rejected", ExitStatus.CONNECTION_REJECTED),
    ],
)
def test_permanent_outcomes_stop_at_the_first_attempt(monkeypatch, identity, outcome, reason, code):
    result, sleeps = run_scripted(monkeypatch, identity, [outcome])
    assert result.outcome == reason and result.error.exit_code == code
    assert sleeps == [] and len(result.attempts) == 1


@pytest.mark.parametrize(
    ("last", "reason", "code"),
    [
        (Outcome.DROPPED, "not-activated", ExitStatus.NOT_ACTIVATED),  # JITR never finished
        (Outcome.UNREACHABLE, "unreachable", ExitStatus.UNREACHABLE),
        (Outcome.TIMEOUT, "unreachable", ExitStatus.UNREACHABLE),
        (Outcome.REFUSED, "certificate-refused", ExitStatus.CERTIFICATE_REFUSED),  # refused within tolerance, last
    ],
)
def test_when_attempts_run_out_the_last_attempt_names_the_failure(monkeypatch, identity, last, reason, code):
    result, sleeps = run_scripted(monkeypatch, identity, [Outcome.DROPPED, Outcome.DROPPED, last], attempts=3)
    assert result.outcome == reason and result.error.exit_code == code
    assert len(sleeps) == 2 and result.attempts[-1].retry_in is None


def test_a_publish_the_endpoint_closes_the_connection_on_is_a_policy_denial(monkeypatch, identity):
    result, _ = run_scripted(monkeypatch, identity, [Outcome.ACCEPTED], connection=FakeConnection(denied=True))
    assert result.outcome == "policy-denied" and result.error.exit_code == ExitStatus.POLICY_DENIED
    assert "devices/dev-1/telemetry" in str(result.error)
    assert result.messages_sent == 0 and result.time_to_first_publish is None


def test_messages_go_to_the_thing_topic_by_default_with_a_sequence_number(monkeypatch, identity):
    connection = FakeConnection()
    result, _ = run_scripted(monkeypatch, identity, [Outcome.ACCEPTED], connection=connection, messages=Messages(3))
    assert result.messages_sent == 3
    assert [topic for topic, _ in connection.published] == ["devices/dev-1/telemetry"] * 3
    assert [b'"seq": %d' % n in payload for n, (_, payload) in enumerate(connection.published)] == [True] * 3
    assert connection.closed


def test_zero_messages_only_connects(monkeypatch, identity):
    result, _ = run_scripted(monkeypatch, identity, [Outcome.ACCEPTED], messages=Messages(count=0))
    assert result.ok and result.outcome == "connected" and result.time_to_first_publish is None


def test_the_result_as_json_has_attempts_timing_and_outcome(monkeypatch, identity):
    result, _ = run_scripted(monkeypatch, identity, [Outcome.DROPPED, Outcome.ACCEPTED])
    data = result.to_dict()
    assert [a["outcome"] for a in data["attempts"]] == ["dropped", "accepted"]
    assert data["attempts"][0]["retryIn"] == 0.5
    assert data["outcome"] == "published" and data["error"] is None
    assert data["timeToFirstPublish"] >= data["timeToConnect"] >= 0


def test_a_close_right_after_a_puback_is_a_denial_and_that_message_does_not_count(monkeypatch, identity):
    connection = FakeConnection(closes_after_ack=True)  # a broker that acknowledges, then enforces the policy
    messages = Messages(count=3, interval=1.0)
    result, _ = run_scripted(monkeypatch, identity, [Outcome.ACCEPTED], connection=connection, messages=messages)
    assert result.outcome == "policy-denied"
    assert result.messages_sent == 0 and result.time_to_first_publish is None
    assert connection.pumped == [0.1]  # the linger, not the whole interval


def test_messages_are_spaced_by_the_interval_linger_included(monkeypatch, identity):
    connection = FakeConnection()
    messages = Messages(count=3, interval=1.0)
    result, _ = run_scripted(monkeypatch, identity, [Outcome.ACCEPTED], connection=connection, messages=messages)
    assert result.messages_sent == 3
    assert connection.pumped == pytest.approx([0.1, 0.9, 0.1, 0.9, 0.1])
