"""A stack's fleet, and taking it down: what ``jitr fleet reset`` and ``delete.sh`` remove.

The fleet of a stack is what the kit made for it in AWS IoT: the device certificates registered
under the stack's CA, the things attached to them, the policies JITP created for them, and the CA
registration. Nothing else is touched: a certificate of another CA stays, and so does a thing that
a certificate of another CA still uses (it is only detached from the stack's certificates).

The order matters: the CA stops auto-registering first (no device re-registers while its
certificate is being deleted), then each certificate is set INACTIVE, detached and deleted, then
the things and JITP policies left unused are deleted, the stack's device policy is detached from
whatever still holds it (so the stack itself can be deleted), and the CA registration goes last.
Every step tolerates what is already gone, so running it again is a no-op.

Devices the stack's provisioning API registered carry no CA of the kit's (AWS IoT issued their
certificates): they are found by their things' ``provisioningStack`` attribute
(:func:`reset_provisioned`), each certificate attached to such a thing retired and deleted, then the thing.

A batch registered up front (``jitr fleet register``) can be reset on its own, by its manifest
(:func:`reset_manifest`): the manifest's certificates, wherever they are registered (also without
a CA), and its things once no other certificate uses them; the CA, the thing type, the group and
the device policy stay.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from base.errors import InvalidInputError, NotFoundError
from cloud.iot import IotApi
from cloud.stacks import StackInfo

# AWS IoT names the policy a JITP template creates from an inline PolicyDocument after the document's hash.
JITP_POLICY_NAME = re.compile(r"^[0-9a-f]{64}$")
DELETABLE_STATUSES = ("INACTIVE", "REVOKED")  # a certificate in any other status is set INACTIVE first


def stack_ca_id(stack_name: str, stack: StackInfo | None, directory_ca_id: str | None) -> str | None:
    """The CA of the stack: the stack's CaCertificateId, else the CA in the PKI folder; they must agree."""
    deployed = stack.ca_certificate_id if stack is not None else None
    if deployed and directory_ca_id and deployed != directory_ca_id:
        raise InvalidInputError(
            f"Stack {stack_name} was deployed for CA {deployed}, but the CA folder holds CA {directory_ca_id}; "
            "point --dir at the stack's own CA folder (or leave it out)."
        )
    return deployed or directory_ca_id


@dataclass(frozen=True)
class ResetPlan:
    """What a reset would delete, for the confirmation prompt."""

    ca_certificate_id: str
    ca_registered: bool
    certificates: tuple[str, ...]
    things: tuple[str, ...]

    def is_empty(self, *, keep_ca: bool) -> bool:
        return not self.certificates and not self.things and (keep_ca or not self.ca_registered)

    def question(self, *, keep_ca: bool, bucket: str | None = None) -> str:
        ca = "" if keep_ca or not self.ca_registered else ", and the CA registration itself"
        objects = f", and every object version in bucket {bucket}" if bucket else ""
        return (
            f"This deletes {len(self.certificates)} certificates and {len(self.things)} things registered "
            f"under CA {self.ca_certificate_id}{ca}{objects}; continue?"
        )


def _unused(api: IotApi, thing: str, ours: set[str]) -> bool:
    """True when no certificate other than the stack's is attached to ``thing``."""
    return not set(api.list_thing_principals(thing)) - ours


def plan_reset(api: IotApi, ca_certificate_id: str) -> ResetPlan:
    """Count what :func:`reset_fleet` would delete; changes nothing."""
    certificates = api.list_certificates_by_ca(ca_certificate_id)
    ours = {cert["certificateArn"] for cert in certificates}
    things = sorted({thing for arn in ours for thing in api.list_principal_things(arn)})
    return ResetPlan(
        ca_certificate_id=ca_certificate_id,
        ca_registered=api.describe_ca(ca_certificate_id) is not None,
        certificates=tuple(cert["certificateId"] for cert in certificates),
        things=tuple(thing for thing in things if _unused(api, thing, ours)),
    )


def _retire_certificate(api: IotApi, cert: Mapping) -> tuple[list[str], list[str]]:
    """Set a certificate INACTIVE and detach its policies and things; return their names."""
    arn = cert["certificateArn"]
    if cert.get("status") not in DELETABLE_STATUSES:
        api.update_certificate(cert["certificateId"], "INACTIVE")
    policies, things = api.list_attached_policies(arn), api.list_principal_things(arn)
    for policy in policies:
        api.detach_policy(policy, arn)
    for thing in things:
        api.detach_thing_principal(thing, arn)
    return policies, things


