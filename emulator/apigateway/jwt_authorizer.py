"""HTTP APIs' JWT authorizer, as API Gateway's developer guide describes its checks.

The token comes from the identity source (``Authorization``, with or without ``Bearer``); its
signature must verify with an RSA key of the issuer's key set, chosen by ``kid``; ``iss`` must equal
the authorizer's issuer; ``aud`` (or ``client_id`` when there is no ``aud``) must be one of its
audiences; ``exp`` must be in the future and ``nbf`` and ``iat`` not in it; and if the route asks for
scopes, ``scope`` or ``scp`` must hold one of them. API Gateway checks nothing else (not
``token_use``), and neither does this. Keys come from the emulator's Cognito user pools: the emulator
is offline and fetches no other issuer's keys, so tokens of other issuers are refused.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from emulator.store.gateway import Authorizer

_COGNITO_ISSUER = re.compile(r"^https://cognito-idp\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/(?P<pool>[\w-]+)$")
KeyLookup = Callable[[str, str], Mapping[str, Any] | None]  # (region, pool id) -> JWKS


@dataclass(frozen=True)
class Denied(Exception):
    """A request the authorizer refuses: 401 (no or bad token) or 403 (no matching scope)."""

    status: int
    description: str
    scope: str = ""

    def www_authenticate(self) -> str:
        if self.status == 401 and self.description == "":
            return "Bearer"
        error = "insufficient_scope" if self.status == 403 else "invalid_token"
        return f'Bearer scope="{self.scope}" error="{error}" error_description="{self.description}"'


def token_of(authorizer: Authorizer, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The token from the first identity source (``$request.header.X`` or ``$request.querystring.X``)."""
    for source in authorizer.identity_source:
        if source.startswith("$request.header."):
            value = headers.get(source.removeprefix("$request.header.").lower())
        elif source.startswith("$request.querystring."):
            value = query.get(source.removeprefix("$request.querystring."))
        else:
            continue
        if value:
            scheme, _, rest = value.strip().partition(" ")
            return rest.strip() if scheme.lower() == "bearer" and rest else value.strip()
    return None


def _claim_text(value: Any) -> str:
    """Claims reach the function as strings, as HTTP APIs pass them (lists as ``[a b]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_claim_text(v) for v in value) + "]"
    return str(value)


def authorize(
    authorizer: Authorizer,
    token: str | None,
    scopes: tuple[str, ...],
    keys: KeyLookup,
    now: Callable[[], float] = time.time,
) -> dict[str, str]:
    """The token's claims (as strings) if it passes; raise :class:`Denied` if not."""
    from joserfc import jwt
    from joserfc.errors import BadSignatureError, JoseError
    from joserfc.jwk import KeySet

    if not token:
        raise Denied(401, "")
    issuer = _COGNITO_ISSUER.match(authorizer.issuer)
    key_set = keys(issuer.group("region"), issuer.group("pool")) if issuer else None
    if key_set is None:
        raise Denied(401, f"unable to fetch the signing keys of issuer {authorizer.issuer}")
    try:
        decoded = jwt.decode(
            token, KeySet.import_key_set(cast(Any, dict(key_set))), algorithms=["RS256", "RS384", "RS512"]
        )
    except (JoseError, ValueError, TypeError) as exc:
        reason = "has an invalid signature" if isinstance(exc, BadSignatureError) else "is not a valid JWT"
        raise Denied(401, f"the token {reason}") from exc
    claims = dict(decoded.claims)
    if claims.get("iss") != authorizer.issuer:
        raise Denied(401, "the token does not have a valid issuer")
    audiences = claims.get("aud", claims.get("client_id"))
    audiences = audiences if isinstance(audiences, list) else [audiences]
    if not any(a in authorizer.audience for a in audiences if a is not None):
        raise Denied(401, "the token does not have a valid audience")
    moment = now()
    if not isinstance(claims.get("exp"), int | float) or claims["exp"] <= moment:
        raise Denied(401, "the token has expired")
    for name in ("nbf", "iat"):
        if isinstance(claims.get(name), int | float) and claims[name] > moment + 1:
            raise Denied(401, f"the token's {name} is in the future")
    if scopes:
        held = claims.get("scope", claims.get("scp", ""))
        held = held.split() if isinstance(held, str) else list(held or [])
        if not set(held) & set(scopes):
            raise Denied(403, "the token does not have a valid scope", " ".join(scopes))
    return {name: _claim_text(value) for name, value in claims.items()}
