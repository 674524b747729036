"""The provisioning API: devices that ship with a serial and a token, not a certificate, get one over HTTPS.

API Gateway (HTTP API, payload 2.0) invokes :func:`lambda_handler` for three routes:

- ``GET /config?country=CC&state=ST``: the region, IoT endpoint and provisioning URL for the device
  (:mod:`region_map`); no authentication.
- ``POST /devices/{serial}/certificate`` ``{"token", "csr", "replace"?}``: the serial must be admitted
  (:mod:`fleet_rows`) and the token match; the row is claimed before any IoT call; RegisterThing
  makes the thing, the certificate for the CSR and the policy (:mod:`iot_steps`); 201 with the
  certificate. ``replace: true`` re-issues for a registered device: the new certificate is ACTIVE and
  attached before the old one is set INACTIVE, detached and deleted. Without a CSR the request is
  refused unless the stack allows server-made keys.
- ``DELETE /devices/{serial}`` ``{"token", "disable"?}``: the certificate INACTIVE, detached and
  deleted, the thing deleted, the serial admitted again (or disabled).

Every refusal is ``{"message": "..."}``: 400 malformed input, 403 unknown serial or wrong token (one
answer for both), 409 already registered or in progress, 429 when AWS still throttles after retries,
500 without a traceback. Whatever fails after the claim is undone, and the claim released.
Logs are one JSON line per request; the token, the CSR and keys are never logged.

Self-contained: the standard library and boto3 only; the modules beside this one are imported as
top-level modules, as Lambda puts the function's directory on ``sys.path``.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from api_edge import Refusal, answer, cached, log, request_body
from botocore.exceptions import ClientError
from csr_info import CsrError, read_csr
from fleet_rows import ADMITTED, CLAIMED, REGISTERED, FleetTable, Row, token_hash, token_matches
from iot_steps import ForeignThing, IotSteps, Registered, Undo
from region_map import MapError, check_place, choose_region, data_endpoint, destination, parse_map
from retrying import Calls, Clients, Throttled, error_code

SERIAL_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,256}$")
FORBIDDEN = "Unknown serial or wrong token."


class ConfigurationError(Exception):
    """The function's environment lacks something the stack sets."""


@dataclass(frozen=True)
class Config:
    table: str
    policy_name: str
    stack: str
    region: str
    map_parameter: str
    url_parameter: str
    server_keys: bool = False
    max_failures: int = 5
    lease_seconds: int = 60
    topic_root: str | None = None  # where the stack's devices publish (devices/<stack>), told to each device

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        names = ("FLEET_TABLE", "POLICY_NAME", "STACK_NAME", "AWS_REGION", "REGION_MAP_PARAMETER", "API_URL_PARAMETER")
        missing = [name for name in names if not env.get(name)]
        if missing:
            raise ConfigurationError(f"the function needs {', '.join(missing)} in its environment")
        numbers = {}
        for name, default in (("MAX_TOKEN_FAILURES", "5"), ("CLAIM_LEASE_SECONDS", "60")):
            value = env.get(name) or default
            if not value.isdigit() or int(value) < 1:
                raise ConfigurationError(f"{name} must be a positive whole number, not {value!r}")
            numbers[name] = int(value)
        return cls(
            table=env["FLEET_TABLE"],
            policy_name=env["POLICY_NAME"],
            stack=env["STACK_NAME"],
            region=env["AWS_REGION"],
            map_parameter=env["REGION_MAP_PARAMETER"],
            url_parameter=env["API_URL_PARAMETER"],
            server_keys=(env.get("ALLOW_SERVER_KEYS") or "false").lower() == "true",
            max_failures=numbers["MAX_TOKEN_FAILURES"],
            lease_seconds=numbers["CLAIM_LEASE_SECONDS"],
            topic_root=env.get("TOPIC_ROOT") or None,
        )


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise Refusal(400, f"{name} must be true or false.")
    return value


def _token(body: Mapping[str, Any]) -> str:
    token = body.get("token")
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        raise Refusal(400, "token must be the device's token: 16 to 256 letters, digits, '-' or '_'.")
    return token


