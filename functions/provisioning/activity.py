"""What a user sees of their devices beside the binding: when each was last seen, and what it sent lately.

- Last seen: the stack's presence rule keeps each client's last presence event (``$aws/events/presence/...``)
  in the presence table, keyed by client id; a device connects with its thing name as client id.
- Recent telemetry: the archive rule keeps each message as ``<topic>/<timestamp ms>_<uuid>``, so a device's
  telemetry lies under ``devices/<stack>/<thing>/telemetry/`` in time order; the newest ``limit`` objects
  after ``since`` are read back, newest last.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import json
from collections.abc import Callable, Iterable
from typing import Any

MAX_MESSAGES = 50  # messages one request reads back
DEFAULT_MESSAGES = 20
DEFAULT_WINDOW_MS = 3600 * 1000  # without "since": the last hour (at most MAX_PAGES pages of keys are read)
MAX_PAGES = 10  # ListObjectsV2 pages one request reads (10,000 keys)
MAX_PAYLOAD = 16 * 1024  # an archived message larger than this is listed without its payload
BATCH_GET = 100  # BatchGetItem takes at most 100 keys
BATCH_ROUNDS = 5  # rounds of unprocessed keys retried before giving up on them


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def last_seen(dynamodb: Any, call: Callable[..., Any], table: str, things: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{thing: {"connected", "at", "disconnectReason"?}}`` for the things with a presence event on record."""
    wanted = sorted(set(things))
    seen: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), BATCH_GET):
        keys = [{"clientId": {"S": thing}} for thing in wanted[start : start + BATCH_GET]]
        request: dict[str, Any] = {table: {"Keys": keys}}
        for _ in range(BATCH_ROUNDS):
            answer = call(dynamodb.batch_get_item, RequestItems=request)
            for item in answer.get("Responses", {}).get(table, []):
                thing = item["clientId"]["S"]
                at = int(item.get("timestamp", {}).get("N", "0"))
                seen[thing] = {"connected": item.get("eventType", {}).get("S") == "connected", "at": _iso(at)}
                if "disconnectReason" in item:
                    seen[thing]["disconnectReason"] = item["disconnectReason"]["S"]
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
    return seen


def _message(topic_prefix: str, key: str, body: bytes | None) -> dict[str, Any]:
    stamp = key[len(topic_prefix) :].split("_", 1)[0]
    message: dict[str, Any] = {"timestamp": _iso(int(stamp)) if stamp.isdigit() else None, "key": key}
    if body is None:
        message["truncated"] = True
        return message
    try:
        message["payload"] = json.loads(body)
    except ValueError:
        message["payloadBase64"] = base64.b64encode(body).decode()
    return message


def recent_telemetry(
    s3: Any, call: Callable[..., Any], bucket: str, topic: str, *, limit: int, since_ms: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` messages archived under ``topic`` at or after ``since_ms``, oldest first."""
    prefix = f"{topic}/"
    newest: collections.deque[tuple[str, int]] = collections.deque(maxlen=limit)
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "StartAfter": f"{prefix}{max(since_ms - 1, 0):013d}"}
    for _ in range(MAX_PAGES):
        page = call(s3.list_objects_v2, **params)
        newest.extend((item["Key"], int(item.get("Size", 0))) for item in page.get("Contents", []))
        if not page.get("IsTruncated"):
            break
        params["ContinuationToken"] = page["NextContinuationToken"]
    messages = []
    for key, size in newest:
        body = call(s3.get_object, Bucket=bucket, Key=key)["Body"].read() if size <= MAX_PAYLOAD else None
        messages.append(_message(prefix, key, body))
    return messages
