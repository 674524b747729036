"""The activation Lambda's retries: throttling and transient errors back off with full jitter, within bounds."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from tests.functional.functions.test_activation import app, throttle


class Flaky:
    """An operation that raises the given errors in turn, then returns ``"ok"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.calls = list(errors), 0
        self.__name__ = "update_certificate"

    def __call__(self, **kwargs):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_delays_grow_exponentially_to_the_cap_with_full_jitter():
    sleeps: list[float] = []
    call = app.Retrier(9, sleep=sleeps.append, rand=lambda: 1.0)  # the top of each jitter window
    assert call(Flaky(*[throttle()] * 8)) == "ok"
    assert sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0])
    jittered: list[float] = []
    app.Retrier(3, sleep=jittered.append, rand=lambda: 0.25)(Flaky(throttle(), throttle()))
    assert jittered == pytest.approx([0.025, 0.05])


@pytest.mark.parametrize(
    "error",
    [
        throttle("ThrottlingException"),
        throttle("TooManyRequestsException"),
        throttle("ServiceUnavailableException"),
        throttle("InternalFailureException"),
        EndpointConnectionError(endpoint_url="https://iot.us-east-1.amazonaws.com"),
    ],
)
def test_transient_errors_are_retried(error):
    operation = Flaky(error, error)
    assert app.Retrier(3, sleep=lambda _: None)(operation) == "ok" and operation.calls == 3


@pytest.mark.parametrize("code", ["InvalidRequestException", "UnauthorizedException", "ResourceNotFoundException"])
def test_other_errors_are_raised_at_once(code):
    operation, sleeps = Flaky(throttle(code)), []
    with pytest.raises(ClientError, match=code):
        app.Retrier(8, sleep=sleeps.append)(operation)
    assert operation.calls == 1 and sleeps == []


def test_attempts_are_bounded():
    operation = Flaky(*[throttle()] * 10)
    with pytest.raises(ClientError, match="ThrottlingException"):
        app.Retrier(4, sleep=lambda _: None)(operation)
    assert operation.calls == 4


def test_retries_stop_when_the_invocation_would_time_out():
    operation, sleeps = Flaky(*[throttle()] * 10), []
    with pytest.raises(ClientError):
        app.Retrier(8, sleep=sleeps.append, remaining_seconds=lambda: 1.5)(operation)
    assert operation.calls == 1 and sleeps == []


def test_each_retry_is_reported():
    seen: list[dict] = []
    app.Retrier(3, sleep=lambda _: None, rand=lambda: 0.5, on_retry=lambda **f: seen.append(f))(Flaky(throttle()))
    assert seen == [
        {"operation": "update_certificate", "code": "ThrottlingException", "attempt": 1, "delaySeconds": 0.05}
    ]


def test_a_wait_after_which_the_call_is_no_longer_needed_ends_the_retries():
    operation, asked = Flaky(throttle(), throttle()), []
    still_needed = lambda: asked.append("asked") or False  # noqa: E731
    with pytest.raises(app.Superseded):
        app.Retrier(8, sleep=lambda _: None, still_needed=still_needed)(operation)
    assert operation.calls == 1 and asked == ["asked"]


def test_retries_go_on_while_the_call_is_still_needed():
    operation, asked = Flaky(throttle(), throttle()), []
    still_needed = lambda: asked.append("asked") or True  # noqa: E731
    assert app.Retrier(8, sleep=lambda _: None, still_needed=still_needed)(operation) == "ok"
    assert operation.calls == 3 and len(asked) == 2
