"""Amazon Cognito Identity's role and credential calls, answered as Cognito answers them (moto lacks them).

- ``SetIdentityPoolRoles`` / ``GetIdentityPoolRoles``: which IAM role an identity pool gives its
  authenticated and unauthenticated identities.
- ``GetId``: with ``Logins`` (``{"cognito-idp.REGION.amazonaws.com/POOL": ID_TOKEN}``), the token is checked
  (:func:`emulator.store.identity_pools.login_subject`) and the signed-in user gets one identity id,
  the same at every sign-in; without, an unauthenticated identity if the pool allows them, else
  ``NotAuthorizedException``.
- ``GetCredentialsForIdentity``: an authenticated identity needs a login of its own user again
  (``Logins don't match...`` otherwise); the answer is STS credentials of the role the pool maps it to
  (``InvalidIdentityPoolConfigurationException`` when there is none).

The role's trust policy is not evaluated, nor are ``RoleMappings`` rules (they are stored and
answered); the basic flow (``GetOpenIdToken``, then ``AssumeRoleWithWebIdentity``) is moto's own. GetId
and GetCredentialsForIdentity are unsigned calls, as on AWS: the region comes from the pool or identity
id (``REGION:uuid``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from emulator.store.errors import (
    IdentityInvalidParameter,
    IdentityNotAuthorized,
    IdentityResourceNotFound,
    InvalidIdentityPoolConfiguration,
)
from emulator.store.identity_pools import identity_pool, login_subject, new_identity_id, role_credentials
from emulator.store.records import Identity
from emulator.store.state import StateStore

TARGET_PREFIX = "AWSCognitoIdentityService."
_ID = re.compile(r"^(?P<region>[a-z]{2}(-gov)?-[a-z]+-\d):[0-9a-f-]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
ROLE_KINDS = ("authenticated", "unauthenticated")
LOGINS_DO_NOT_MATCH = "Logins don't match. Please include at least one valid login for this identity or identity pool."


def _region_of(identifier: Any, what: str) -> str:
    found = _ID.match(identifier) if isinstance(identifier, str) else None
    if found is None:
        raise IdentityInvalidParameter(f"1 validation error detected: Value '{identifier}' at '{what}' is not valid.")
    return found.group("region")


def _logins(body: Mapping[str, Any]) -> dict[str, str]:
    logins = body.get("Logins") or {}
    if not isinstance(logins, dict) or not all(isinstance(v, str) for v in logins.values()):
        raise IdentityInvalidParameter("Logins must map provider names to tokens.")
    return logins


def set_identity_pool_roles(store: StateStore, account: str, body: Mapping[str, Any]) -> dict[str, Any]:
    pool_id = body.get("IdentityPoolId")
    region = _region_of(pool_id, "identityPoolId")
    identity_pool(account, region, str(pool_id))
    roles = body.get("Roles") or {}
    if not isinstance(roles, dict):
        raise IdentityInvalidParameter("Roles must map authenticated and unauthenticated to role ARNs.")
    for kind, arn in roles.items():
        if kind not in ROLE_KINDS or not isinstance(arn, str) or not _ROLE_ARN.match(arn):
            raise IdentityInvalidParameter(
                f"Invalid role {kind}={arn!r}: use authenticated or unauthenticated, a role ARN."
            )
    state = store.region(account, region)
    with state.lock:
        state.identity_roles[str(pool_id)] = {
            "Roles": dict(roles),
            "RoleMappings": dict(body.get("RoleMappings") or {}),
        }
    return {}


def get_identity_pool_roles(store: StateStore, account: str, body: Mapping[str, Any]) -> dict[str, Any]:
    pool_id = body.get("IdentityPoolId")
    region = _region_of(pool_id, "identityPoolId")
    identity_pool(account, region, str(pool_id))
    saved = store.region(account, region).identity_roles.get(str(pool_id), {})
    answer = {"IdentityPoolId": pool_id, "Roles": saved.get("Roles", {})}
    if saved.get("RoleMappings"):
        answer["RoleMappings"] = saved["RoleMappings"]
    return answer


def get_id(store: StateStore, account: str, body: Mapping[str, Any]) -> dict[str, Any]:
    pool_id = str(body.get("IdentityPoolId"))
    region = _region_of(pool_id, "identityPoolId")
    account = str(body.get("AccountId") or account)
    pool = identity_pool(account, region, pool_id)
    logins = _logins(body)
    login: tuple[str, str] | None = None
    if logins:
        checked = [(provider, login_subject(account, pool, provider, token)) for provider, token in logins.items()]
        login = checked[0]
    elif not pool.allow_unauthenticated:
        raise IdentityNotAuthorized("Unauthenticated access is not supported for this identity pool.")
    state = store.region(account, region)
    with state.lock:
        if login is not None:
            for known in state.identities.values():
                if known.pool_id == pool_id and known.login == login:
                    return {"IdentityId": known.identity_id}
        identity = Identity(new_identity_id(region), pool_id, login)
        state.identities[identity.identity_id] = identity
    return {"IdentityId": identity.identity_id}


def get_credentials_for_identity(store: StateStore, account: str, body: Mapping[str, Any]) -> dict[str, Any]:
    identity_id = body.get("IdentityId")
    region = _region_of(identity_id, "identityId")
    state = store.region(account, region)
    identity = state.identities.get(str(identity_id))
    if identity is None:
        raise IdentityResourceNotFound(f"Identity '{identity_id}' not found.")
    pool = identity_pool(account, region, identity.pool_id)
    logins = _logins(body)
    if identity.login is not None:
        provider, subject = identity.login
        if provider not in logins or login_subject(account, pool, provider, logins[provider]) != subject:
            raise IdentityNotAuthorized(LOGINS_DO_NOT_MATCH)
    elif not pool.allow_unauthenticated:
        raise IdentityNotAuthorized("Unauthenticated access is not supported for this identity pool.")
    kind = "authenticated" if identity.login is not None else "unauthenticated"
    role = state.identity_roles.get(identity.pool_id, {}).get("Roles", {}).get(kind)
    if not role:
        raise InvalidIdentityPoolConfiguration(
            "Invalid identity pool configuration. Check assigned IAM roles for this pool."
        )
    return role_credentials(account, region, role, identity.identity_id)


HANDLERS: dict[str, Callable[[StateStore, str, Mapping[str, Any]], dict[str, Any]]] = {
    "SetIdentityPoolRoles": set_identity_pool_roles,
    "GetIdentityPoolRoles": get_identity_pool_roles,
    "GetId": get_id,
    "GetCredentialsForIdentity": get_credentials_for_identity,
}


def operation_of(target: str | None) -> str | None:
    """The operation an ``X-Amz-Target`` names, if it is one of :data:`HANDLERS`."""
    if not target or not target.startswith(TARGET_PREFIX):
        return None
    name = target.removeprefix(TARGET_PREFIX)
    return name if name in HANDLERS else None
