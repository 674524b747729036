"""Certificate rotation by CSR over MQTT (``jitr device rotate``): the two checks AWS IoT cannot make itself.

A device rotates with its own certificate: CreateCertificateFromCsr over MQTT, then RegisterThing with the
stack's rotation template (``jitr fleet claim --rotation``), which keeps the thing and attaches the new
certificate. Then it connects with the new certificate and publishes ``{"retire": "<old certificate id>"}``
to ``devices/<stack>/<thing>/rotation``; only then is the old certificate set INACTIVE and detached
(Device Defender's order: the new certificate proved before the old one goes).

- :func:`hook_handler` is the rotation template's pre-provisioning hook. RegisterThing names the thing in
  its parameters (``ThingName``), which the device chooses: without this check a device could attach a
  certificate of its own to another device's thing and act as it. It allows the request only when the
  requesting certificate (``claimCertificateId``) is ACTIVE, attached to that thing, and has this stack's
  device policy (``POLICY_NAME``).
- :func:`retire_handler` is invoked by the stack's rotation rule with the message, the publishing
  certificate (``principal()``) and the thing (``topic(3)``). It retires the named old certificate only
  when the publisher (the new certificate) is ACTIVE and attached to the thing, and the old one is another
  certificate attached to the same thing. UpdateCertificate INACTIVE, then DetachThingPrincipal.

Each decision is logged as one JSON line. Self-contained: the standard library and boto3.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENV_POLICY_NAME = "POLICY_NAME"
ACTIVE, INACTIVE = "ACTIVE", "INACTIVE"
CERTIFICATE_ID_RE = re.compile(r"[0-9a-f]{64}")
THING_NAME_RE = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
CONFIG = Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 8})

_client = None


def client():
    global _client
    if _client is None:
        _client = boto3.client("iot", config=CONFIG)
    return _client


def log(**fields: Any) -> None:
    print(json.dumps(fields, sort_keys=True))


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException"


def _certificate(certificate_id: str) -> dict[str, Any] | None:
    iot = client()
    try:
        return iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    except ClientError as exc:
        if _missing(exc):
            return None
        raise


def _principals(thing: str) -> list[str]:
    iot, found, token = client(), [], None
    while True:
        try:
            page = iot.list_thing_principals(thingName=thing, **({"nextToken": token} if token else {}))
        except ClientError as exc:
            if _missing(exc):
                return []
            raise
        found += page.get("principals", [])
        token = page.get("nextToken")
        if not token:
            return found


def _policies(certificate_arn: str) -> list[str]:
    iot, found, marker = client(), [], None
    while True:
        page = iot.list_attached_policies(target=certificate_arn, **({"marker": marker} if marker else {}))
        found += [policy["policyName"] for policy in page.get("policies", [])]
        marker = page.get("nextMarker")
        if not marker:
            return found


def _refuse(handler: str, reason: str, **fields: Any) -> dict[str, Any]:
    log(handler=handler, decision="refused", reason=reason, **fields)
    return {"allowProvisioning": False} if handler == "hook" else {"outcome": "refused", "reason": reason}


def hook_handler(event: Any, context: Any = None) -> dict[str, Any]:
    """The rotation template's pre-provisioning hook: allow only the thing's own ACTIVE certificate."""
    if not isinstance(event, dict) or not isinstance(event.get("parameters"), dict):
        return _refuse("hook", "not a pre-provisioning hook event")
    thing = event["parameters"].get("ThingName")
    requester = event.get("claimCertificateId")
    if not isinstance(thing, str) or not THING_NAME_RE.fullmatch(thing):
        return _refuse("hook", "no valid ThingName parameter")
    if not isinstance(requester, str) or not CERTIFICATE_ID_RE.fullmatch(requester):
        return _refuse("hook", "no requesting certificate", thing=thing)
    described = _certificate(requester)
    if described is None or described.get("status") != ACTIVE:
        return _refuse("hook", "the requesting certificate is not ACTIVE", thing=thing, certificate=requester)
    arn = described["certificateArn"]
    if arn not in _principals(thing):
        return _refuse("hook", "the requesting certificate is not attached to the thing", thing=thing)
    if os.environ[ENV_POLICY_NAME] not in _policies(arn):
        return _refuse("hook", "the requesting certificate is not one of this stack's devices", thing=thing)
    log(handler="hook", decision="allowed", thing=thing, certificate=requester, new=event.get("certificateId"))
    return {"allowProvisioning": True}


def retire_handler(event: Any, context: Any = None) -> dict[str, Any]:
    """The rotation rule's action: retire the old certificate once the new one has published with it."""
    if not isinstance(event, dict):
        return _refuse("retire", "not a rotation message")
    thing, new, old = event.get("thingName"), event.get("principal"), event.get("retire")  # the rule's SELECT
    if not isinstance(thing, str) or not THING_NAME_RE.fullmatch(thing):
        return _refuse("retire", "no thing name in the topic")
    if not isinstance(new, str) or not CERTIFICATE_ID_RE.fullmatch(new):
        return _refuse("retire", "the message came from no certificate", thing=thing)
    if not isinstance(old, str) or not CERTIFICATE_ID_RE.fullmatch(old):
        return _refuse("retire", "the message names no certificate to retire", thing=thing)
    if new == old:
        return _refuse("retire", "a certificate cannot retire itself", thing=thing)
    attached = set(_principals(thing))
    current, previous = _certificate(new), _certificate(old)
    if current is None or current.get("status") != ACTIVE or current["certificateArn"] not in attached:
        return _refuse("retire", "the publishing certificate is not the thing's ACTIVE one", thing=thing)
    if previous is None or previous["certificateArn"] not in attached:
        return _refuse("retire", "the certificate to retire is not attached to the thing", thing=thing, old=old)
    iot = client()
    if previous.get("status") == ACTIVE:
        iot.update_certificate(certificateId=old, newStatus=INACTIVE)
    iot.detach_thing_principal(thingName=thing, principal=previous["certificateArn"])
    log(handler="retire", decision="retired", thing=thing, old=old, new=new)
    return {"outcome": "retired", "thing": thing, "old": old}
