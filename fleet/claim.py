"""Fleet provisioning by claim and rotation, the account's side (``jitr fleet claim [--rotation]``).

By claim: a FLEET_PROVISIONING template, a claim policy, and a claim certificate with its key, set up in
one step (:func:`set_up_claim`). For rotation (:func:`set_up_rotation`): a rotation template that keeps the
thing and gives it the new certificate, with the stack's rotation hook, and a rotation policy attached to
the stack's device certificates (docs/lifecycle.md).

Devices that ship with the claim certificate connect with it, get a certificate of their own over MQTT
(``jitr device provision``) and are provisioned by the template: the thing named after the
``SerialNumber`` parameter and marked with the stack (``provisioningStack``, which ``jitr fleet reset``
looks for), the certificate ACTIVE with the stack's device policy. A thing of that name that exists
already is not taken over: the template's ``OverrideSettings`` say FAIL. That guard is the template's
only one: a pre-provisioning hook (``--hook``) is where a fleet checks a serial against its allow-list,
and every fleet that ships a claim certificate should have one (a claim certificate is shared and will
leak). The claim policy lets a claim certificate connect and use the provisioning topics of this
template, nothing else.

A re-run reuses what exists: the template (its hook updated if another is given), the policy, and the
claim certificate whose files are in the output folder and which AWS IoT still has ACTIVE. When a step
fails, what this run created is removed again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from base.errors import AlreadyExistsError, InvalidInputError, JitrError, NotFoundError
from base.files import FileSpec, read_bytes, write_files
from cloud.iot_account import IotAccount
from cloud.stacks import StackInfo

log = logging.getLogger(__name__)

OWNER_ATTRIBUTE = "provisioningStack"  # as the provisioning API's things: jitr fleet reset finds both
HOOK_PAYLOAD_VERSION = "2020-04-01"
CERTIFICATE_FILE, KEY_FILE, INFO_FILE = "claim.cert.pem", "claim.private.key", "claim.json"


def _template(stack: StackInfo, name_parameter: str, thing: dict[str, Any], policies: list[str]) -> str:
    """A fleet provisioning template: the thing named by ``name_parameter``, the requesting certificate
    ACTIVE, ``policies`` (the stack's device policy first) attached, and the stack's topic root for devices."""
    if not stack.device_policy:
        raise NotFoundError(f"The stack {stack.name} has no DevicePolicyName output; deploy it with deploy.sh.")
    resources: dict[str, Any] = {
        "thing": {"Type": "AWS::IoT::Thing", **thing},
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
        },
    }
    for number, policy in enumerate([stack.device_policy, *policies]):
        resources["policy" if number == 0 else f"policy{number + 1}"] = {
            "Type": "AWS::IoT::Policy",
            "Properties": {"PolicyName": policy},
        }
    template = {
        "Parameters": {name_parameter: {"Type": "String"}, "AWS::IoT::Certificate::Id": {"Type": "String"}},
        "Resources": resources,
        "DeviceConfiguration": {"topicRoot": stack.outputs.get("DeviceTopicRoot") or f"devices/{stack.name}"},
    }
    return json.dumps(template, separators=(",", ":"))


def template_body(stack: StackInfo) -> str:
    """The claim template: thing named SerialNumber (never an existing one), certificate ACTIVE, device policy."""
    thing = {
        "Properties": {"ThingName": {"Ref": "SerialNumber"}, "AttributePayload": {OWNER_ATTRIBUTE: stack.name}},
        "OverrideSettings": {"AttributePayload": "FAIL"},
    }
    return _template(stack, "SerialNumber", thing, [])


def rotation_template_body(stack: StackInfo, rotation_policy: str) -> str:
    """The rotation template: the thing kept as it is (ThingName, which the stack's rotation hook checks is
    the requesting certificate's own), the new certificate ACTIVE with the device and rotation policies."""
    thing = {"Properties": {"ThingName": {"Ref": "ThingName"}}, "OverrideSettings": {"AttributePayload": "DO_NOTHING"}}
    return _template(stack, "ThingName", thing, [rotation_policy])


def rotation_policy(arn_prefix: str, template: str) -> str:
    """What a device certificate needs beyond the device policy to rotate: a certificate from a CSR, and this
    template's RegisterThing (no iot:Connect: the device policy gives that)."""
    topics = ["$aws/certificates/create-from-csr/*", f"$aws/provisioning-templates/{template}/provision/*"]
    return _policy(_topic_statements(arn_prefix, topics))


def claim_policy(arn_prefix: str, template: str) -> str:
    """What a claim certificate may do: connect with a client id that starts with ``TEMPLATE-`` (what ``jitr
    device provision`` uses), and this template's provisioning topics (``arn_prefix`` is
    ``arn:aws:iot:REGION:ACCOUNT``). Never every client id: ``jitr audit`` would call that overly permissive."""
    topics = [
        "$aws/certificates/create/*",
        "$aws/certificates/create-from-csr/*",
        f"$aws/provisioning-templates/{template}/provision/*",
    ]
    connect = {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{arn_prefix}:client/{template}-*"}
    return _policy([connect, *_topic_statements(arn_prefix, topics)])


def _topic_statements(arn_prefix: str, topics: list[str]) -> list[dict[str, Any]]:
    """Publish and Receive on ``topics``, Subscribe on the same as topic filters."""
    return [
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": [f"{arn_prefix}:topic/{topic}" for topic in topics],
        },
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": [f"{arn_prefix}:topicfilter/{topic}" for topic in topics],
        },
    ]


def _policy(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=1)


@dataclass
class ClaimSetup:
    stack: str
    template: str
    template_arn: str
    policy: str
    certificate_id: str
    certificate: Path
    key: Path
    hook: str | None
    created: list[str] = field(default_factory=list)  # what this run made: template, policy, certificate

    def as_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "templateName": self.template,
            "templateArn": self.template_arn,
            "claimPolicy": self.policy,
            "certificateId": self.certificate_id,
            "certificate": str(self.certificate),
            "key": str(self.key),
            "hook": self.hook,
            "created": self.created,
        }


