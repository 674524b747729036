"""Device certificates, things and their attachments, one call at a time: as AWS answers, and fast.

moto implements these calls, but finds a certificate or a thing by scanning all of them (so
registering a fleet of 10,000 is quadratic), goes through its generic dispatcher (several ms a
call), registers a certificate under a CA only when the CA's PEM text is byte-identical, and never
checks that the CA signed it. Here every lookup is by key and the answers are AWS's:

- RegisterCertificate verifies that the registered CA named by ``caCertificatePem`` signed the
  certificate (CertificateValidationException otherwise), files it under that CA with a DER-based
  id, and answers ResourceAlreadyExistsException (with ``resourceId`` and ``resourceArn``) for a
  certificate AWS IoT already has; RegisterCertificateWithoutCA does the same without a CA;
- CreateThing succeeds again for the same name and configuration and answers
  ResourceAlreadyExistsException when the type or attributes differ;
- AttachPolicy, AttachThingPrincipal and AddThingToThingGroup are idempotent;
- UpdateCertificate sets one of AWS's statuses.

Registration tasks (:mod:`emulator.api.registration_tasks`) run the same functions for each line
of their input file. Callers of the functions hold the region's lock.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping

from moto.core.exceptions import JsonRESTError
from moto.iot.models import FakeCertificate

from base.certificates import certificate_id
from emulator.store.backends import iot_arn
from emulator.store.ca_certificates import load_pem
from emulator.store.device_certificates import (
    STATUSES,
    find_certificate,
    register_device_certificate,
    store_certificate,
)
from emulator.store.errors import (
    CertificateValidation,
    InvalidRequest,
    IotServiceError,
    ResourceAlreadyExists,
    ResourceNotFound,
    choice,
)

MAX_PEM = 65536
INACTIVE = "INACTIVE"
THING_NAME_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")


class MotoRefusal(IotServiceError):
    """moto refused a call the emulator made on its backend; its code and status are kept."""

    def __init__(self, error: JsonRESTError) -> None:
        super().__init__(error.message)
        self.code = error.error_type
        self.status = error.code


@contextlib.contextmanager
def moto_errors() -> Iterator[None]:
    """Answer moto's own errors (a missing thing type, say) as the emulator's."""
    try:
        yield
    except JsonRESTError as error:
        raise MotoRefusal(error) from None


# -- the operations, on moto's backend --------------------------------------------------------------


def certificate_by_arn(backend, arn: str) -> FakeCertificate:
    """The certificate an ARN names (``…:cert/<certificateId>``), found by key."""
    if ":cert/" not in arn:
        raise InvalidRequest(f"{arn} is not a certificate ARN.")
    found = backend.certificates.get(arn.rsplit("/", 1)[1])
    if found is None or found.arn != arn:
        raise ResourceNotFound(f"Certificate {arn} does not exist.")
    return found


def thing_arn(backend, name: str) -> str:
    return iot_arn(backend.region_name, backend.account_id, f"thing/{name}")


def find_thing(backend, name: str):
    found = backend.things.get(thing_arn(backend, name))
    if found is None:
        raise ResourceNotFound(f"Thing {name} does not exist.")
    return found


def describe_thing(backend, name: str) -> dict:
    """DescribeThing's answer, found by key: moto's own scans every thing of the account for each call."""
    return find_thing(backend, name).to_dict(include_default_client_id=True, include_thing_id=True)


def register_certificate(backend, pem: str, *, ca_pem: str | None, status: str) -> FakeCertificate:
    """RegisterCertificate (``ca_pem`` given) or RegisterCertificateWithoutCA (None)."""
    choice(status, STATUSES, "status")
    cert = load_pem(pem, "certificatePem")
    cert_id = certificate_id(cert)
    existing = backend.certificates.get(cert_id)
    if existing is not None:
        raise ResourceAlreadyExists(
            "The certificate is already provisioned or registered", resource_id=cert_id, resource_arn=existing.arn
        )
    if ca_pem is not None:
        ca_id = certificate_id(load_pem(ca_pem, "caCertificatePem"))
        if ca_id not in backend.ca_certificates:
            raise CertificateValidation(f"The CA certificate {ca_id} is not registered in this account.")
        return register_device_certificate(backend, pem, ca_certificate_id=ca_id, status=status)
    return store_certificate(backend, pem, cert, status=status)


def create_thing(backend, name: str, thing_type: str | None, attributes: Mapping[str, str]):
    """The thing, created; the same name with the same type and attributes is not an error."""
    if not isinstance(name, str) or not THING_NAME_RE.match(name):
        raise InvalidRequest(f"Thing name {name!r} is not valid: use 1-128 letters, digits, ':', '_' or '-'.")
    existing = backend.things.get(thing_arn(backend, name))
    if existing is not None:
        existing_type = existing.thing_type.thing_type_name if existing.thing_type else None
        if existing_type == thing_type and dict(existing.attributes) == dict(attributes):
            return existing
        raise ResourceAlreadyExists(
            f"Thing {name} already exists with a different type or attributes.",
            resource_id=existing.thing_id,
            resource_arn=existing.arn,
        )
    with moto_errors():
        return backend.create_thing(name, thing_type, {"attributes": dict(attributes)})


def attach_policy(backend, policy_name: str, target: str) -> None:
    policy = backend.policies.get(policy_name)
    if policy is None:
        raise ResourceNotFound(f"Policy {policy_name} does not exist.")
    if ":cert/" not in target:  # thing groups, Cognito identities: moto knows how to find them
        with moto_errors():
            backend.attach_policy(policy_name, target)
        return
    principal = certificate_by_arn(backend, target)
    backend.principal_policies.setdefault((target, policy_name), (principal, policy))


def attach_thing_principal(backend, thing_name: str, principal_arn: str) -> None:
    principal = certificate_by_arn(backend, principal_arn)
    thing = find_thing(backend, thing_name)
    backend.principal_things.setdefault((principal_arn, thing_name), (principal, thing))


def add_thing_to_thing_group(backend, group_name: str | None, group_arn: str | None, thing_name: str) -> None:
    groups = [
        group
        for group in backend.thing_groups.values()
        if group.thing_group_name == group_name or (group_arn is not None and group.arn == group_arn)
    ]
    if not groups:
        raise ResourceNotFound(f"Thing group {group_name or group_arn} does not exist.")
    thing = find_thing(backend, thing_name)
    groups[0].things.setdefault(thing.arn, thing)


def update_certificate(backend, cert_id: str, status: str) -> None:
    choice(status, STATUSES, "newStatus")
    find_certificate(backend, cert_id).status = status
