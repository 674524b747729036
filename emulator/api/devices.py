"""The API handlers of device certificates, things and their attachments: the requests read and
checked, the work done by :mod:`emulator.store.devices` under the region's lock."""

from __future__ import annotations

from typing import Any

from emulator.api.calls import DELEGATE, Call
from emulator.store.device_certificates import describe_device, find_certificate
from emulator.store.devices import (
    INACTIVE,
    MAX_PEM,
    add_thing_to_thing_group,
    attach_policy,
    attach_thing_principal,
    create_thing,
    describe_thing,
    register_certificate,
    update_certificate,
)
from emulator.store.errors import InvalidRequest


def describe_certificate(call: Call) -> dict[str, Any]:
    backend = call.backend
    return {"certificateDescription": describe_device(backend, find_certificate(backend, call.path["certificateId"]))}


def _registered(record: Any) -> dict[str, Any]:  # a moto certificate record
    return {"certificateArn": record.arn, "certificateId": record.certificate_id}


def _status(call: Call) -> str:
    status = call.text("status")
    if status is None:
        status = "ACTIVE" if call.flag("setAsActive") else INACTIVE
    return status


def register_certificate_handler(call: Call) -> dict[str, Any]:
    pem = call.text("certificatePem", required=True, max_length=MAX_PEM)
    ca_pem = call.text("caCertificatePem", max_length=MAX_PEM)
    with call.state.lock:
        return _registered(register_certificate(call.backend, pem, ca_pem=ca_pem, status=_status(call)))


def register_certificate_without_ca_handler(call: Call) -> dict[str, Any]:
    pem = call.text("certificatePem", required=True, max_length=MAX_PEM)
    with call.state.lock:
        return _registered(register_certificate(call.backend, pem, ca_pem=None, status=_status(call)))


def create_thing_handler(call: Call) -> dict[str, Any] | object:
    if call.body.get("billingGroupName") is not None:
        return DELEGATE  # billing groups: moto's own CreateThing
    payload = call.body.get("attributePayload") or {}
    attributes = (payload.get("attributes") or {}) if isinstance(payload, dict) else None
    if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
        raise InvalidRequest("attributePayload.attributes must map names to strings.")
    with call.state.lock:
        thing = create_thing(call.backend, call.path["thingName"], call.text("thingTypeName"), attributes)
    return {"thingName": thing.thing_name, "thingArn": thing.arn, "thingId": thing.thing_id}


def describe_thing_handler(call: Call) -> dict[str, Any]:
    with call.state.lock:
        return describe_thing(call.backend, call.path["thingName"])


def attach_policy_handler(call: Call) -> dict[str, Any]:
    with call.state.lock:
        attach_policy(call.backend, call.path["policyName"], call.text("target", required=True))
    return {}


def attach_thing_principal_handler(call: Call) -> dict[str, Any] | object:
    principal = call.headers.get("x-amzn-principal")
    if not principal:
        raise InvalidRequest("principal is required.")
    if ":cert/" not in principal or call.query.get("thingPrincipalType") == "EXCLUSIVE_THING":
        return DELEGATE  # other principals, and exclusive attachment: moto's own
    with call.state.lock:
        attach_thing_principal(call.backend, call.path["thingName"], principal)
    return {}


def add_thing_to_thing_group_handler(call: Call) -> dict[str, Any] | object:
    thing = call.text("thingName")
    if thing is None:
        return DELEGATE  # named by thingArn: moto's own
    group_name, group_arn = call.text("thingGroupName"), call.text("thingGroupArn")
    if group_name is None and group_arn is None:
        raise InvalidRequest("Give thingGroupName or thingGroupArn.")
    with call.state.lock:
        add_thing_to_thing_group(call.backend, group_name, group_arn, thing)
    return {}


def update_certificate_handler(call: Call) -> dict[str, Any]:
    status = call.query.get("newStatus")
    if status is None:
        raise InvalidRequest("newStatus is required.")
    with call.state.lock:
        update_certificate(call.backend, call.path["certificateId"], status)
    services = call.settings.services(call.region)  # outside the lock: the broker's hooks read the registry
    if services is not None and services.certificate_changed is not None:
        services.certificate_changed(call.path["certificateId"], status)
    return {}


HANDLERS = {
    "RegisterCertificate": register_certificate_handler,
    "RegisterCertificateWithoutCA": register_certificate_without_ca_handler,
    "CreateThing": create_thing_handler,
    "DescribeThing": describe_thing_handler,
    "AttachPolicy": attach_policy_handler,
    "AttachThingPrincipal": attach_thing_principal_handler,
    "AddThingToThingGroup": add_thing_to_thing_group_handler,
    "UpdateCertificate": update_certificate_handler,
    "DescribeCertificate": describe_certificate,
}
