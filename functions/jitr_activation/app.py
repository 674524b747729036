"""JITR activation: turn a certificate AWS IoT registered PENDING_ACTIVATION into an ACTIVE device.

IoT invokes :func:`lambda_handler` with the event published on
``$aws/events/certificates/registered/<caCertificateId>``. The decisions, in order, each logged as one
JSON line (``decision`` field) and returned as ``outcome``:

- ``rejected``: the event is not a registration event (wrong shape or types); no AWS call is made.
- ``duplicate``: another invocation holds the certificate's claim (``CLAIMS_TABLE``, :mod:`claims`): it
  is activating it, or has just done so; no IoT call is made.
- ``ignored``: another CA, an unknown certificate, or a status other than PENDING_ACTIVATION or ACTIVE.
- ``already-active``: the certificate is ACTIVE (a duplicate or late event); nothing to do. Also when
  another invocation activated it while this one waited to retry a throttled UpdateCertificate.
- ``refused``: no usable thing name in the certificate CN, the device is not in the fleet, or the thing the CN
  names belongs to another CA (its ``caCertificateId`` attribute, or a certificate attached to it, is another
  CA's): the certificate stays PENDING_ACTIVATION with nothing attached, so no device acts as another.
- ``activated``: CreateThing, AttachPolicy, AttachThingPrincipal, then UpdateCertificate ACTIVE, last.
- ``failed`` (then the handler raises): an AWS error that retries did not cure, or a misconfiguration.

Every step tolerates having been done before, so duplicate, concurrent and out-of-order events and a
re-run after a partial failure converge. Throttled calls are retried with capped exponential backoff and
full jitter; when retries run out the handler raises, Lambda retries the asynchronous invocation, and the
device's next connection publishes the event again. Each of those connections invokes the function anew,
so under throttling several invocations could wait on one certificate's UpdateCertificate. With a claims
table (``CLAIMS_TABLE``, :mod:`claims`) only the invocation holding the certificate's claim works on it and
the others stop at once; without one, before each retry of UpdateCertificate the function reads the status
once more (one DescribeCertificate, not itself retried) and stops when another invocation has activated
it, rather than spend an UpdateCertificate on it again.

Self-contained: the standard library and boto3 from the Lambda runtime; the modules beside this one are
imported as top-level modules, as Lambda puts the function's directory on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from aws_calls import Clients, Retrier, Superseded, error_code
from botocore.exceptions import ClientError
from certificate_subject import CertificateFormatError, thing_from_certificate
from claims import DEFAULT_LEASE_SECONDS, Claims

ENV_CA_CERTIFICATE_ID = "CA_CERTIFICATE_ID"
ENV_POLICY_NAME = "POLICY_NAME"
ENV_FLEET_PARAMETER_NAME = "FLEET_PARAMETER_NAME"
ENV_MAX_ATTEMPTS = "MAX_ATTEMPTS"
ENV_CLAIMS_TABLE = "CLAIMS_TABLE"
ENV_CLAIM_LEASE_SECONDS = "CLAIM_LEASE_SECONDS"

PENDING, ACTIVE = "PENDING_ACTIVATION", "ACTIVE"
OWNER_ATTRIBUTE = "caCertificateId"  # the thing attribute naming the CA whose devices the thing belongs to
REQUIRED_FIELDS = ("certificateId", "caCertificateId", "timestamp", "certificateStatus", "awsAccountId")
CERTIFICATE_ID_RE = re.compile(r"[0-9a-f]{64}")
ACCOUNT_ID_RE = re.compile(r"[0-9]{12}")


class InvalidEvent(Exception):
    """The event is not a certificate registration event."""


class ConfigurationError(Exception):
    """The function's environment lacks something it needs; the stack sets it."""


def log(level: str, decision: str, **fields) -> None:
    """One JSON line per decision; CloudWatch Logs (and tests) read stdout."""
    print(json.dumps({"level": level, "decision": decision, **fields}, default=str, sort_keys=True), flush=True)