@dataclass(frozen=True)
class Provisioning:
    """One request's work: the configuration, the AWS clients and the retrying call."""

    config: Config
    clients: Clients
    call: Callable[..., Any]
    request_id: str
    now: Callable[[], float] = time.time

    @property
    def table(self) -> FleetTable:
        return FleetTable(self.config.table, self.clients.client("dynamodb"), self.call)

    @property
    def steps(self) -> IotSteps:
        return IotSteps(self.clients.client("iot"), self.call, self.config.stack, self.config.policy_name)

    # -- GET /config --------------------------------------------------------------------------------

    def where(self, query: Mapping[str, str]) -> dict[str, Any]:
        try:
            country, state = check_place(query.get("country"), query.get("state"))
        except ValueError as exc:
            raise Refusal(400, str(exc)) from None
        ssm, names = self.clients.client("ssm"), [self.config.map_parameter, self.config.url_parameter]
        values = cached(
            "parameters",
            lambda: {p["Name"]: p["Value"] for p in self.call(ssm.get_parameters, Names=names)["Parameters"]},
        )
        endpoint = cached("endpoint", lambda: data_endpoint(self.clients.client("iot"), self.call))
        try:
            document = parse_map(values.get(self.config.map_parameter))
            region = choose_region(document, self.config.region, country, state)
            own_url = values.get(self.config.url_parameter) or ""
            found = destination(document, region, own_region=self.config.region, own_endpoint=endpoint, own_url=own_url)
        except MapError as exc:
            log("error", "misconfigured", requestId=self.request_id, reason=str(exc))
            raise Refusal(500, "The service's region map is misconfigured; the operator has been told.") from None
        return answer(200, found.as_dict())

    # -- POST /devices/{serial}/certificate ----------------------------------------------------------

    def _claim(self, serial: str, token: str, expected: str, not_registered: str) -> tuple[str, Row]:
        """Claim the row (one write); when that fails, read it once and answer why with a :class:`Refusal`."""
        claim_id = self.request_id or str(uuid.uuid4())
        now = int(self.now())
        table = self.table
        claimed = table.claim(serial, token_hash(token), expected, claim_id, now=now, lease=self.config.lease_seconds)
        if claimed is not None:
            return claim_id, claimed
        row = table.get(serial)
        if row is not None and row.status == CLAIMED and row.claimed_until < now and token_matches(row, token):
            # a request that died holding the claim: take it over (its leftovers are cleared on the way)
            claimed = table.claim(
                serial, token_hash(token), expected, claim_id, now=now, lease=self.config.lease_seconds, lapsed=True
            )
            if claimed is not None:
                return claim_id, claimed
        if not token_matches(row, token):
            disabled = table.record_failure(serial, self.config.max_failures)  # a no-op for unknown serials
            log("warning", "forbidden", requestId=self.request_id, serial=serial, disabledNow=disabled)
            raise Refusal(403, FORBIDDEN)
        assert row is not None  # token_matches is False without a row
        if row.disabled:
            raise Refusal(403, f"Device {serial} is disabled; the operator must admit it again.")
        if row.status == CLAIMED and row.claimed_until >= now:
            raise Refusal(409, f"A request for {serial} is in progress; try again in a minute.")
        if row.status_before_claim == REGISTERED and expected != REGISTERED:
            raise Refusal(409, f'{serial} is already registered; send "replace": true to re-issue its certificate.')
        if row.status_before_claim != REGISTERED and expected == REGISTERED:
            raise Refusal(409, not_registered)
        raise Refusal(409, f"Another request for {serial} got there first.")

    def enroll(self, serial: str, body: Mapping[str, Any]) -> dict[str, Any]:
        token, replace, csr = _token(body), _flag(body, "replace"), body.get("csr")
        if csr is None and not self.config.server_keys:
            raise Refusal(400, "send a CSR: the key is made on the device.")
        if csr is not None and not isinstance(csr, str):
            raise Refusal(400, "csr must be a PEM certificate request.")
        if csr is not None:
            try:
                info = read_csr(csr)
            except CsrError as exc:
                raise Refusal(400, str(exc)) from None
            if info.common_name not in (None, serial):
                raise Refusal(400, f"The CSR's common name is {info.common_name!r}; it must be {serial!r} or absent.")
        before = REGISTERED if replace else ADMITTED
        not_registered = f'{serial} is not registered yet; send the request without "replace".'
        claim_id, row = self._claim(serial, token, before, not_registered)
        undo = Undo()
        undo.push("release the claim", lambda: self.table.release(serial, claim_id, before))
        try:
            registered = self._register(serial, csr, row if replace else None, undo)
            self.table.registered(
                serial, claim_id, certificate_id=registered.certificate_id, arn=registered.certificate_arn
            )
        except BaseException:
            self._undo(undo, serial)
            raise
        endpoint = cached("endpoint", lambda: data_endpoint(self.clients.client("iot"), self.call))
        log("info", "replaced" if replace else "registered", requestId=self.request_id, serial=serial,
            certificateId=registered.certificate_id)  # fmt: skip
        result = {
            "thingName": registered.thing_name,
            "certificateId": registered.certificate_id,
            "certificatePem": registered.certificate_pem,
            "iotEndpoint": endpoint,
            "region": self.config.region,
            "topicRoot": self.config.topic_root,
        }
        if registered.private_key is not None:
            result["privateKey"] = registered.private_key
        return answer(201, result)

    def _undo(self, undo: Undo, serial: str) -> None:
        undo.run(lambda **failed: log("error", "undo-failed", requestId=self.request_id, serial=serial, **failed))

    def _register(self, serial: str, csr: str | None, old: Row | None, undo: Undo) -> Registered:
        steps = self.steps
        try:
            existed, principals = steps.thing_owner(serial)
        except ForeignThing as exc:
            raise Refusal(409, str(exc)) from None
        if not existed:
            undo.push("delete the thing", lambda: steps.delete_thing(serial))
        else:  # certificates a request that died left on the thing: any but the device's own
            steps.clear_leftovers(serial, [arn for arn in principals if old is None or arn != old.certificate_arn])
        try:
            registered = steps.register(serial, csr, undo)
        except ClientError as exc:
            if error_code(exc) != "InvalidRequestException":
                raise
            message = exc.response.get("Error", {}).get("Message", "")
            raise Refusal(400, f"AWS IoT refused the request: {message}") from None
        if old is not None and old.certificate_arn:
            steps.retire(old.certificate_arn, serial, undo)
        return registered

    # -- DELETE /devices/{serial} --------------------------------------------------------------------

    def deprovision(self, serial: str, body: Mapping[str, Any]) -> dict[str, Any]:
        token, disable = _token(body), _flag(body, "disable")
        claim_id, row = self._claim(
            serial, token, REGISTERED, f"{serial} is not registered; there is nothing to delete."
        )
        undo = Undo()
        undo.push("release the claim", lambda: self.table.release(serial, claim_id, REGISTERED))
        steps = self.steps
        try:
            _existed, principals = steps.thing_owner(serial)
            for arn in {*principals, *([row.certificate_arn] if row.certificate_arn else [])}:
                steps.remove_certificate(arn, serial)
            steps.delete_thing(serial)
            self.table.deprovisioned(serial, claim_id, disable=disable)
        except ForeignThing as exc:
            self._undo(undo, serial)
            raise Refusal(409, str(exc)) from None
        except BaseException:
            self._undo(undo, serial)
            raise
        log("info", "deprovisioned", requestId=self.request_id, serial=serial, disabled=disable)
        return answer(200, {"thingName": serial, "status": "DISABLED" if disable else "ADMITTED"})


