"""Chain verification with ``cryptography.x509.verification`` (RFC 5280 path building)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

from base.certificates import common_name, is_ca
from base.errors import ChainError

# Web PKI rules for end entities, except that device certificates are named by their CN:
# AWS IoT needs no subjectAltName, so one may be present but is not required.
_DEVICE_POLICY = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
)


def verify_chain(
    leaf: x509.Certificate,
    *,
    root: x509.Certificate,
    intermediates: Sequence[x509.Certificate] = (),
    now: dt.datetime | None = None,
) -> list[x509.Certificate]:
    """Verify ``leaf`` up to ``root``; return the chain (leaf first) or raise :class:`ChainError`.

    Device certificates are verified as TLS clients (they must carry clientAuth); CA
    certificates are checked signature by signature up to the root.
    """
    now = now or dt.datetime.now(dt.UTC)
    if is_ca(leaf):
        return _verify_ca(leaf, root=root, intermediates=list(intermediates), now=now)
    verifier = (
        PolicyBuilder()
        .store(Store([root]))
        .time(now)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_DEVICE_POLICY)
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(leaf, list(intermediates))
    except VerificationError as exc:
        raise ChainError(f"{_name(leaf)} does not chain to {_name(root)}: {exc}.") from exc
    return list(verified.chain)


def _verify_ca(
    cert: x509.Certificate, *, root: x509.Certificate, intermediates: list[x509.Certificate], now: dt.datetime
) -> list[x509.Certificate]:
    chain = [cert]
    candidates = [*intermediates, root]
    while chain[-1] != root:
        current = chain[-1]
        if not current.not_valid_before_utc <= now <= current.not_valid_after_utc:
            raise ChainError(f"{_name(current)} is not valid at {now.isoformat()}.")
        issuer = next((c for c in candidates if c.subject == current.issuer and c not in chain), None)
        if issuer is None:
            raise ChainError(f"{_name(cert)} does not chain to {_name(root)}: no issuer for {_name(current)}.")
        try:
            current.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise ChainError(f"{_name(current)} was not signed by {_name(issuer)}.") from exc
        chain.append(issuer)
    return chain


def _name(cert: x509.Certificate) -> str:
    return repr(common_name(cert.subject) or cert.subject.rfc4514_string())