# -- configuration and event -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    ca_certificate_id: str
    policy_name: str
    fleet_parameter_name: str | None = None
    max_attempts: int = 8
    claims_table: str | None = None  # without one, every invocation works (and spends IoT calls) on its own
    claim_lease_seconds: int = DEFAULT_LEASE_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        missing = [name for name in (ENV_CA_CERTIFICATE_ID, ENV_POLICY_NAME) if not env.get(name)]
        if missing:
            raise ConfigurationError(f"the function needs {' and '.join(missing)} in its environment")
        attempts = env.get(ENV_MAX_ATTEMPTS) or "8"
        lease = env.get(ENV_CLAIM_LEASE_SECONDS) or str(DEFAULT_LEASE_SECONDS)
        for name, value in ((ENV_MAX_ATTEMPTS, attempts), (ENV_CLAIM_LEASE_SECONDS, lease)):
            if not value.isdigit() or int(value) < 1:
                raise ConfigurationError(f"{name} must be a positive whole number, not {value!r}")
        return cls(
            ca_certificate_id=env[ENV_CA_CERTIFICATE_ID].strip().lower(),
            policy_name=env[ENV_POLICY_NAME],
            fleet_parameter_name=env.get(ENV_FLEET_PARAMETER_NAME) or None,
            max_attempts=int(attempts),
            claims_table=env.get(ENV_CLAIMS_TABLE) or None,
            claim_lease_seconds=int(lease),
        )


@dataclass(frozen=True)
class RegistrationEvent:
    certificate_id: str
    ca_certificate_id: str
    timestamp: int
    account_id: str


def _json_type(value) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_event(event) -> RegistrationEvent:
    """The registration event, or :class:`InvalidEvent` naming the first problem."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"the event is {_json_type(event)}, not a JSON object")
    for name in REQUIRED_FIELDS:
        if name not in event:
            raise InvalidEvent(f"{name} is missing")
    for name in ("certificateId", "caCertificateId"):
        if not isinstance(event[name], str) or not CERTIFICATE_ID_RE.fullmatch(event[name]):
            raise InvalidEvent(f"{name} is not 64 lowercase hexadecimal characters")
    if event["certificateStatus"] != PENDING:
        raise InvalidEvent(f"certificateStatus is {event['certificateStatus']!r}, not {PENDING}")
    if not _is_int(event["timestamp"]) or event["timestamp"] < 0:
        raise InvalidEvent("timestamp is not a number of milliseconds")
    if not isinstance(event["awsAccountId"], str) or not ACCOUNT_ID_RE.fullmatch(event["awsAccountId"]):
        raise InvalidEvent("awsAccountId is not 12 digits")
    registered = event.get("certificateRegistrationTimestamp")  # seen as a number, a string of ms, or null
    if not (registered is None or (_is_int(registered) and registered >= 0)) and not (
        isinstance(registered, str) and registered.isascii() and registered.isdigit()
    ):
        raise InvalidEvent("certificateRegistrationTimestamp is neither milliseconds nor null")
    if "sourceIp" in event and not isinstance(event["sourceIp"], str):
        raise InvalidEvent("sourceIp is not a string")
    return RegistrationEvent(
        event["certificateId"], event["caCertificateId"], event["timestamp"], event["awsAccountId"]
    )


# -- fleet membership ------------------------------------------------------------------------------------


def fleet_allows(parameter_value: str, thing_name: str) -> bool:
    """``re:<pattern>`` matches the whole thing name; otherwise the value lists names (comma or blank separated)."""
    text = parameter_value.strip()
    if text.startswith("re:"):
        return re.fullmatch(text[3:].strip(), thing_name) is not None
    return thing_name in {name for name in re.split(r"[\s,]+", text) if name}


def check_fleet(ssm, parameter_name: str, thing_name: str, call: Retrier) -> str | None:
    """None when the device is in the fleet, else the reason it is not (a missing parameter admits nobody)."""
    try:
        value = call(ssm.get_parameter, Name=parameter_name)["Parameter"]["Value"]
    except ClientError as exc:
        if error_code(exc) == "ParameterNotFound":
            return f"the fleet parameter {parameter_name} does not exist, so no device is in the fleet"
        raise
    try:
        allowed = fleet_allows(value, thing_name)
    except re.error as exc:
        return f"the fleet parameter {parameter_name} holds an invalid pattern ({exc})"
    return None if allowed else f"{thing_name} is not in the fleet (parameter {parameter_name})"


# -- the activation --------------------------------------------------------------------------------------


def decide(decision: str, fields: dict, *, level: str = "info", **extra) -> dict:
    """Log the decision and return it as the handler's result."""
    log(level, decision, **fields, **extra)
    return {"outcome": decision, **{k: v for k, v in {**fields, **extra}.items() if k != "requestId"}}