def reset_fleet(
    api: IotApi,
    ca_certificate_id: str,
    *,
    keep_ca: bool = False,
    stack_policy: str | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> dict:
    """Delete the fleet of CA ``ca_certificate_id`` (see the module docstring); return what was done."""
    report: dict = {
        "caCertificateId": ca_certificate_id,
        "certificatesDeleted": [],
        "thingsDeleted": [],
        "thingsKept": [],
        "policiesDetached": 0,
        "policiesDeleted": [],
        "stackPolicyDetachedFrom": [],
        "caDeleted": False,
        "caKept": keep_ca,
    }
    registered = api.describe_ca(ca_certificate_id) is not None
    if registered and not keep_ca:  # no device may register (and be activated) while its fleet is deleted
        api.update_ca(certificateId=ca_certificate_id, newStatus="INACTIVE", newAutoRegistrationStatus="DISABLE")

    certificates = api.list_certificates_by_ca(ca_certificate_id)
    ours = {cert["certificateArn"] for cert in certificates}
    things: set[str] = set()
    policies: set[str] = set()
    for cert in certificates:
        detached_policies, detached_things = _retire_certificate(api, cert)
        report["policiesDetached"] += len(detached_policies)
        policies.update(detached_policies)
        things.update(detached_things)
        if api.delete_certificate(cert["certificateId"]):
            report["certificatesDeleted"].append(cert["certificateId"])
        progress(1)

    for thing in sorted(things):
        if not _unused(api, thing, ours):
            report["thingsKept"].append(thing)  # another CA's certificate still uses it
        elif api.delete_thing(thing):
            report["thingsDeleted"].append(thing)

    if stack_policy:  # CloudFormation cannot delete a policy that is still attached anywhere
        for target in sorted(set(api.list_targets_for_policy(stack_policy)) - ours):
            if api.detach_policy(stack_policy, target):
                report["stackPolicyDetachedFrom"].append(target)
    for policy in sorted(policies - {stack_policy}):
        made_by_jitp = JITP_POLICY_NAME.match(policy) is not None
        if made_by_jitp and not set(api.list_targets_for_policy(policy)) - ours and api.delete_policy(policy):
            report["policiesDeleted"].append(policy)

    if registered and not keep_ca:
        report["caDeleted"] = api.delete_ca_certificate(ca_certificate_id)
    return report


PROVISIONED_BY = "provisioningStack"  # the thing attribute the provisioning API's template sets


def provisioned_things(api: IotApi, stack: str) -> list[str]:
    """The things the stack's provisioning API registered (their ``provisioningStack`` attribute)."""
    return api.things_with(PROVISIONED_BY, stack)


def reset_provisioned(api: IotApi, things: list[str], *, progress: Callable[[int], None] = lambda n: None) -> dict:
    """Delete ``things`` (:func:`provisioned_things`) and every certificate attached to them."""
    report: dict = {"certificatesDeleted": [], "thingsDeleted": []}
    for thing in things:
        for arn in api.list_thing_principals(thing):
            if ":cert/" not in arn:
                continue
            cert_id = arn.rsplit("/", 1)[1]
            _retire_certificate(api, {"certificateArn": arn, "certificateId": cert_id})
            if api.delete_certificate(cert_id):
                report["certificatesDeleted"].append(cert_id)
        if api.delete_thing(thing):
            report["thingsDeleted"].append(thing)
        progress(1)
    return report


@dataclass(frozen=True)
class ManifestFleet:
    """The devices of a manifest as AWS IoT knows them: the registered certificates and the thing names."""

    manifest: Path
    certificates: tuple[Mapping, ...]  # ListCertificates entries of the manifest's certificates
    things: tuple[str, ...]

    def is_empty(self) -> bool:
        return not self.certificates and not self.things

    def question(self) -> str:
        return (
            f"This deletes {len(self.certificates)} certificates and up to {len(self.things)} things of the batch "
            f"in {self.manifest}; continue?"
        )


def manifest_devices(manifest: Path) -> tuple[set[str], list[str]]:
    """The certificate ids and thing names a manifest lists (lines without them are passed over)."""
    path = Path(manifest)
    if not path.is_file():
        raise NotFoundError(f"The manifest {path} does not exist.")
    ids: set[str] = set()
    things: list[str] = []
    with path.open("rb") as handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if isinstance(record.get("certificateId"), str):
                ids.add(record["certificateId"])
            if isinstance(record.get("thingName"), str) and record["thingName"] not in things:
                things.append(record["thingName"])
    return ids, things


def plan_manifest_reset(api: IotApi, manifest: Path) -> ManifestFleet:
    """What :func:`reset_manifest` would delete (one listing of the account's certificates); changes nothing."""
    ids, things = manifest_devices(manifest)
    certificates = tuple(cert for cert in api.list_certificates() if cert["certificateId"] in ids)
    return ManifestFleet(Path(manifest), certificates, tuple(things))


def reset_manifest(
    api: IotApi, fleet: ManifestFleet, *, concurrency: int = 1, progress: Callable[[int], None] = lambda n: None
) -> dict:
    """Delete a registered batch: its certificates (INACTIVE, detached, deleted), then its things that no
    other certificate uses; ``concurrency`` threads at a time. Running it again is a no-op."""
    ours = {cert["certificateArn"] for cert in fleet.certificates}

    def retire(cert: Mapping) -> tuple[int, str | None]:
        policies, _things = _retire_certificate(api, cert)
        deleted = api.delete_certificate(cert["certificateId"])
        progress(1)
        return len(policies), cert["certificateId"] if deleted else None

    def remove(thing: str) -> tuple[str, str | None]:
        if not _unused(api, thing, ours):
            return thing, "kept"
        return thing, "deleted" if api.delete_thing(thing) else None

    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="jitr-reset") as pool:
        retired = list(pool.map(retire, fleet.certificates))
        removed = list(pool.map(remove, fleet.things))
    return {
        "manifest": str(fleet.manifest),
        "certificatesDeleted": [cert_id for _count, cert_id in retired if cert_id],
        "policiesDetached": sum(count for count, _cert_id in retired),
        "thingsDeleted": [thing for thing, outcome in removed if outcome == "deleted"],
        "thingsKept": [thing for thing, outcome in removed if outcome == "kept"],
    }


def check_archive_bucket(stack_name: str, stack: StackInfo | None, bucket: str) -> None:
    """Refuse to empty a bucket that is not the stack's archive (such as the SAM artifact bucket)."""
    if stack is None:
        raise InvalidInputError(
            f"There is no stack {stack_name}, so {bucket} cannot be checked to be its archive bucket; "
            "refusing to empty it."
        )
    if stack.archive_bucket != bucket:
        raise InvalidInputError(
            f"{bucket} is not the archive bucket of stack {stack_name} (its ArchiveBucketName output is "
            f"{stack.archive_bucket or 'missing'}); refusing to empty it."
        )
