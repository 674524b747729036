"""What the users function reads of a device beside its binding: its last presence event, and its newest
telemetry from the archive (keys ``<topic>/<ms>_<uuid>``, oldest first), with fakes for DynamoDB and S3."""

from __future__ import annotations

import io
import json

from tests.functional.functions.loading import load_function

activity = load_function("provisioning", "activity")
TOPIC = "devices/stack/dev-a/telemetry"


def call(operation, **kwargs):
    return operation(**kwargs)


class FakeS3:
    def __init__(self, objects: dict[str, bytes], page: int = 2) -> None:
        self.objects, self.page = objects, page
        self.listed: list[str] = []

    def list_objects_v2(self, Bucket, Prefix, StartAfter=None, ContinuationToken=None):  # noqa: N803 (boto3's names)
        after = ContinuationToken or StartAfter or ""
        keys = sorted(k for k in self.objects if k.startswith(Prefix) and k > after)
        self.listed.append(after)
        chunk = keys[: self.page]
        answer = {
            "Contents": [{"Key": k, "Size": len(self.objects[k])} for k in chunk],
            "IsTruncated": len(keys) > self.page,
        }
        if answer["IsTruncated"]:
            answer["NextContinuationToken"] = chunk[-1]
        return answer

    def get_object(self, Bucket, Key):  # noqa: N803
        return {"Body": io.BytesIO(self.objects[Key])}


def test_the_newest_messages_since_a_time_come_back_oldest_first_with_their_times():
    objects = {
        f"{TOPIC}/{ms}_uuid{ms}": json.dumps({"n": ms}).encode() for ms in range(1_700_000_000_000, 1_700_000_000_007)
    }
    objects["devices/stack/dev-b/telemetry/1700000000003_x"] = b"{}"  # another device's
    s3 = FakeS3(objects)
    found = activity.recent_telemetry(s3, call, "archive", TOPIC, limit=3, since_ms=1_700_000_000_002)
    assert [m["payload"]["n"] for m in found] == [1_700_000_000_004, 1_700_000_000_005, 1_700_000_000_006]
    assert found[0]["timestamp"] == "2023-11-14T22:13:20.004Z"
    assert s3.listed[0] == f"{TOPIC}/1700000000001"  # StartAfter just before 'since': that millisecond counts


def test_a_payload_that_is_not_json_or_too_large_is_listed_without_being_misread():
    objects = {
        f"{TOPIC}/1700000000000_a": b"\xff\x00raw",
        f"{TOPIC}/1700000000001_b": b"x" * (activity.MAX_PAYLOAD + 1),
    }
    found = activity.recent_telemetry(FakeS3(objects), call, "archive", TOPIC, limit=5, since_ms=0)
    assert found[0]["payloadBase64"] == "/wByYXc="
    assert found[1]["truncated"] is True and "payload" not in found[1]


def test_reading_stops_after_its_page_budget():
    objects = {f"{TOPIC}/{1_700_000_000_000 + n}_u": b"{}" for n in range(50)}
    s3 = FakeS3(objects, page=1)
    activity.recent_telemetry(s3, call, "archive", TOPIC, limit=5, since_ms=0)
    assert len(s3.listed) == activity.MAX_PAGES


class FakeDynamoDB:
    def __init__(self, rows: dict[str, dict], unprocessed_once: bool = False) -> None:
        self.rows, self.unprocessed_once, self.calls = rows, unprocessed_once, 0

    def batch_get_item(self, RequestItems):  # noqa: N803
        self.calls += 1
        ((table, request),) = RequestItems.items()
        keys = [key["clientId"]["S"] for key in request["Keys"]]
        if self.unprocessed_once and self.calls == 1:  # DynamoDB may hand keys back under load
            return {"Responses": {table: []}, "UnprocessedKeys": RequestItems}
        return {"Responses": {table: [self.rows[k] for k in keys if k in self.rows]}}


def test_last_seen_says_connected_or_not_with_the_events_time_and_reason_and_retries_unprocessed_keys():
    rows = {
        "dev-a": {"clientId": {"S": "dev-a"}, "eventType": {"S": "connected"}, "timestamp": {"N": "1700000000000"}},
        "dev-b": {
            "clientId": {"S": "dev-b"},
            "eventType": {"S": "disconnected"},
            "timestamp": {"N": "1700000060000"},
            "disconnectReason": {"S": "CLIENT_INITIATED_DISCONNECT"},
        },
    }
    dynamodb = FakeDynamoDB(rows, unprocessed_once=True)
    seen = activity.last_seen(dynamodb, call, "presence", ["dev-a", "dev-b", "dev-c"])
    assert seen == {
        "dev-a": {"connected": True, "at": "2023-11-14T22:13:20.000Z"},
        "dev-b": {
            "connected": False,
            "at": "2023-11-14T22:14:20.000Z",
            "disconnectReason": "CLIENT_INITIATED_DISCONNECT",
        },
    }
    assert dynamodb.calls == 2