def create_thing(iot, thing_name: str, attributes: dict[str, str], call: Retrier) -> bool:
    """Create the thing; False when it already exists (AWS answers so when its attributes differ).

    The attributes carry the owning CA (:data:`OWNER_ATTRIBUTE`), so CreateThing succeeds again only for a
    thing of the same CA with the same attributes, and a thing of another CA is always ``False``.
    """
    kwargs: dict[str, object] = {"thingName": thing_name}
    if attributes:
        kwargs["attributePayload"] = {"attributes": attributes}
    try:
        call(iot.create_thing, **kwargs)
    except ClientError as exc:
        if error_code(exc) != "ResourceAlreadyExistsException":
            raise
        return False
    return True


def foreign_owner(iot, thing_name: str, certificate_arn: str, ca_certificate_id: str, call: Retrier) -> str | None:
    """Why the existing thing is not this CA's to attach to, or None when it is (or belongs to no one yet).

    A thing belongs to another CA when its owner attribute names another CA, or when a certificate attached
    to it was issued under another CA (a thing made before the attribute, by hand or by another tool).
    """
    owner = call(iot.describe_thing, thingName=thing_name).get("attributes", {}).get(OWNER_ATTRIBUTE)
    if owner and owner != ca_certificate_id:
        return f"the thing {thing_name} belongs to CA {owner}, not the configured CA"
    principals = call(iot.list_thing_principals, thingName=thing_name).get("principals", [])
    for principal in principals:
        if principal == certificate_arn or ":cert/" not in principal:
            continue
        try:
            described = call(iot.describe_certificate, certificateId=principal.rsplit("/", 1)[1])
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":  # detached and deleted since the listing
                continue
            raise
        other_ca = described["certificateDescription"].get("caCertificateId")
        if other_ca != ca_certificate_id:
            return f"the thing {thing_name} has certificate {principal.rsplit('/', 1)[1]} of CA {other_ca or 'none'}"
    return None


def certificate_is_active(iot, certificate_id: str) -> bool:
    """Whether the certificate is ACTIVE now; one call, an error (throttling too) answers False."""
    try:
        return iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"] == ACTIVE
    except ClientError:
        return False


def activate(
    event: RegistrationEvent, config: Config, clients: Clients, call: Retrier, fields: dict, owner: str = ""
) -> dict:
    """The CA check, the claim, then :func:`_activate`; a claim is released unless the certificate ended ACTIVE."""
    if event.ca_certificate_id != config.ca_certificate_id:
        return decide(
            "ignored",
            fields,
            level="warning",
            reason=f"registered under CA {event.ca_certificate_id}, not the configured CA",
        )
    if config.claims_table is None:
        return _activate(event, config, clients, call, fields)
    claims = Claims(config.claims_table, clients.dynamodb, config.claim_lease_seconds)
    owner = owner or f"{event.certificate_id}@{event.timestamp}"
    if not claims.take(event.certificate_id, owner, call):
        return decide("duplicate", fields, reason="another invocation holds this certificate's claim; no IoT call")
    try:
        outcome = _activate(event, config, clients, call, fields)
    except BaseException:
        claims.release(event.certificate_id, owner, call)  # the next event (a reconnect, Lambda's retry) decides
        raise
    if outcome["outcome"] not in ("activated", "already-active"):
        claims.release(event.certificate_id, owner, call)
    return outcome


