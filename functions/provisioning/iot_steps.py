"""The AWS IoT side of the provisioning API: RegisterThing with the stack's template, re-issue, and
deprovisioning, each step with its undo so that a failure leaves nothing half-made.

The template (:func:`template_body`) names the thing after the serial and marks it with the stack
(``provisioningStack``) so that a thing of the same name that another fleet owns is refused rather
than taken over; it attaches the stack's device policy (thing-name policy variables) and makes the
certificate ACTIVE. RegisterThing takes a template body, not a template's name, so the body lives
here, beside the code that sends it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from retrying import error_code

OWNER_ATTRIBUTE = "provisioningStack"
SETTLE_ATTEMPTS = 5  # a delete that conflicts with a detachment AWS IoT has not applied yet: 0.2 + 0.4 + ... s
SETTLE_BASE = 0.2
ACTIVE, INACTIVE = "ACTIVE", "INACTIVE"
PEM_BODY_RE = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----")


class ForeignThing(Exception):
    """A thing named after the serial exists and is not this stack's: registering would take it over."""


def template_body(stack: str, policy_name: str, *, server_keys: bool = False) -> str:
    """The provisioning template RegisterThing runs: parameters SerialNumber and CSR (or CertificateId)."""
    certificate = (
        {"CertificateId": {"Ref": "CertificateId"}} if server_keys else {"CertificateSigningRequest": {"Ref": "CSR"}}
    )
    template = {
        "Parameters": {
            "SerialNumber": {"Type": "String"},
            ("CertificateId" if server_keys else "CSR"): {"Type": "String"},
        },
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {"ThingName": {"Ref": "SerialNumber"}, "AttributePayload": {OWNER_ATTRIBUTE: stack}},
                "OverrideSettings": {"AttributePayload": "DO_NOTHING"},
            },
            "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {**certificate, "Status": ACTIVE}},
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": policy_name}},
        },
    }
    return json.dumps(template, separators=(",", ":"))


def certificate_id_of(pem: str) -> str:
    """AWS's certificateId: the SHA-256 of the certificate's DER."""
    match = PEM_BODY_RE.search(pem)
    if match is None:
        raise ValueError("not a PEM certificate")
    return hashlib.sha256(base64.b64decode("".join(match.group(1).split()))).hexdigest()


@dataclass
class Undo:
    """What to undo if a later step fails, newest first; each undo is tried, failures are reported."""

    steps: list[tuple[str, Callable[[], Any]]] = field(default_factory=list)

    def push(self, name: str, step: Callable[[], Any]) -> None:
        self.steps.append((name, step))

    def run(self, report: Callable[..., None]) -> None:
        for name, step in reversed(self.steps):
            try:
                step()
            except Exception as exc:  # keep undoing the rest; the caller logs what could not be undone
                report(step=name, error=error_code(exc), reason=str(exc))
        self.steps.clear()


@dataclass(frozen=True)
class Registered:
    thing_name: str
    certificate_id: str
    certificate_arn: str
    certificate_pem: str
    private_key: str | None = None  # only when the server made the key (the key is never kept)


@dataclass(frozen=True)
class IotSteps:
    iot: Any
    call: Callable[..., Any]
    stack: str
    policy_name: str
    sleep: Callable[[float], None] = time.sleep

    def _gone_is_fine(self, operation: Callable[..., Any], *, settle: str | None = None, **kwargs: Any) -> None:
        """The call; a resource already gone is fine. ``settle``: an error code retried a few times with backoff,
        since AWS IoT applies detachments eventually and a delete right after one may still conflict."""
        for attempt in range(SETTLE_ATTEMPTS):
            try:
                self.call(operation, **kwargs)
                return
            except ClientError as exc:
                code = error_code(exc)
                if code == "ResourceNotFoundException":
                    return
                if code != settle or attempt == SETTLE_ATTEMPTS - 1:
                    raise
            self.sleep(SETTLE_BASE * 2**attempt)

    def thing_owner(self, thing: str) -> tuple[bool, list[str]]:
        """Whether the thing exists, and the certificate ARNs attached to it; :class:`ForeignThing` when it is
        not this stack's."""
        try:
            described = self.call(self.iot.describe_thing, thingName=thing)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return False, []
            raise
        owner = (described.get("attributes") or {}).get(OWNER_ATTRIBUTE)
        if owner != self.stack:
            raise ForeignThing(f"A thing named {thing} exists and is not this fleet's (provisioningStack {owner}).")
        principals = self.call(self.iot.list_thing_principals, thingName=thing).get("principals", [])
        return True, [p for p in principals if ":cert/" in p]

    def register(self, serial: str, csr: str | None, undo: Undo) -> Registered:
        """RegisterThing: the thing (made if missing), a certificate for the CSR (or a key pair the server
        makes, if the stack allows it), the device policy, ACTIVE. Pushes the undo of what it made."""
        private_key = None
        if csr is not None:
            body, parameters = template_body(self.stack, self.policy_name), {"SerialNumber": serial, "CSR": csr}
        else:
            made = self.call(self.iot.create_keys_and_certificate, setAsActive=False)
            private_key = made["keyPair"]["PrivateKey"]
            undo.push(
                "delete the server-made certificate", lambda: self.remove_certificate(made["certificateArn"], serial)
            )
            body = template_body(self.stack, self.policy_name, server_keys=True)
            parameters = {"SerialNumber": serial, "CertificateId": made["certificateId"]}
        answer = self.call(self.iot.register_thing, templateBody=body, parameters=parameters)
        pem = answer["certificatePem"]
        arn = answer.get("resourceArns", {}).get("certificate") or ""
        cert_id = certificate_id_of(pem)
        if csr is not None:
            undo.push("delete the new certificate", lambda: self.remove_certificate(arn, serial))
        return Registered(serial, cert_id, arn, pem, private_key)

    def remove_certificate(self, arn: str, thing: str) -> None:
        """INACTIVE, detached from the policy and the thing, deleted; what is already gone is skipped."""
        cert_id = arn.rsplit("/", 1)[-1]
        self._gone_is_fine(self.iot.update_certificate, certificateId=cert_id, newStatus=INACTIVE)
        self._gone_is_fine(self.iot.detach_policy, policyName=self.policy_name, target=arn)
        self._gone_is_fine(self.iot.detach_thing_principal, thingName=thing, principal=arn)
        self._gone_is_fine(
            self.iot.delete_certificate, settle="DeleteConflictException", certificateId=cert_id, forceDelete=True
        )

    def retire(self, arn: str, thing: str, undo: Undo) -> None:
        """The old certificate of a re-issue, once the new one is ACTIVE and attached: INACTIVE, detached,
        deleted. Until it is deleted, a failure puts it back as it was."""
        cert_id = arn.rsplit("/", 1)[-1]

        def restore() -> None:
            self.call(self.iot.attach_policy, policyName=self.policy_name, target=arn)
            self.call(self.iot.attach_thing_principal, thingName=thing, principal=arn)
            self.call(self.iot.update_certificate, certificateId=cert_id, newStatus=ACTIVE)

        undo.push("restore the old certificate", restore)
        self.remove_certificate(arn, thing)
        undo.steps.pop()  # deleted: nothing to restore any more

    def delete_thing(self, thing: str) -> None:
        self._gone_is_fine(self.iot.delete_thing, settle="InvalidRequestException", thingName=thing)

    def clear_leftovers(self, thing: str, principals: list[str]) -> None:
        """Certificates a request that died left on a thing of a device that is not registered."""
        for arn in principals:
            self.remove_certificate(arn, thing)
