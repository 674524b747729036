"""The API handlers of device certificates, things and their attachments: the requests read and
checked, the work done by :mod:`emulator.store.devices` under the region's lock."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from emulator.api.calls import DELEGATE, Call, page, walk_page
from emulator.store.ca_certificates import DEFAULT
from emulator.store.device_certificates import describe_device, find_certificate
from emulator.store.devices import (
    INACTIVE,
    MAX_PEM,
    add_thing_to_thing_group,
    attach_policy,
    attach_thing_principal,
    create_thing,
    describe_thing,
    find_thing,
    register_certificate,
    update_certificate,
)
from emulator.store.errors import InvalidRequest

MAX_PAGE = 250  # the list calls' pageSize / maxResults, at most
DEFAULT_CERTIFICATE_PAGE = 25
DEFAULT_THING_PAGE = 50


def describe_certificate(call: Call) -> dict[str, Any]:
    backend = call.backend
    return {"certificateDescription": describe_device(backend, find_certificate(backend, call.path["certificateId"]))}


def _summary(backend, record: Any) -> dict[str, Any]:
    ca = backend.ca_certificates.get(record.ca_certificate_id) if record.ca_certificate_id else None
    return {
        "certificateArn": record.arn,
        "certificateId": record.certificate_id,
        "status": record.status,
        "certificateMode": getattr(ca, "certificate_mode", DEFAULT),
        "creationDate": record.creation_date,
    }


def _certificate_page(call: Call, records: Callable[[bool], Iterable[Any]]) -> dict[str, Any]:
    """A page of certificate summaries, by creation date (newest first unless ascendingOrder), pageSize at
    most 250 (AWS's range; 25 when not given), the next page's ``nextMarker``. moto answers every certificate
    at once, which for a fleet is tens of megabytes a call."""
    size = call.query_int("pageSize", DEFAULT_CERTIFICATE_PAGE, low=1, high=MAX_PAGE)
    ascending = call.flag("isAscendingOrder") or False  # ascendingOrder, as the REST API names it
    found, marker = walk_page(lambda: records(ascending), call.query.get("marker"), size, lambda r: r.certificate_id)
    backend = call.backend
    return {"certificates": [_summary(backend, r) for r in found], **({"nextMarker": marker} if marker else {})}


def list_certificates(call: Call) -> dict[str, Any]:
    certificates = call.backend.certificates  # in creation order: moto adds each as it is made

    def records(ascending: bool) -> Iterable[Any]:
        return iter(list(certificates.values())) if ascending else reversed(list(certificates.values()))

    return _certificate_page(call, records)


def list_certificates_by_ca(call: Call) -> dict[str, Any]:
    ca_id = call.path["caCertificateId"]
    certificates = call.backend.certificates

    def records(ascending: bool) -> Iterable[Any]:
        ordered = list(certificates.values())
        return (r for r in (ordered if ascending else reversed(ordered)) if r.ca_certificate_id == ca_id)

    return _certificate_page(call, records)


def list_things(call: Call) -> dict[str, Any]:
    """A page of things (maxResults at most 250, 50 when not given), filtered by one attribute or a thing type;
    moto turns every thing of the account into a dict on every page."""
    size = call.query_int("maxResults", DEFAULT_THING_PAGE, low=1, high=MAX_PAGE)
    query = call.query
    name, value, kind = query.get("attributeName"), query.get("attributeValue"), query.get("thingTypeName")
    things = list(call.backend.things.values())

    def wanted(thing: Any) -> bool:
        if name is not None and thing.attributes.get(name) != value:
            return False
        return kind is None or (thing.thing_type is not None and thing.thing_type.thing_type_name == kind)

    filtered = name is not None or kind is not None
    found, token = walk_page(
        lambda: (thing for thing in things if wanted(thing)) if filtered else things,
        call.query.get("nextToken"),
        size,
        lambda t: t.thing_name,
    )
    return {"things": [thing.to_dict() for thing in found], **({"nextToken": token} if token else {})}


def list_principal_things(call: Call) -> dict[str, Any]:
    """A certificate's things, from the attachments' index (moto scans every attachment of the account)."""
    principal = call.headers.get("x-amzn-principal")
    if not principal:
        raise InvalidRequest("The principal (x-amzn-principal) is required.")
    size = call.query_int("maxResults", MAX_PAGE, low=1, high=MAX_PAGE)
    things, token = page(call.backend.principal_things.things_of(principal), call.query.get("nextToken"), size)
    return {"things": things, **({"nextToken": token} if token else {})}


def list_thing_principals(call: Call) -> dict[str, Any]:
    """A thing's principals, from the attachments' index; a thing that does not exist is ResourceNotFound."""
    backend, name = call.backend, call.path["thingName"]
    find_thing(backend, name)
    size = call.query_int("maxResults", MAX_PAGE, low=1, high=MAX_PAGE)
    principals, token = page(backend.principal_things.principals_of(name), call.query.get("nextToken"), size)
    return {"principals": principals, **({"nextToken": token} if token else {})}


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
    "ListCertificates": list_certificates,
    "ListCertificatesByCA": list_certificates_by_ca,
    "ListThings": list_things,
    "ListPrincipalThings": list_principal_things,
    "ListThingPrincipals": list_thing_principals,
}