def _activate(event: RegistrationEvent, config: Config, clients: Clients, call: Retrier, fields: dict) -> dict:
    """The checks, then the four steps in order; each step is idempotent and activation comes last."""
    iot = clients.iot
    try:
        description = call(iot.describe_certificate, certificateId=event.certificate_id)["certificateDescription"]
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        return decide(
            "ignored", fields, level="warning", reason="AWS IoT does not know this certificate (deleted since?)"
        )
    status, described_ca = description.get("status"), description.get("caCertificateId")
    if described_ca != config.ca_certificate_id:
        return decide(
            "ignored",
            fields,
            level="warning",
            reason=f"DescribeCertificate gives CA {described_ca}, not the configured CA",
        )
    if status == ACTIVE:
        return decide("already-active", fields, reason="the certificate is already ACTIVE; nothing to do")
    if status != PENDING:
        return decide(
            "ignored", fields, level="warning", status=status, reason=f"the certificate is {status}, not {PENDING}"
        )
    try:
        thing_name, attributes = thing_from_certificate(description.get("certificatePem") or "")
    except CertificateFormatError as exc:
        return decide("refused", fields, level="warning", reason=str(exc))
    fields["thingName"] = thing_name  # the caller's failure and retry lines name the thing from here on
    if config.fleet_parameter_name:
        refusal = check_fleet(clients.ssm, config.fleet_parameter_name, thing_name, call)
        if refusal:
            return decide("refused", fields, level="warning", reason=refusal)
    certificate_arn = description["certificateArn"]
    created = create_thing(iot, thing_name, attributes | {OWNER_ATTRIBUTE: config.ca_certificate_id}, call)
    if not created:
        refusal = foreign_owner(iot, thing_name, certificate_arn, config.ca_certificate_id, call)
        if refusal:
            return decide("refused", fields, level="warning", reason=refusal)
    call(iot.attach_policy, policyName=config.policy_name, target=certificate_arn)
    call(iot.attach_thing_principal, thingName=thing_name, principal=certificate_arn)
    try:
        # Without a claim, other invocations may be activating this certificate too: ask before each retry (one
        # DescribeCertificate) whether one did. With a claim none is, and that call would spend the quota the
        # first DescribeCertificate of other devices waits for.
        activating = (
            replace(call, still_needed=lambda: not certificate_is_active(iot, event.certificate_id))
            if config.claims_table is None
            else call
        )
        activating(iot.update_certificate, certificateId=event.certificate_id, newStatus=ACTIVE)
    except Superseded:
        return decide("already-active", fields, reason="another invocation activated it while this one waited")
    except ClientError as exc:  # revoked or deleted while we worked: AWS refuses to activate it
        if error_code(exc) not in ("CertificateStateException", "ResourceNotFoundException"):
            raise
        return decide("ignored", fields, level="warning", reason=f"UpdateCertificate refused: {error_code(exc)}")
    return decide("activated", fields, thingCreated=created, policyName=config.policy_name)


def _certificate_id_of(event) -> str | None:
    value = event.get("certificateId") if isinstance(event, dict) else None
    return value[:64] if isinstance(value, str) else None


def handle(event, *, config: Config, clients: Clients, call: Retrier | None = None, request_id=None) -> dict:
    """Validate ``event`` and activate its certificate; log ``failed`` and raise on errors retries did not cure."""
    fields = {"certificateId": _certificate_id_of(event)} | ({"requestId": request_id} if request_id else {})
    try:
        registration = parse_event(event)
    except InvalidEvent as exc:
        return decide("rejected", fields, level="warning", reason=str(exc))
    call = call or Retrier(config.max_attempts)
    if call.on_retry is None:
        call = replace(call, on_retry=lambda **retry: log("warning", "retry", **fields, **retry))
    try:
        return activate(registration, config, clients, call, fields, request_id or "")
    except Exception as exc:
        code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        log("error", "failed", **fields, error=code, reason=str(exc))
        raise


_default_clients = Clients()  # one per container, made at cold start; its boto3 clients on first use, under a lock


def lambda_handler(event, context):
    try:
        config = Config.from_env(os.environ)
    except ConfigurationError as exc:
        log("error", "failed", certificateId=_certificate_id_of(event), reason=str(exc))
        raise
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    call = Retrier(config.max_attempts, remaining_seconds=(lambda: remaining() / 1000) if remaining else None)
    return handle(
        event, config=config, clients=_default_clients, call=call, request_id=getattr(context, "aws_request_id", None)
    )
