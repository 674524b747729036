"""AWS calls for the provisioning function: clients made on first use, and retries of throttled calls.

A throttled or transient call is retried with capped exponential backoff and full jitter. When the
retries run out, :class:`Throttled` tells the handler to answer 429 (after undoing what it made), so
the device retries later instead of the API failing with 500.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

THROTTLING = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
    | {"ProvisionedThroughputExceededException", "LimitExceededException"}
)
TRANSIENT = frozenset({"ServiceUnavailableException", "InternalFailureException", "InternalServerError"})


class Throttled(Exception):
    """An AWS call was still throttled (or failing transiently) after every retry."""


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "")
    return type(exc).__name__


@dataclass(frozen=True)
class Calls:
    """Calls an operation, retrying throttling and transient failures; ``remaining`` bounds the waiting
    by the invocation's time left (seconds)."""

    attempts: int = 6
    base: float = 0.05
    cap: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random
    remaining: Callable[[], float] | None = None

    def __call__(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        for attempt in range(1, self.attempts + 1):
            try:
                return operation(**kwargs)
            except (ClientError, BotoConnectionError, HTTPClientError) as exc:
                code = error_code(exc)
                if isinstance(exc, ClientError) and code not in THROTTLING | TRANSIENT:
                    raise
                delay = self.rand() * min(self.cap, self.base * 2 ** (attempt - 1))
                if attempt == self.attempts or (self.remaining is not None and self.remaining() < delay + 3):
                    raise Throttled(f"{getattr(operation, '__name__', 'call')}: {code}") from exc
                self.sleep(delay)
        raise AssertionError("unreachable")


class Clients:
    """IoT, DynamoDB and SSM clients, made on first use (after moto or the emulator is in place), or injected."""

    def __init__(self, **clients: Any) -> None:
        self._clients = dict(clients)
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        with self._lock:
            if self._clients.get(service) is None:
                import boto3
                from botocore.config import Config

                # retries are ours (Calls); each call is one attempt with a bounded wait
                config = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=20)
                self._clients[service] = boto3.client(service, config=config)  # type: ignore[call-overload]
            return self._clients[service]
