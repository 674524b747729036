"""What the stack's HTTP API functions share (app.py, users.py): a refusal with its status, JSON answers, the
request's JSON body, one JSON log line per decision (never a token, a code, a CSR or a key), and a cache a
container keeps for a minute (the region map, the provisioning URL, the IoT endpoint)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

MAX_BODY = 16 * 1024
CACHE_SECONDS = 60.0


class Refusal(Exception):
    """The request is answered with ``status`` and the sentence ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def log(level: str, decision: str, **fields: Any) -> None:
    print(json.dumps({"level": level, "decision": decision, **fields}, default=str, sort_keys=True), flush=True)


def answer(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def request_body(event: Mapping[str, Any], example: str = '{"token": "...", "csr": "..."}') -> dict[str, Any]:
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise Refusal(400, "The request body is not UTF-8 JSON.") from None
    if len(raw) > MAX_BODY:
        raise Refusal(400, f"The request body is {len(raw)} bytes; at most {MAX_BODY} are accepted.")
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError:
        raise Refusal(400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise Refusal(400, f"The request body must be a JSON object, such as {example}.")
    return body


_cache: dict[str, tuple[float, Any]] = {}  # per container


def cached(key: str, load: Callable[[], Any], clock: Callable[[], float] = time.monotonic) -> Any:
    hit = _cache.get(key)
    if hit is not None and clock() - hit[0] < CACHE_SECONDS:
        return hit[1]
    value = load()
    _cache[key] = (clock(), value)
    return value