@dataclass
class _Undo:
    steps: list[tuple[str, Callable[[], Any]]] = field(default_factory=list)

    def push(self, what: str, step: Callable[[], Any]) -> None:
        self.steps.append((what, step))

    def run(self) -> list[str]:
        """Undo newest first; what could not be undone."""
        left = []
        for what, step in reversed(self.steps):
            try:
                step()
            except JitrError as exc:
                log.warning("could not undo %s: %s", what, exc)
                left.append(what)
        return left


def set_up_claim(
    iot: IotAccount, stack: StackInfo, template: str, out: Path, *, hook_arn: str | None = None
) -> ClaimSetup:
    """Make (or find) the template, the claim policy and the claim certificate; write the certificate and
    key (0600) and ``claim.json`` to ``out``."""
    role = stack.outputs.get("ProvisioningRoleArn")
    if not role:
        raise NotFoundError(f"The stack {stack.name} has no ProvisioningRoleArn output; redeploy it with deploy.sh.")
    body = template_body(stack)
    hook = {"targetArn": hook_arn, "payloadVersion": HOOK_PAYLOAD_VERSION} if hook_arn else None
    undo = _Undo()
    created: list[str] = []
    try:
        template_arn = _ensure_template(iot, template, body, role, hook, undo, created)
        policy = f"{template}-claim"
        if iot.ensure_policy(policy, claim_policy(template_arn.split(":provisioningtemplate/")[0], template)):
            undo.push(f"policy {policy}", lambda: iot.delete_policy(policy))
            created.append("policy")
        cert_id, cert_path, key_path = _claim_certificate(iot, out, template, policy, undo, created)
    except BaseException:
        left = undo.run()
        if left:
            log.warning("left behind after the failure: %s", ", ".join(left))
        raise
    return ClaimSetup(
        stack=stack.name,
        template=template,
        template_arn=template_arn,
        policy=policy,
        certificate_id=cert_id,
        certificate=cert_path,
        key=key_path,
        hook=hook_arn,
        created=created,
    )


