"""JSON over HTTPS to the stack's APIs (the provisioning API, the users API), as AWS recommends clients retry.

:class:`Requests` retries 429, 5xx and silence (refused, reset, timed out) with exponential backoff and full
jitter, and stops at once on any other 4xx with the API's own sentence (its ``message``). Each request has a
timeout. :func:`check_url` keeps secrets off networks in clear: https, or http to this machine only.
"""

from __future__ import annotations

import json
import random
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from base.backoff import Backoff
from base.errors import AwsError, ExitStatus, InvalidInputError, JitrError

REQUEST_TIMEOUT = 15.0  # seconds for one HTTPS request
LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_BACKOFF = Backoff(base=0.5, cap=10.0, attempts=8)

# (method, url, body or None, timeout, headers) -> (HTTP status, body); raises OSError when there is no answer
Transport = Callable[[str, str, bytes | None, float, Mapping[str, str]], tuple[int, bytes]]


class ApiRefusedError(AwsError):
    """The API answered a 4xx: the request itself is wrong, and retrying will not help."""


class ApiUnreachableError(JitrError):
    """The API did not answer (or kept answering 429/5xx) through every retry."""

    exit_code = ExitStatus.UNREACHABLE


def urllib_transport(
    method: str, url: str, body: bytes | None, timeout: float, headers: Mapping[str, str]
) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, method=method, headers={"content-type": "application/json", **headers}
    )
    context = ssl.create_default_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def check_url(url: str, what: str) -> str:
    """An https URL, or http on this machine only (the local emulator): a secret never crosses a network in clear."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return url.rstrip("/")
    if parsed.scheme == "http" and parsed.hostname in LOOPBACK:
        return url.rstrip("/")
    raise InvalidInputError(f"{what} {url!r} must be an https:// URL (http:// only on 127.0.0.1 or localhost).")


@dataclass(frozen=True)
class Requests:
    """JSON requests to an API, retried as AWS recommends (429, 5xx and silence; never another 4xx).

    ``refused`` and ``unreachable`` make the errors raised, so that each caller's failures keep their exit code.
    """

    transport: Transport = urllib_transport
    backoff: Backoff = DEFAULT_BACKOFF
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random
    on_retry: Callable[[str], None] = lambda _why: None
    headers: Mapping[str, str] = field(default_factory=dict)
    api: str = "The API"
    refused: Callable[[str], Exception] = ApiRefusedError
    unreachable: Callable[[str], Exception] = ApiUnreachableError

    def __call__(self, method: str, url: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps(payload).encode() if payload is not None else None
        why = "no attempt"
        for retry in range(self.backoff.attempts):
            if retry:
                self.sleep(self.backoff.delay(retry - 1, self.rand))
            try:
                status, raw = self.transport(method, url, body, REQUEST_TIMEOUT, self.headers)
            except OSError as exc:  # refused, reset, timed out, TLS: no answer to read
                why = f"no answer ({getattr(exc, 'reason', None) or exc})"
                self.on_retry(why)
                continue
            answer = _json(raw)
            if 200 <= status < 300 and isinstance(answer, dict):
                return answer
            message = answer.get("message") if isinstance(answer, dict) else None
            message = str(message or raw[:200].decode("utf-8", "replace") or "no message").rstrip(".")
            if status == 429 or status >= 500:
                why = f"HTTP {status}: {message}"
                self.on_retry(why)
                continue
            raise self.refused(f"{self.api} refused the request: {message} (HTTP {status}).")
        raise self.unreachable(f"{url} did not answer after {self.backoff.attempts} attempts; last: {why}.")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
