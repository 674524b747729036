"""Registration codes and CA certificates: the calls ``jitr ca register`` makes, done as AWS does them.

moto returns a uuid as the registration code, ignores the verification certificate, gives CAs
``cert/`` ARNs and knows neither ``autoRegistrationStatus`` nor ``certificateMode`` nor
ListCACertificates. Here:

- GetRegistrationCode answers the account's code in its region, 64 hex characters, the same on
  every call until DeleteRegistrationCode;
- RegisterCACertificate refuses a certificate that is not a CA or not valid now
  (CertificateValidationException), a CA registered already (ResourceAlreadyExistsException)
  and an eleventh CA with the same subject (LimitExceededException). In DEFAULT mode the
  verification certificate must carry the registration code as CN
  (RegistrationCodeValidationException) and be signed by the CA's key
  (CertificateValidationException); SNI_ONLY needs none;
- DescribeCACertificate, UpdateCACertificate, ListCACertificates and DeleteCACertificate read
  and change the full description.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from base.certificates import certificate_id
from emulator.api.calls import Call, page
from emulator.api.provisioning_templates import check_registration_config
from emulator.store.ca_certificates import (
    ACTIVE,
    DEFAULT,
    DISABLE,
    ENABLE,
    INACTIVE,
    SNI_ONLY,
    EmulatedCaCertificate,
    ca_x509,
    check_ca,
    check_verification,
    find_ca,
    load_pem,
)
from emulator.store.errors import CertificateState, InvalidRequest, LimitExceeded, ResourceAlreadyExists, choice

MAX_PEM = 65536
MAX_CAS_PER_SUBJECT = 10


def get_registration_code(call: Call) -> dict[str, Any]:
    with call.state.lock:
        if call.state.registration_code is None:
            call.state.registration_code = secrets.token_hex(32)
        return {"registrationCode": call.state.registration_code}


def delete_registration_code(call: Call) -> dict[str, Any]:
    with call.state.lock:
        call.state.registration_code = None
    return {}


def register_ca_certificate(call: Call) -> dict[str, Any]:
    pem = call.text("caCertificate", required=True, max_length=MAX_PEM)
    mode = choice(call.text("certificateMode"), (DEFAULT, SNI_ONLY), "certificateMode") or DEFAULT
    now = dt.datetime.now(dt.UTC)
    ca = load_pem(pem, "caCertificate")
    check_ca(ca, now)
    backend = call.backend
    with call.state.lock:
        ca_id = certificate_id(ca)
        existing = backend.ca_certificates.get(ca_id)
        if existing is not None:
            raise ResourceAlreadyExists(
                f"The CA certificate {ca_id} is already registered.", resource_id=ca_id, resource_arn=existing.arn
            )
        if mode == DEFAULT:
            verification = call.text("verificationCertificate", max_length=MAX_PEM)
            check_verification(ca, verification, call.state.registration_code, now)
        config = check_registration_config(call.state, call.body.get("registrationConfig"))
        same_subject = [other for other in backend.ca_certificates.values() if ca_x509(other).subject == ca.subject]
        if len(same_subject) >= MAX_CAS_PER_SUBJECT:
            raise LimitExceeded(
                f"{MAX_CAS_PER_SUBJECT} CA certificates with the subject {ca.subject.rfc4514_string()} are "
                "registered already; delete one first."
            )
        record = EmulatedCaCertificate(
            ca,
            pem,
            account_id=call.account,
            region_name=call.region,
            status=ACTIVE if call.flag("setAsActive") else INACTIVE,
            auto_registration_status=ENABLE if call.flag("allowAutoRegistration") else DISABLE,
            mode=mode,
            registration_config=config,
        )
        backend.ca_certificates[record.certificate_id] = record
    return {"certificateArn": record.arn, "certificateId": record.certificate_id}


def describe_ca(ca) -> dict[str, Any]:
    """DescribeCACertificate's answer for a stored CA."""
    answer: dict[str, Any] = {"certificateDescription": ca.to_description_dict()}
    if ca.registration_config:
        answer["registrationConfig"] = dict(ca.registration_config)
    return answer


def describe_ca_certificate(call: Call) -> dict[str, Any]:
    return describe_ca(find_ca(call.backend, call.path["caCertificateId"]))


def update_ca_certificate(call: Call) -> dict[str, Any]:
    new_status = choice(call.query.get("newStatus"), (ACTIVE, INACTIVE), "newStatus")
    new_auto = choice(call.query.get("newAutoRegistrationStatus"), (ENABLE, DISABLE), "newAutoRegistrationStatus")
    remove = call.body.get("removeAutoRegistration") is True
    raw_config = call.body.get("registrationConfig")
    if remove and raw_config is not None:
        raise InvalidRequest("Give registrationConfig or removeAutoRegistration, not both.")
    with call.state.lock:
        ca = find_ca(call.backend, call.path["caCertificateId"])
        config = check_registration_config(call.state, raw_config) if raw_config is not None else None
        if new_status is not None:
            ca.status = new_status
        if new_auto is not None:
            ca.auto_registration_status = new_auto
        if remove:
            ca.registration_config = {}  # back to JITR: no template (AWS's exact semantics unconfirmed)
        if config is not None:
            ca.registration_config = config
        if isinstance(ca, EmulatedCaCertificate):
            ca.changed()
    return {}


def list_ca_certificates(call: Call) -> dict[str, Any]:
    size = call.query_int("pageSize", 250, low=1, high=250)
    ascending = bool(call.flag("isAscendingOrder"))
    template = call.query.get("templateName")
    cas = sorted(call.backend.ca_certificates.values(), key=lambda ca: ca.creation_date, reverse=not ascending)
    if template:
        cas = [ca for ca in cas if (ca.registration_config or {}).get("templateName") == template]
    items, marker = page(cas, call.query.get("marker"), size)
    answer: dict[str, Any] = {
        "certificates": [
            {
                "certificateArn": ca.arn,
                "certificateId": ca.certificate_id,
                "status": ca.status,
                "creationDate": ca.creation_date,
            }
            for ca in items
        ]
    }
    if marker:
        answer["nextMarker"] = marker
    return answer


def delete_ca_certificate(call: Call) -> dict[str, Any]:
    with call.state.lock:
        ca = find_ca(call.backend, call.path["caCertificateId"])
        if ca.status == ACTIVE:
            raise CertificateState(
                f"CA certificate {ca.certificate_id} is ACTIVE; set it INACTIVE with UpdateCACertificate before "
                "deleting it."
            )
        del call.backend.ca_certificates[ca.certificate_id]
    return {}


HANDLERS = {
    "GetRegistrationCode": get_registration_code,
    "DeleteRegistrationCode": delete_registration_code,
    "RegisterCACertificate": register_ca_certificate,
    "DescribeCACertificate": describe_ca_certificate,
    "UpdateCACertificate": update_ca_certificate,
    "ListCACertificates": list_ca_certificates,
    "DeleteCACertificate": delete_ca_certificate,
}
