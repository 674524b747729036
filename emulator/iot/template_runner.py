"""Running a JITP provisioning template on a device's first connect, as AWS IoT does.

The order is AWS's (AWS-FACTS.md): the certificate is registered PENDING_ACTIVATION, then the
thing, the policy, the policy attachment and the thing attachment are made, and only then is
the certificate set to the template's status. A parameter the certificate cannot fill fails
provisioning and leaves the certificate PENDING_ACTIVATION, the trap users fall into.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from base.certificates import certificate_id
from base.errors import JitrError
from emulator.store import devices

PREFIX = "AWS::IoT::Certificate::"
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
            raise ProvisioningError(f"The template declares {name}, which the certificate does not carry.")
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


class TemplateRunner:
    """Applies a provisioning template through moto's IoT backend (the registry's ``backend``)."""

    def __init__(self, registry) -> None:
        self.registry = registry

    def provision(
        self, template: Mapping[str, Any] | str, cert: x509.Certificate, *, ca_certificate_id: str
    ) -> Provisioned:
        if isinstance(template, str):
            template = parse_template(template)
        registry = self.registry
        device = registry.register_certificate(cert, ca_certificate_id=ca_certificate_id)
        parameters = resolve_parameters(template, certificate_parameters(cert, device.id))
        resources = evaluate(template.get("Resources") or {}, parameters, template.get("Mappings"))
        thing, policies, status = None, [], None
        with registry.state.lock:
            backend = registry.backend
            for resource in resources.values():
                if resource.get("Type") == "AWS::IoT::Thing":
                    thing = self._thing(backend, resource)
            for resource in resources.values():
                if resource.get("Type") == "AWS::IoT::Policy":
                    policies.append(self._policy(backend, resource))
            for name in policies:  # the API's attachments, found by key (moto's scan every certificate and thing)
                devices.attach_policy(backend, name, device.arn)
            if thing is not None:
                devices.attach_thing_principal(backend, thing.thing_name, device.arn)
            for resource in resources.values():
                if resource.get("Type") == "AWS::IoT::Certificate":
                    status = (resource.get("Properties") or {}).get("Status")
            if status:
                registry.set_certificate_status(device.id, status)
        thing_name = thing.thing_name if thing is not None else None
        return Provisioned(device.id, thing_name, tuple(policies), status or device.status)

    @staticmethod
    def _thing(backend, resource: Mapping[str, Any]):
        spec = ThingResource.of(resource)
        existing = backend.things.get(f"arn:aws:iot:{backend.region_name}:{backend.account_id}:thing/{spec.name}")
        if existing is None:
            existing = backend.create_thing(spec.name, spec.type_name, {"attributes": dict(spec.attributes)})
        else:
            spec.update(existing)
        for group in spec.groups:
            if any(g.thing_group_name == group for g in backend.thing_groups.values()):
                backend.add_thing_to_thing_group(group, None, spec.name, None)
        return existing

    @staticmethod
    def _policy(backend, resource: Mapping[str, Any]) -> str:
        props = resource.get("Properties") or {}
        if "PolicyName" in props:
            if props["PolicyName"] not in backend.policies:
                backend.get_policy(props["PolicyName"])  # raises moto's ResourceNotFoundException
            return props["PolicyName"]
        document = props.get("PolicyDocument")
        if not isinstance(document, str):
            document = json.dumps(document)
        name = policy_name_for(document)
        if name not in backend.policies:
            backend.create_policy(name, document)
        return name
