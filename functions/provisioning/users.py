"""The users API: people signed in to the stack's user pool bind their devices, and get temporary AWS
credentials that reach those devices only.

API Gateway (HTTP API, payload 2.0, a JWT authorizer on the user pool) invokes :func:`lambda_handler`; the
caller is the token's ``sub`` claim, never anything in the request body.

- ``GET /devices/{thing}/registration``: ``{"thingName", "registered"}``: whether the thing exists with
  an ACTIVE certificate.
- ``POST /bindings`` ``{"thingName", "code"}``: binds the device to the caller. The code (``jitr fleet
  admit`` hands one out per device, to print on it or its box) must match, the device must be registered,
  and it must have no other owner: 403 for a wrong code or an unregistered device, 409 for another
  owner's device. Binding one's own device again answers 200.
- ``DELETE /bindings/{thing}``: the caller's binding removed; 404 when the device is not theirs.
- ``GET /bindings``: ``{"devices": [{"thingName", "boundAt", "lastSeen"?}]}``, the caller's devices, each
  with its last presence event when there is one (``{"connected", "at", "disconnectReason"?}``).
- ``GET /devices/{thing}/telemetry?limit=&since=``: ``{"thingName", "messages": [{"timestamp", "payload"}]}``,
  the newest ``limit`` (default 20, at most 50) telemetry messages archived since ``since`` (epoch ms;
  default the last hour), oldest first: the caller's own devices only (404 for any other).
- ``POST /credentials`` ``{"things"?: [...]}``: STS AssumeRole of the stack's user-device role with a
  session policy that allows ``iot:Connect`` as client ids ``<sub>-*``, ``iot:Subscribe`` and
  ``iot:Receive`` on each device's telemetry topic, and ``iot:Publish`` on its ``commands/*`` topics;
  nothing else, for at most an hour. 403 when the caller has no bound device (or asks for one not theirs).
  Unbinding does not revoke credentials already issued: they work until they expire, as on AWS.

Refusals are ``{"message": "..."}``; the code is never logged.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from activity import DEFAULT_MESSAGES, DEFAULT_WINDOW_MS, MAX_MESSAGES, last_seen, recent_telemetry
from api_edge import Refusal, answer, cached, log, request_body
from bindings import MAX_DEVICES, Bindings
from botocore.exceptions import ClientError
from fleet_rows import FleetTable, code_matches
from region_map import data_endpoint
from retrying import Calls, Clients, Throttled, error_code

THING_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
CODE_RE = re.compile(r"^[A-Za-z0-9 -]{4,64}$")
MAX_CREDENTIAL_SECONDS = 3600  # a role assumed by a Lambda function's role (role chaining) lasts an hour at most
MAX_SESSION_POLICY = 2048  # characters of an inline session policy
MAX_THINGS = 8  # devices one set of credentials reaches (what fits a session policy)
WRONG_CODE = "The binding code does not match this device."


@dataclass(frozen=True)
class Config:
    bindings_table: str
    fleet_table: str
    role_arn: str
    topic_root: str
    region: str
    account_id: str
    archive_bucket: str
    presence_table: str
    seconds: int = MAX_CREDENTIAL_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        names = (
            "BINDINGS_TABLE",
            "FLEET_TABLE",
            "USER_DEVICE_ROLE_ARN",
            "TOPIC_ROOT",
            "AWS_REGION",
            "ARCHIVE_BUCKET",
            "PRESENCE_TABLE",
        )
        missing = [name for name in names if not env.get(name)]
        if missing:
            raise RuntimeError(f"the function needs {', '.join(missing)} in its environment")
        seconds = env.get("CREDENTIALS_SECONDS") or str(MAX_CREDENTIAL_SECONDS)
        if not seconds.isdigit() or not 900 <= int(seconds) <= MAX_CREDENTIAL_SECONDS:
            raise RuntimeError(f"CREDENTIALS_SECONDS must be 900 to {MAX_CREDENTIAL_SECONDS}, not {seconds!r}")
        return cls(
            bindings_table=env["BINDINGS_TABLE"],
            fleet_table=env["FLEET_TABLE"],
            role_arn=env["USER_DEVICE_ROLE_ARN"],
            topic_root=env["TOPIC_ROOT"],
            region=env["AWS_REGION"],
            account_id=env["USER_DEVICE_ROLE_ARN"].split(":")[4],
            archive_bucket=env["ARCHIVE_BUCKET"],
            presence_table=env["PRESENCE_TABLE"],
            seconds=int(seconds),
        )


def session_policy(config: Config, subject: str, things: list[str]) -> dict[str, Any]:
    """What the credentials allow beyond nothing: connect as ``<sub>-*``, hear each device, command it.

    The ARNs leave region and account to the role's policy (the effective rights are the intersection), which
    keeps eight devices within a session policy's 2,048 characters.
    """
    arn = "arn:aws:iot:*:*"
    telemetry = [f"{config.topic_root}/{thing}/telemetry" for thing in things]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{arn}:client/{subject}-*"},
            {
                "Effect": "Allow",
                "Action": ["iot:Subscribe", "iot:Receive"],
                "Resource": [f"{arn}:topicfilter/{t}" for t in telemetry] + [f"{arn}:topic/{t}" for t in telemetry],
            },
            {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": [f"{arn}:topic/{config.topic_root}/{thing}/commands/*" for thing in things],
            },
        ],
    }


class Users:
    """One request's work for the signed-in user ``subject``."""

    def __init__(self, config: Config, clients: Clients, call: Calls, request_id: str, subject: str) -> None:
        self.config, self.clients, self.call, self.request_id, self.subject = config, clients, call, request_id, subject

    @property
    def bindings(self) -> Bindings:
        return Bindings(self.config.bindings_table, self.clients.client("dynamodb"), self.call)

    def registered(self, thing: str) -> bool:
        iot = self.clients.client("iot")
        try:
            self.call(iot.describe_thing, thingName=thing)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return False
            raise
        principals = self.call(iot.list_thing_principals, thingName=thing).get("principals", [])
        for arn in principals:
            if ":cert/" not in arn:
                continue
            described = self.call(iot.describe_certificate, certificateId=arn.rsplit("/", 1)[1])
            if described["certificateDescription"]["status"] == "ACTIVE":
                return True
        return False

    def registration(self, thing: str) -> dict[str, Any]:
        return answer(200, {"thingName": thing, "registered": self.registered(thing)})

    def bind(self, body: Mapping[str, Any]) -> dict[str, Any]:
        thing, code = _thing(body.get("thingName")), body.get("code")
        if not isinstance(code, str) or not CODE_RE.match(code):
            raise Refusal(400, "code must be the binding code printed on the device (letters, digits and dashes).")
        row = FleetTable(self.config.fleet_table, self.clients.client("dynamodb"), self.call).get(thing)
        if not code_matches(row, code):
            log("warning", "wrong-code", requestId=self.request_id, thingName=thing, user=self.subject)
            raise Refusal(403, WRONG_CODE)
        if not self.registered(thing):
            raise Refusal(403, f"Device {thing} is not registered yet: switch it on and let it connect first.")
        if len(self.bindings.of_owner(self.subject)) >= MAX_DEVICES:
            raise Refusal(409, f"You have {MAX_DEVICES} devices bound already; unbind one first.")
        bound = self.bindings.bind(thing, self.subject)
        if bound is None:
            log("warning", "owned", requestId=self.request_id, thingName=thing, user=self.subject)
            raise Refusal(409, f"Device {thing} already has an owner; they must unbind it first.")
        log("info", "bound", requestId=self.request_id, thingName=thing, user=self.subject)
        return answer(200, {"thingName": thing, "owner": self.subject, "boundAt": bound.bound_at})

    def unbind(self, thing: str) -> dict[str, Any]:
        if not self.bindings.unbind(thing, self.subject):
            raise Refusal(404, f"You have no device {thing}.")
        log("info", "unbound", requestId=self.request_id, thingName=thing, user=self.subject)
        return answer(200, {"thingName": thing, "unbound": True})

    def devices(self) -> dict[str, Any]:
        found = self.bindings.of_owner(self.subject)
        dynamodb = self.clients.client("dynamodb")
        names = [b.thing_name for b in found]
        seen = last_seen(dynamodb, self.call, self.config.presence_table, names) if found else {}
        listed = []
        for b in found:
            device: dict[str, Any] = {"thingName": b.thing_name, "boundAt": b.bound_at}
            if b.thing_name in seen:
                device["lastSeen"] = seen[b.thing_name]
            listed.append(device)
        return answer(200, {"devices": listed})

    def telemetry(self, thing: str, query: Mapping[str, str]) -> dict[str, Any]:
        limit = _number(query, "limit", DEFAULT_MESSAGES, 1, MAX_MESSAGES)
        now = int(time.time() * 1000)
        since = _number(query, "since", now - DEFAULT_WINDOW_MS, 0, now)
        if thing not in {b.thing_name for b in self.bindings.of_owner(self.subject)}:
            raise Refusal(404, f"You have no device {thing}.")
        topic = f"{self.config.topic_root}/{thing}/telemetry"
        s3 = self.clients.client("s3")
        messages = recent_telemetry(s3, self.call, self.config.archive_bucket, topic, limit=limit, since_ms=since)
        return answer(200, {"thingName": thing, "messages": messages})

    def credentials(self, body: Mapping[str, Any]) -> dict[str, Any]:
        asked = body.get("things")
        if asked is not None and not (isinstance(asked, list) and asked and all(isinstance(t, str) for t in asked)):
            raise Refusal(400, "things must be a non-empty list of your devices' names.")
        wanted = sorted({_thing(t) for t in asked}) if asked is not None else None
        owned = [b.thing_name for b in self.bindings.of_owner(self.subject)]
        things = owned if wanted is None else wanted
        if not set(things) <= set(owned):
            raise Refusal(403, f"You do not own {', '.join(sorted(set(things) - set(owned)))}.")
        if not things:
            raise Refusal(403, "You have no device bound: bind one first (POST /bindings).")
        if len(things) > MAX_THINGS:
            raise Refusal(400, f"Credentials reach at most {MAX_THINGS} devices; name them with things.")
        policy = json.dumps(session_policy(self.config, self.subject, things), separators=(",", ":"))
        if len(policy) > MAX_SESSION_POLICY:
            raise Refusal(400, "Your devices' names are too long for one set of credentials; ask for fewer.")
        sts = self.clients.client("sts")
        assumed = self.call(
            sts.assume_role,
            RoleArn=self.config.role_arn,
            RoleSessionName=self.subject[:64],
            Policy=policy,
            DurationSeconds=self.config.seconds,
        )["Credentials"]
        endpoint = cached("endpoint", lambda: data_endpoint(self.clients.client("iot"), self.call))
        log("info", "credentials", requestId=self.request_id, user=self.subject, things=things)
        return answer(
            200,
            {
                "accessKeyId": assumed["AccessKeyId"],
                "secretAccessKey": assumed["SecretAccessKey"],
                "sessionToken": assumed["SessionToken"],
                "expiration": assumed["Expiration"].isoformat(),
                "iotEndpoint": endpoint,
                "region": self.config.region,
                "clientIdPrefix": f"{self.subject}-",
                "things": things,
                "topicRoot": self.config.topic_root,
            },
        )