@dataclass
class RotationSetup:
    stack: str
    template: str
    template_arn: str
    policy: str
    hook: str
    attached: int  # device certificates the rotation policy was attached to (or already had it)
    created: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "templateName": self.template,
            "templateArn": self.template_arn,
            "rotationPolicy": self.policy,
            "hook": self.hook,
            "certificates": self.attached,
            "created": self.created,
        }


def set_up_rotation(
    iot: IotAccount,
    stack: StackInfo,
    template: str,
    *,
    hook_arn: str,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> RotationSetup:
    """Make (or find) the rotation policy and template (its hook the stack's), and attach the policy to every
    certificate that has the stack's device policy. A re-run attaches it to devices activated since."""
    role = stack.outputs.get("ProvisioningRoleArn")
    if not role or not stack.device_policy:
        raise NotFoundError(f"The stack {stack.name} lacks the ProvisioningRoleArn or DevicePolicyName output.")
    policy = f"{template}-rotation"
    body = rotation_template_body(stack, policy)
    hook = {"targetArn": hook_arn, "payloadVersion": HOOK_PAYLOAD_VERSION}
    arn_prefix = hook_arn.split(":")  # arn:aws:lambda:REGION:ACCOUNT:function:NAME
    prefix = f"arn:aws:iot:{arn_prefix[3]}:{arn_prefix[4]}"
    undo = _Undo()
    created: list[str] = []
    try:
        if iot.ensure_policy(policy, rotation_policy(prefix, template)):
            undo.push(f"policy {policy}", lambda: iot.delete_policy(policy))
            created.append("policy")
        template_arn = _ensure_template(iot, template, body, role, hook, undo, created)
    except BaseException:
        undo.run()
        raise
    targets = iot.list_targets_for_policy(stack.device_policy)
    for number, target in enumerate(targets, 1):
        iot.attach_policy(policy, target)  # attaching twice is no error
        progress(number, len(targets))
    return RotationSetup(stack.name, template, template_arn, policy, hook_arn, len(targets), created)


def _ensure_template(
    iot: IotAccount, template: str, body: str, role: str, hook: dict | None, undo: _Undo, created: list[str]
) -> str:
    """The template's ARN: created (its undo pushed), or the one that exists with this body reused."""
    existing = iot.describe_provisioning_template(template)
    if existing is not None:
        return _reuse_template(iot, existing, template, body, hook)
    arn = iot.create_provisioning_template(template, body, role_arn=role, hook=hook)
    undo.push(f"template {template}", lambda: iot.delete_provisioning_template(template))
    created.append("template")
    return arn


def _reuse_template(iot: IotAccount, existing: dict, name: str, body: str, hook: dict | None) -> str:
    if existing.get("type") != "FLEET_PROVISIONING":
        raise AlreadyExistsError(f"A provisioning template {name} exists and is not a fleet provisioning one.")
    if json.loads(existing.get("templateBody") or "{}") != json.loads(body):
        raise AlreadyExistsError(
            f"A provisioning template {name} exists with another body; pick another --template, or delete it "
            f"(aws iot delete-provisioning-template --template-name {name})."
        )
    changes: dict[str, Any] = {}
    if not existing.get("enabled"):
        changes["enabled"] = True
    if hook and (existing.get("preProvisioningHook") or {}).get("targetArn") != hook["targetArn"]:
        changes["preProvisioningHook"] = hook
    if changes:
        iot.update_provisioning_template(name, **changes)
    return existing["templateArn"]


def _claim_certificate(
    iot: IotAccount, out: Path, template: str, policy: str, undo: _Undo, created: list[str]
) -> tuple[str, Path, Path]:
    cert_path, key_path, info_path = out / CERTIFICATE_FILE, out / KEY_FILE, out / INFO_FILE
    if info_path.exists():
        info = _read_info(info_path)
        if info.get("templateName") != template:
            raise AlreadyExistsError(
                f"{out} holds the claim certificate of template {info.get('templateName')}; use another --out."
            )
        cert_id = str(info.get("certificateId") or "")
        status = iot.certificate_status(cert_id) if cert_id else None
        if status != "ACTIVE" or not cert_path.exists() or not key_path.exists():
            raise InvalidInputError(
                f"The claim certificate in {out} is {status or 'unknown to AWS IoT'} or its files are missing; "
                "move the folder away to make a new one."
            )
        iot.attach_policy(policy, str(info["certificateArn"]))
        return cert_id, cert_path, key_path
    if cert_path.exists() or key_path.exists():
        raise AlreadyExistsError(f"{out} holds claim files without {INFO_FILE}; move them away first.")
    made = iot.create_keys_and_certificate()
    cert_id, arn = made["certificateId"], made["certificateArn"]

    def retire() -> None:
        iot.detach_policy(policy, arn)
        iot.update_certificate(cert_id, "INACTIVE")
        iot.delete_certificate(cert_id)

    undo.push(f"claim certificate {cert_id}", retire)
    iot.attach_policy(policy, arn)
    info = {"templateName": template, "certificateId": cert_id, "certificateArn": arn, "policy": policy}
    write_files(
        out,
        {
            CERTIFICATE_FILE: FileSpec(made["certificatePem"].encode()),
            KEY_FILE: FileSpec(made["keyPair"]["PrivateKey"].encode(), private=True),
            INFO_FILE: FileSpec((json.dumps(info, indent=1) + "\n").encode()),
        },
    )
    created.append("certificate")
    return cert_id, cert_path, key_path


def _read_info(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(read_bytes(path, "claim description"))
    except ValueError:
        raise InvalidInputError(f"{path} is not JSON; move the folder away to make a new claim.") from None
    if not isinstance(info, dict):
        raise InvalidInputError(f"{path} is not a claim description; move the folder away to make a new claim.")
    return info


def claim_templates(iot: IotAccount, stack: StackInfo) -> list[str]:
    """The fleet provisioning templates ``jitr fleet claim`` made for the stack: those whose body attaches
    the stack's device policy."""
    if not stack.device_policy:
        return []
    found = []
    for summary in iot.list_provisioning_templates():
        if summary.get("type") != "FLEET_PROVISIONING":
            continue
        described = iot.describe_provisioning_template(summary["templateName"]) or {}
        try:
            body = json.loads(described.get("templateBody") or "{}")
        except ValueError:
            continue
        resources = (body.get("Resources") or {}) if isinstance(body, dict) else {}
        policies = [
            (resource.get("Properties") or {}).get("PolicyName")
            for resource in resources.values()
            if isinstance(resource, dict) and resource.get("Type") == "AWS::IoT::Policy"
        ]
        if stack.device_policy in policies:
            found.append(summary["templateName"])
    return sorted(found)


def remove_claims(iot: IotAccount, templates: list[str]) -> dict[str, list[str]]:
    """Delete what ``jitr fleet claim`` made for these templates: each template; its claim policy with the
    claim certificates that hold it; its rotation policy, with the certificates that rotations retired
    (they hold it, attached to no thing and no longer ACTIVE). A certificate still on a thing, or still
    ACTIVE, is only detached. Running it again deletes nothing more."""
    removed: dict[str, list[str]] = {"templates": [], "policies": [], "certificates": []}
    for template in templates:
        if iot.delete_provisioning_template(template):
            removed["templates"].append(template)
        for policy, suffix in ((f"{template}-claim", "claim"), (f"{template}-rotation", "rotation")):
            for target in iot.list_targets_for_policy(policy):
                iot.detach_policy(policy, target)
                if ":cert/" not in target or iot.list_principal_things(target):
                    continue
                certificate_id = target.rsplit("/", 1)[1]
                if suffix == "rotation" and iot.certificate_status(certificate_id) == "ACTIVE":
                    continue  # a device certificate of no thing, but in use: not ours to delete
                iot.update_certificate(certificate_id, "INACTIVE")
                if iot.delete_certificate(certificate_id):
                    removed["certificates"].append(certificate_id)
            if iot.delete_policy(policy):
                removed["policies"].append(policy)
    return removed
