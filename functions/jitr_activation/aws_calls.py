"""AWS calls for the activation function: lazily created clients and retries with backoff and full jitter."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailableException",
        "InternalFailureException",
        "InternalServerError",
        "ProvisionedThroughputExceededException",
    }
)


class Superseded(Exception):
    """While a call waited to be retried, what it was for got done by someone else; it is not retried."""


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


@dataclass(frozen=True)
class Retrier:
    """Calls an AWS operation, retrying throttling and transient errors with capped backoff and full jitter.

    Attempt ``n`` that fails transiently sleeps a uniform random time in ``[0, min(cap, base * 2**(n-1))]``;
    after ``attempts`` attempts, or when the invocation would run out of time, the error is raised. When
    ``still_needed`` is given it is asked after each wait, before the next attempt; ``False`` raises
    :class:`Superseded` instead of retrying.
    """

    attempts: int = 8
    base: float = 0.1
    # AWS's default JITR quotas refill a call every 100 ms (10/s); a throttled call waiting seconds left that
    # quota unused while every worker slept: 5.0 s -> 1.0 s took throttled-aws from 85 % to 91 % (BENCHMARKS.md)
    cap: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random
    remaining_seconds: Callable[[], float] | None = None
    on_retry: Callable[..., None] | None = None
    still_needed: Callable[[], bool] | None = None

    def __call__(self, operation: Callable, **kwargs):
        name = getattr(operation, "__name__", "call")
        for attempt in range(1, self.attempts + 1):
            try:
                return operation(**kwargs)
            except (ClientError, BotoConnectionError, HTTPClientError) as exc:
                code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
                transient = not isinstance(exc, ClientError) or code in RETRYABLE_CODES
                delay = self.rand() * min(self.cap, self.base * 2 ** (attempt - 1))
                out_of_time = self.remaining_seconds is not None and self.remaining_seconds() < delay + 2
                if not transient or attempt == self.attempts or out_of_time:
                    raise
                if self.on_retry is not None:
                    self.on_retry(operation=name, code=code, attempt=attempt, delaySeconds=round(delay, 3))
                self.sleep(delay)
                if self.still_needed is not None and not self.still_needed():
                    raise Superseded(name) from exc
        raise AssertionError("unreachable")


class Clients:
    """The IoT, SSM and DynamoDB clients, created on first use (after moto or the emulator is in place), or injected."""

    def __init__(self, iot=None, ssm=None, dynamodb=None) -> None:
        self._clients = {"iot": iot, "ssm": ssm, "dynamodb": dynamodb}
        self._lock = threading.Lock()

    def _client(self, service: str):
        with self._lock:
            if self._clients[service] is None:
                self._clients[service] = self._make(service)
            return self._clients[service]

    def _make(self, service: str):
        import boto3
        from botocore.config import Config as BotoConfig

        # Retries are ours (Retrier), so botocore makes one attempt per call.
        config = BotoConfig(retries={"mode": "standard", "total_max_attempts": 1})
        return boto3.client(service, config=config)  # type: ignore[call-overload]  # stubs type literal names only

    @property
    def iot(self):
        return self._client("iot")

    @property
    def ssm(self):
        return self._client("ssm")

    @property
    def dynamodb(self):
        return self._client("dynamodb")
