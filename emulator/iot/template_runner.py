"""Running provisioning templates, as AWS IoT does: JITP on a device's first connect, and each line of a
thing registration task, both through the one :class:`TemplateRunner`.

The order is AWS's (AWS-FACTS.md): the certificate is registered PENDING_ACTIVATION, then the
thing, the policy, the policy attachment and the thing attachment are made, and only then is
the certificate set to the template's status. A parameter the certificate cannot fill fails
provisioning and leaves the certificate PENDING_ACTIVATION, the trap users fall into.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from base.certificates import certificate_id, to_pem
from base.errors import JitrError
from emulator.iot.aws_issuer import aws_issuer, load_request
from emulator.store import devices
from emulator.store.device_certificates import find_certificate, store_certificate
from emulator.store.errors import ResourceAlreadyExists, ResourceNotFound

PREFIX = "AWS::IoT::Certificate::"
INACTIVE = "INACTIVE"
_SUBJECT_PARAMETERS = {
    "Country": NameOID.COUNTRY_NAME,
    "Organization": NameOID.ORGANIZATION_NAME,
    "OrganizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "DistinguishedNameQualifier": NameOID.DN_QUALIFIER,
    "StateName": NameOID.STATE_OR_PROVINCE_NAME,
    "CommonName": NameOID.COMMON_NAME,
    "SerialNumber": NameOID.SERIAL_NUMBER,
}


class ProvisioningError(JitrError):
    """A provisioning template could not be applied to a device certificate."""


@dataclass(frozen=True)
class Applied:
    """What a template run made or found: moto's records of them, and the certificate status it set."""

    certificate: Any | None
    thing: Any | None
    policies: tuple[Any, ...]
    status: str | None

    def arns(self) -> dict[str, str]:
        """``certificate``, ``thing`` and ``policy`` ARNs, as a registration task's RESULTS report lists them."""
        arns = {}
        if self.certificate is not None:
            arns["certificate"] = self.certificate.arn
        if self.thing is not None:
            arns["thing"] = self.thing.arn
        if self.policies:
            arns["policy"] = self.policies[0].arn
        return arns


@dataclass(frozen=True)
class Provisioned:
    certificate_id: str
    thing_name: str | None
    policy_names: tuple[str, ...]
    status: str


def certificate_parameters(cert: x509.Certificate, cert_id: str | None = None) -> dict[str, str]:
    """The ``AWS::IoT::Certificate::*`` values JITP takes from a device certificate (``cert_id``: its id, if known)."""
    values = {f"{PREFIX}Id": cert_id or certificate_id(cert)}
    subject = cert.subject
    for name, oid in _SUBJECT_PARAMETERS.items():
        attributes = subject.get_attributes_for_oid(oid)
        if attributes:
            values[PREFIX + name] = str(attributes[0].value)
    return values


@functools.lru_cache(maxsize=64)
def parse_template(body: str) -> Mapping[str, Any]:
    """A templateBody parsed once: every device of a CA is provisioned with the same one (read, never changed)."""
    try:
        template = json.loads(body)
    except ValueError as exc:
        raise ProvisioningError("The CA's templateBody is not valid JSON.") from exc
    if not isinstance(template, dict):
        raise ProvisioningError("The CA's templateBody is not a JSON object.")
    return template


def resolve_parameters(template: Mapping[str, Any], supplied: Mapping[str, str]) -> dict[str, Any]:
    """Every declared parameter's value: supplied, else its Default, else a ProvisioningError."""
    values: dict[str, Any] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        if name in supplied:
            values[name] = supplied[name]
        elif isinstance(spec, dict) and "Default" in spec:
            values[name] = spec["Default"]
        else:
            raise ProvisioningError(
                f"The template declares {name}, which has no Default and which neither the certificate nor the "
                "request gives."
            )
    return values


