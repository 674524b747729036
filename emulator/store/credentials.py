"""The temporary credentials the emulator's STS issued, and the IAM policies of their role: what an MQTT
connection signed with SigV4 is checked and authorized against (:mod:`emulator.iot.signed_connections`).

This module is where that reaches moto's models (STS's assumed roles, IAM's roles and managed policies).
Credentials that Cognito Identity issued for an identity (:mod:`emulator.store.identity_pools`) carry the
identity's id, since AWS IoT also needs an IoT policy attached to that identity.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

IDENTITY_ATTRIBUTE = "_jitr_identity_id"  # set on moto's AssumedRole by identity_pools.role_credentials


@dataclass(frozen=True)
class TemporaryCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: dt.datetime  # aware, UTC
    role_arn: str
    session_arn: str  # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
    session_policy: str | None  # the Policy given to AssumeRole, if any
    identity_id: str | None  # the Cognito identity, for credentials of an identity pool


def temporary_credentials(account: str, region: str, access_key_id: str) -> TemporaryCredentials | None:
    """The credentials STS issued with this access key id, or None (long-term keys and unknown ones alike)."""
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    backend = sts_backends[account][get_partition(region)]
    assumed = next((a for a in reversed(backend.assumed_roles) if a.access_key_id == access_key_id), None)
    if assumed is None:
        return None
    expiration = assumed.expiration
    if expiration.tzinfo is None:  # moto keeps naive UTC
        expiration = expiration.replace(tzinfo=dt.UTC)
    return TemporaryCredentials(
        access_key_id=assumed.access_key_id,
        secret_access_key=assumed.secret_access_key,
        session_token=assumed.session_token,
        expiration=expiration,
        role_arn=assumed.role_arn,
        session_arn=assumed.arn,
        session_policy=assumed.policy or None,
        identity_id=getattr(assumed, IDENTITY_ATTRIBUTE, None),
    )


def role_policy_documents(account: str, role_arn: str) -> list[str] | None:
    """The role's inline policies and the default versions of its attached customer managed policies (AWS managed
    ones are recorded by the emulator, not attached: they grant nothing here); None when the role does not exist."""
    from moto.iam.models import iam_backends
    from moto.utilities.utils import PARTITION_NAMES

    partition = role_arn.split(":")[1] if role_arn.count(":") >= 5 else "aws"
    if partition not in PARTITION_NAMES:
        return None
    backend = iam_backends[account][partition]
    role = next((r for r in backend.get_roles() if r.arn == role_arn), None)
    if role is None:
        return None
    documents = list(role.policies.values())
    for managed in role.managed_policies.values():
        documents += [v.document for v in managed.versions if v.is_default]
    return documents