def _thing(value: Any) -> str:
    if not isinstance(value, str) or not THING_RE.match(value):
        raise Refusal(400, "A thing name is 1 to 128 letters, digits, ':', '_' or '-'.")
    return value


def _number(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Refusal(400, f"{name} must be a whole number from {low} to {high}.")
    return int(raw)


def subject_of(event: Mapping[str, Any]) -> str:
    """The signed-in user: the ``sub`` claim the JWT authorizer verified (never a claim the body makes)."""
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt", {}).get("claims") or {}
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise Refusal(401, "Unauthorized")
    return subject


def route(event: Mapping[str, Any], users: Users) -> dict[str, Any]:
    key = event.get("routeKey")
    thing = (event.get("pathParameters") or {}).get("thing")
    if key == "GET /devices/{thing}/registration":
        return users.registration(_thing(thing))
    if key == "POST /bindings":
        return users.bind(request_body(event, '{"thingName": "...", "code": "..."}'))
    if key == "DELETE /bindings/{thing}":
        return users.unbind(_thing(thing))
    if key == "GET /bindings":
        return users.devices()
    if key == "GET /devices/{thing}/telemetry":
        return users.telemetry(_thing(thing), event.get("queryStringParameters") or {})
    if key == "POST /credentials":
        body = request_body(event, '{"things": ["..."]}') if (event.get("body") or "").strip() else {}
        return users.credentials(body)
    raise Refusal(404, "Not Found")


_clients = Clients()


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    request_id = getattr(context, "aws_request_id", None) or str(uuid.uuid4())
    if not isinstance(event, dict):
        return answer(400, {"message": "The request is not an API Gateway event."})
    try:
        config = Config.from_env(os.environ)
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        call = Calls(remaining=(lambda: remaining() / 1000) if remaining else None)
        return route(event, Users(config, _clients, call, request_id, subject_of(event)))
    except Refusal as refusal:
        return answer(refusal.status, {"message": refusal.message})
    except Throttled as exc:
        log("warning", "throttled", requestId=request_id, reason=str(exc))
        return answer(429, {"message": "AWS is busy; retry after a short, random wait."})
    except Exception as exc:
        log("error", "failed", requestId=request_id, error=error_code(exc), reason=str(exc))
        return answer(500, {"message": "The request failed; try again later."})