def evaluate(node: Any, parameters: Mapping[str, Any], mappings: Mapping[str, Any] | None = None) -> Any:
    """Resolve the intrinsic functions provisioning templates allow (Ref, Fn::Join, Fn::Select, ...)."""
    if isinstance(node, list):
        return [evaluate(item, parameters, mappings) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref":
            if arg not in parameters:
                raise ProvisioningError(f"The template refers to {arg}, which it does not declare.")
            return parameters[arg]
        if key == "Fn::Join":
            separator, items = evaluate(arg, parameters, mappings)
            return str(separator).join(str(item) for item in items)
        if key == "Fn::Select":
            index, items = evaluate(arg, parameters, mappings)
            return items[int(index)]
        if key == "Fn::Split":
            separator, text = evaluate(arg, parameters, mappings)
            return str(text).split(str(separator))
        if key == "Fn::FindInMap":
            table, first, second = evaluate(arg, parameters, mappings)
            try:
                return (mappings or {})[table][first][second]
            except KeyError as exc:
                raise ProvisioningError(f"Fn::FindInMap found no {table}/{first}/{second}.") from exc
    return {key: evaluate(value, parameters, mappings) for key, value in node.items()}


@dataclass(frozen=True)
class ThingResource:
    """An evaluated ``AWS::IoT::Thing`` resource of a template: what JITP and registration tasks create."""

    name: str
    type_name: str | None
    attributes: dict[str, str]
    groups: tuple[str, ...]
    override: str | None  # OverrideSettings.AttributePayload: REPLACE, MERGE, FAIL or none

    @classmethod
    def of(cls, resource: Mapping[str, Any]) -> ThingResource:
        props = resource.get("Properties") or {}
        if not props.get("ThingName"):
            raise ProvisioningError("The template's thing has no ThingName.")
        return cls(
            name=props["ThingName"],
            type_name=props.get("ThingTypeName"),
            attributes={key: str(value) for key, value in (props.get("AttributePayload") or {}).items()},
            groups=tuple(props.get("ThingGroups") or ()),
            override=(resource.get("OverrideSettings") or {}).get("AttributePayload"),
        )

    def update(self, existing) -> None:
        """Apply the template's attributes to a thing that exists, as its OverrideSettings say."""
        if self.override == "REPLACE":
            existing.attributes = dict(self.attributes)
        elif self.override == "MERGE":
            existing.attributes.update(self.attributes)
        elif self.override == "FAIL":
            raise ProvisioningError(f"Thing {self.name} exists and the template's OverrideSettings say FAIL.")


def policy_name_for(document: str) -> str:
    """AWS names a policy created from an inline PolicyDocument after the document's hash."""
    return hashlib.sha256(document.encode()).hexdigest()


class JitpProvisioner:
    """JITP on a device's first connect: the certificate registered under its CA (PENDING_ACTIVATION), the
    template's parameters filled from the certificate, then the template run by :class:`TemplateRunner`."""

    def __init__(self, registry) -> None:
        self.registry = registry

    def provision(
        self, template: Mapping[str, Any] | str, cert: x509.Certificate, *, ca_certificate_id: str
    ) -> Provisioned:
        if isinstance(template, str):
            template = parse_template(template)
        registry = self.registry
        device = registry.register_certificate(cert, ca_certificate_id=ca_certificate_id)
        values = resolve_parameters(template, certificate_parameters(cert, device.id))
        applied = TemplateRunner(registry.backend, registry.state.lock).run(template, values)
        thing_name = applied.thing.thing_name if applied.thing is not None else None
        names = tuple(policy.name for policy in applied.policies)
        return Provisioned(device.id, thing_name, names, applied.status or device.status)


class TemplateRunner:
    """The one runner of provisioning templates: JITP on a device's first connect (:class:`JitpProvisioner`)
    and every line of a thing registration task (``emulator.api.registration_tasks``).

    It makes what the template declares through the store's functions, in the order JITP uses
    (AWS-FACTS.md): the certificate (registered from ``CertificatePem``, or found by ``CertificateId``),
    the thing, the policies, the policy and thing attachments, and last the certificate's status. Each
    call first waits for its operation's quota (``pace``; JITP spends none) and holds the region's lock
    only while it runs.
    """

    def __init__(self, backend, lock: threading.RLock, pace: Callable[[str], None] = lambda _operation: None) -> None:
        self.backend = backend
        self.lock = lock
        self.pace = pace  # waits until the named operation's quota allows one more call

    def run(self, template: Mapping[str, Any], values: Mapping[str, Any]) -> Applied:
        """Apply ``template`` with its parameters' ``values`` (see :func:`resolve_parameters`)."""
        resources = evaluate(template.get("Resources") or {}, values, template.get("Mappings"))
        kinds: dict[str, list[Mapping[str, Any]]] = {}
        for resource in resources.values():
            kinds.setdefault(resource.get("Type"), []).append(resource)
        if len(kinds.get("AWS::IoT::Certificate", [])) > 1 or len(kinds.get("AWS::IoT::Thing", [])) > 1:
            raise ProvisioningError("The template may declare one certificate and one thing.")
        certificate, status = None, None
        for resource in kinds.get("AWS::IoT::Certificate", []):
            certificate = self._certificate(resource.get("Properties") or {})
            status = (resource.get("Properties") or {}).get("Status")
        thing = None
        for resource in kinds.get("AWS::IoT::Thing", []):
            thing = self._thing(resource)
        policies = [self._policy(resource.get("Properties") or {}) for resource in kinds.get("AWS::IoT::Policy", [])]
        if certificate is not None:
            for policy in policies:
                self._do("AttachPolicy", devices.attach_policy, self.backend, policy.name, certificate.arn)
            if thing is not None:
                self._do(
                    "AttachThingPrincipal",
                    devices.attach_thing_principal,
                    self.backend,
                    thing.thing_name,
                    certificate.arn,
                )
            if status and status != certificate.status:
                self._do(
                    "UpdateCertificate", devices.update_certificate, self.backend, certificate.certificate_id, status
                )
        return Applied(certificate, thing, tuple(policies), status)

    def _do(self, operation: str, function: Callable, *args: Any):
        self.pace(operation)
        with self.lock:
            return function(*args)

    def _certificate(self, props: Mapping[str, Any]):
        if props.get("CertificateId"):
            with self.lock:
                return find_certificate(self.backend, props["CertificateId"])
        if props.get("CertificateSigningRequest"):
            return self._certificate_from_csr(props["CertificateSigningRequest"])
        pem = props.get("CertificatePem")
        if not pem:
            raise ProvisioningError(
                "The template's certificate needs CertificateId, CertificatePem or CertificateSigningRequest."
            )
        ca_pem = props.get("CACertificatePem")
        operation = "RegisterCertificate" if ca_pem else "RegisterCertificateWithoutCA"
        self.pace(operation)
        with self.lock:
            try:
                return devices.register_certificate(self.backend, pem, ca_pem=ca_pem, status=INACTIVE)
            except ResourceAlreadyExists as exists:  # a task run again: the device is already there
                return find_certificate(self.backend, exists.fields["resourceId"])

    def _certificate_from_csr(self, csr_pem: Any):
        """A certificate AWS IoT issues for the CSR (RegisterThing, fleet provisioning), INACTIVE until the
        template's Status; the same CSR twice makes two certificates, as on AWS."""
        if not isinstance(csr_pem, str):
            raise ProvisioningError("The template's CertificateSigningRequest must be a PEM string.")
        csr = load_request(csr_pem, "CertificateSigningRequest")
        cert = aws_issuer().sign(csr, now=dt.datetime.now(dt.UTC))
        with self.lock:
            return store_certificate(self.backend, to_pem(cert).decode(), cert, status=INACTIVE)

    def _thing(self, resource: Mapping[str, Any]):
        spec = ThingResource.of(resource)
        backend = self.backend
        with self.lock:
            existing = backend.things.get(devices.thing_arn(backend, spec.name))
        if existing is None:
            thing = self._do(
                "CreateThing", devices.create_thing, backend, spec.name, spec.type_name, dict(spec.attributes)
            )
        else:
            thing = existing
            with self.lock:
                spec.update(existing)
        for group in spec.groups:
            self._do("AddThingToThingGroup", devices.add_thing_to_thing_group, backend, group, None, spec.name)
        return thing

    def _policy(self, props: Mapping[str, Any]):
        backend = self.backend
        if "PolicyName" in props:
            with self.lock:
                policy = backend.policies.get(props["PolicyName"])
            if policy is None:
                raise ResourceNotFound(f"Policy {props['PolicyName']} does not exist.")
            return policy
        document = props.get("PolicyDocument")
        if not isinstance(document, str):
            document = json.dumps(document)
        name = policy_name_for(document)
        with self.lock:
            policy = backend.policies.get(name)
        if policy is None:
            self.pace("CreatePolicy")
            with self.lock, devices.moto_errors():
                policy = backend.policies.get(name) or backend.create_policy(name, document)
        return policy