def _serial(event: Mapping[str, Any]) -> str:
    serial = (event.get("pathParameters") or {}).get("serial")
    if not isinstance(serial, str) or not SERIAL_RE.match(serial):
        raise Refusal(400, "The serial must be 1 to 128 letters, digits, ':', '_' or '-'.")
    return serial


def route(event: Mapping[str, Any], work: Provisioning) -> dict[str, Any]:
    key = event.get("routeKey")
    if key == "GET /config":
        return work.where(event.get("queryStringParameters") or {})
    if key == "POST /devices/{serial}/certificate":
        return work.enroll(_serial(event), request_body(event))
    if key == "DELETE /devices/{serial}":
        return work.deprovision(_serial(event), request_body(event))
    raise Refusal(404, "Not Found")


def handle(event: Any, work: Provisioning) -> dict[str, Any]:
    """Answer the request; every failure is a JSON sentence, never a traceback."""
    if not isinstance(event, dict):
        return answer(400, {"message": "The request is not an API Gateway event."})
    try:
        return route(event, work)
    except Refusal as refusal:
        return answer(refusal.status, {"message": refusal.message})
    except Throttled as exc:
        log("warning", "throttled", requestId=work.request_id, reason=str(exc))
        return answer(429, {"message": "AWS IoT is busy; retry after a short, random wait."})
    except Exception as exc:
        log("error", "failed", requestId=work.request_id, error=error_code(exc), reason=str(exc))
        return answer(500, {"message": "The request failed; try again later."})


_clients = Clients()  # one set per container; the boto3 clients are made on first use


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        config = Config.from_env(os.environ)
    except ConfigurationError as exc:
        log("error", "failed", reason=str(exc))
        return answer(500, {"message": "The request failed; try again later."})
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    call = Calls(remaining=(lambda: remaining() / 1000) if remaining else None)
    request_id = getattr(context, "aws_request_id", None) or str(uuid.uuid4())
    return handle(event, Provisioning(config, _clients, call, request_id))
