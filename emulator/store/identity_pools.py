"""Amazon Cognito identity pools as the emulator serves them, on moto's pools: what moto lacks.

moto keeps the pools (CreateIdentityPool, DescribeIdentityPool), but its GetId checks no login and
its GetCredentialsForIdentity answers the same fixed keys to anyone, and it has no
SetIdentityPoolRoles. The emulator answers those four calls itself (:mod:`emulator.api.identity_pools`):
logins are checked against the pool's Cognito user pool providers, each signed-in user keeps one
identity, and the credentials are STS credentials of the role the pool maps the identity to (so
``sts get-caller-identity`` with them names ``assumed-role/ROLE/CognitoIdentityCredentials``). This
module is where that reaches moto's models (identity pools, user pool keys, STS).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from emulator.store.credentials import IDENTITY_ATTRIBUTE
from emulator.store.errors import IdentityNotAuthorized, IdentityResourceNotFound
from emulator.store.gateway import user_pool_keys

CREDENTIALS_SECONDS = 3600  # GetCredentialsForIdentity's credentials last an hour
SESSION_NAME = "CognitoIdentityCredentials"  # the role session AWS names them with
_PROVIDER = re.compile(r"^cognito-idp\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/(?P<pool>[\w-]+)$")
INVALID = "Invalid login token."


@dataclass(frozen=True)
class IdentityPool:
    id: str
    allow_unauthenticated: bool
    providers: tuple[tuple[str, str], ...]  # (provider name, app client id) of its Cognito user pools


def identity_pool(account: str, region: str, pool_id: str) -> IdentityPool:
    """The identity pool, or :class:`IdentityResourceNotFound` as Cognito answers."""
    from moto.cognitoidentity.models import cognitoidentity_backends

    pool = cognitoidentity_backends[account][region].identity_pools.get(pool_id)
    if pool is None:
        raise IdentityResourceNotFound(f"IdentityPool '{pool_id}' not found.")
    providers = tuple(
        (str(p.get("ProviderName", "")), str(p.get("ClientId", ""))) for p in pool.cognito_identity_providers or []
    )
    return IdentityPool(pool_id, bool(pool.allow_unauthenticated_identities), providers)


def login_subject(
    account: str, pool: IdentityPool, provider: str, token: str, now: Callable[[], float] = time.time
) -> str:
    """The user (``sub``) a login proves, after Cognito Identity's checks: the provider is one of the pool's,
    the ID token is signed by that user pool, for one of the pool's app clients, and not expired."""
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    clients = {client for name, client in pool.providers if name == provider}
    found = _PROVIDER.match(provider)
    if not clients or found is None:
        raise IdentityNotAuthorized(f"{INVALID} Token is not from a supported provider of this identity pool.")
    keys = user_pool_keys(account, found.group("region"), found.group("pool"))
    if keys is None:
        raise IdentityNotAuthorized(f"{INVALID} The user pool {found.group('pool')} does not exist.")
    try:
        claims = dict(jwt.decode(token, KeySet.import_key_set(cast(Any, keys)), algorithms=["RS256"]).claims)
    except (JoseError, ValueError, TypeError):
        raise IdentityNotAuthorized(f"{INVALID} Couldn't verify signed token.") from None
    if claims.get("iss") != f"https://{provider}":
        raise IdentityNotAuthorized(f"{INVALID} Issuer doesn't match providerName")
    if claims.get("token_use") != "id" or claims.get("aud") not in clients:
        raise IdentityNotAuthorized(f"{INVALID} Not an ID token of this identity pool's app clients.")
    moment = int(now())
    if not isinstance(claims.get("exp"), int | float) or claims["exp"] <= moment:
        raise IdentityNotAuthorized(f"{INVALID} Token expired: {moment} >= {claims.get('exp')}")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise IdentityNotAuthorized(f"{INVALID} Missing a required claim: sub")
    return subject


def new_identity_id(region: str) -> str:
    """An identity id as Cognito makes them: ``REGION:uuid``."""
    return f"{region}:{uuid.uuid4()}"


def role_credentials(account: str, region: str, role_arn: str, identity_id: str) -> dict[str, Any]:
    """STS credentials of ``role_arn`` for one identity (moto registers the keys, so callers act as the role)."""
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    assumed = sts_backends[account][get_partition(region)].assume_role_with_web_identity(
        region_name=region,
        role_session_name=SESSION_NAME,
        role_arn=role_arn,
        policy=None,
        duration=CREDENTIALS_SECONDS,
        external_id=None,
    )
    setattr(assumed, IDENTITY_ATTRIBUTE, identity_id)  # AWS IoT also wants an IoT policy attached to the identity
    return {
        "IdentityId": identity_id,
        "Credentials": {
            "AccessKeyId": assumed.access_key_id,
            "SecretKey": assumed.secret_access_key,
            "SessionToken": assumed.session_token,
            "Expiration": assumed.expiration.timestamp(),
        },
    }
