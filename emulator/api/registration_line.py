"""One line of a thing registration task's input file, run through the task's template.

The line holds one device's parameter values; the template registers its certificate (from
``CertificatePem``, or an existing ``CertificateId``), creates the thing and the policy, attaches
both and sets the certificate's status, in the order JITP uses (AWS-FACTS.md), each call spending
the account's quota for its operation first. :mod:`emulator.api.registration_tasks` runs the lines.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from emulator.iot.template_runner import ProvisioningError, ThingResource, evaluate, policy_name_for, resolve_parameters
from emulator.store import devices as registry
from emulator.store.device_certificates import find_certificate
from emulator.store.errors import ResourceAlreadyExists, ResourceNotFound

INACTIVE = "INACTIVE"


class LineRunner:
    """Runs a registration template for one device's parameter values on moto's backend."""

    def __init__(
        self, template: Mapping[str, Any], backend, lock: threading.RLock, pace: Callable[[str], None]
    ) -> None:
        self.template = template
        self.backend = backend
        self.lock = lock
        self.pace = pace  # waits until the named operation's quota allows one more call

    def run(self, parameters: Mapping[str, Any]) -> dict[str, str]:
        """Register one device; the ARNs of what it made (``certificate``, ``thing``, ``policy``)."""
        declared = self.template.get("Parameters") or {}
        for name, spec in declared.items():
            if not isinstance(parameters.get(name), str) and not (isinstance(spec, dict) and "Default" in spec):
                raise ProvisioningError(f"The line gives no string value for {name}, which the template declares.")
        values = resolve_parameters(self.template, {k: v for k, v in parameters.items() if isinstance(v, str)})
        resources = evaluate(self.template.get("Resources") or {}, values, self.template.get("Mappings"))
        kinds: dict[str, list[Mapping[str, Any]]] = {}
        for resource in resources.values():
            kinds.setdefault(resource.get("Type"), []).append(resource)
        if len(kinds.get("AWS::IoT::Certificate", [])) > 1 or len(kinds.get("AWS::IoT::Thing", [])) > 1:
            raise ProvisioningError("The template may declare one certificate and one thing.")
        arns: dict[str, str] = {}
        certificate, status = None, None
        for resource in kinds.get("AWS::IoT::Certificate", []):
            certificate = self._certificate(resource.get("Properties") or {})
            status = (resource.get("Properties") or {}).get("Status")
            arns["certificate"] = certificate.arn
        thing = None
        for resource in kinds.get("AWS::IoT::Thing", []):
            thing = self._thing(resource)
            arns["thing"] = thing.arn
        policies = [self._policy(resource.get("Properties") or {}) for resource in kinds.get("AWS::IoT::Policy", [])]
        if policies:
            arns["policy"] = policies[0].arn
        if certificate is not None:
            for policy in policies:
                self._do("AttachPolicy", registry.attach_policy, self.backend, policy.name, certificate.arn)
            if thing is not None:
                self._do(
                    "AttachThingPrincipal",
                    registry.attach_thing_principal,
                    self.backend,
                    thing.thing_name,
                    certificate.arn,
                )
            if status and status != certificate.status:
                self._do(
                    "UpdateCertificate", registry.update_certificate, self.backend, certificate.certificate_id, status
                )
        return arns

    def _do(self, operation: str, function: Callable, *args: Any):
        self.pace(operation)
        with self.lock:
            return function(*args)

    def _certificate(self, props: Mapping[str, Any]):
        if props.get("CertificateId"):
            with self.lock:
                return find_certificate(self.backend, props["CertificateId"])
        pem = props.get("CertificatePem")
        if not pem:
            raise ProvisioningError(
                "The template's certificate needs CertificatePem or CertificateId (the emulator does not sign CSRs)."
            )
        ca_pem = props.get("CACertificatePem")
        operation = "RegisterCertificate" if ca_pem else "RegisterCertificateWithoutCA"
        self.pace(operation)
        with self.lock:
            try:
                return registry.register_certificate(self.backend, pem, ca_pem=ca_pem, status=INACTIVE)
            except ResourceAlreadyExists as exists:  # a task run again: the device is already there
                return find_certificate(self.backend, exists.fields["resourceId"])

    def _thing(self, resource: Mapping[str, Any]):
        spec = ThingResource.of(resource)
        backend = self.backend
        with self.lock:
            existing = backend.things.get(registry.thing_arn(backend, spec.name))
        if existing is None:
            thing = self._do(
                "CreateThing", registry.create_thing, backend, spec.name, spec.type_name, dict(spec.attributes)
            )
        else:
            thing = existing
            with self.lock:
                spec.update(existing)
        for group in spec.groups:
            self._do("AddThingToThingGroup", registry.add_thing_to_thing_group, backend, group, None, spec.name)
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
            with self.lock, registry.moto_errors():
                policy = backend.policies.get(name) or backend.create_policy(name, document)
        return policy
