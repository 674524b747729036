"""A device's identity: the chain it presents, its key, and the thing name its certificate carries.

Checked before any connection: a key that is not the certificate's, or a certificate outside its
validity, would only show up on the endpoint as a vague TLS failure or a refusal.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from base.certificates import common_name, load_certificates
from base.errors import InvalidInputError
from base.files import read_bytes
from base.keys import load_private_key, private_key_pem, public_bytes
from base.manifest import ManifestEntry
from device.errors import CertificateExpiredError, DeviceKeyMismatchError


@dataclass(frozen=True)
class DeviceIdentity:
    """What a device connects with. ``chain_pem`` is its certificate then its CA's (what JITR needs)."""

    thing_name: str
    chain_pem: bytes
    key_pem: bytes
    certificates_sent: int  # certificates in the chain: 1 means no CA certificate, JITR then relies on SNI
    not_after: dt.datetime


def load_identity(
    chain_pem: bytes,
    key_pem: bytes,
    *,
    source: str = "the device",
    now: dt.datetime | None = None,
    passphrase: bytes | None = None,
    passphrase_var: str | None = None,
) -> DeviceIdentity:
    """Parse and check a device's chain and key; raise a :class:`~device.errors.DeviceError` if they cannot work.

    An encrypted key needs ``passphrase``; ``passphrase_var`` (the variable that should hold it) is named when
    it is missing."""
    certs = load_certificates(chain_pem, f"The certificate chain of {source}")
    leaf = certs[0]
    key = load_private_key(key_pem, passphrase, f"The private key of {source}", passphrase_var)
    if public_bytes(key) != public_bytes(leaf.public_key()):
        raise DeviceKeyMismatchError(
            f"The private key of {source} does not belong to its certificate; pair each certificate with its own key."
        )
    now = now or dt.datetime.now(dt.UTC)
    if now < leaf.not_valid_before_utc:
        raise CertificateExpiredError(
            f"The certificate of {source} is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; "
            "check the device clock."
        )
    if now > leaf.not_valid_after_utc:
        raise CertificateExpiredError(
            f"The certificate of {source} expired on {leaf.not_valid_after_utc:%Y-%m-%d}; mint a new one."
        )
    thing = common_name(leaf.subject)
    if not thing:
        raise InvalidInputError(f"The certificate of {source} has no common name (the thing name).")
    if passphrase is not None:  # TLS takes the key decrypted; it stays in memory (device.tls hands it over by memfd)
        key_pem = private_key_pem(key, None)
    return DeviceIdentity(thing, chain_pem, key_pem, len(certs), leaf.not_valid_after_utc)


def identity_from_files(
    chain: Path,
    key: Path,
    *,
    now: dt.datetime | None = None,
    passphrase: bytes | None = None,
    passphrase_var: str | None = None,
) -> DeviceIdentity:
    """The identity in a chain file (device certificate, then its CA's) and a key file (encrypted: ``passphrase``)."""
    return load_identity(
        read_bytes(chain, "certificate chain"),
        read_bytes(key, "private key"),
        source=str(chain),
        now=now,
        passphrase=passphrase,
        passphrase_var=passphrase_var,
    )


def identity_from_manifest(entry: ManifestEntry, *, now: dt.datetime | None = None) -> DeviceIdentity:
    """The identity of one device of a mint manifest (``files`` or ``jsonl`` format)."""
    identity = load_identity(entry.chain_pem(), entry.private_key_pem(), source=entry.thing_name, now=now)
    if identity.thing_name != entry.thing_name:
        raise InvalidInputError(
            f"The manifest names {entry.thing_name!r} but its certificate's CN is {identity.thing_name!r}."
        )
    return identity


def chain_warning(identity: DeviceIdentity) -> str | None:
    """A note when the chain holds only the device certificate: JITR then needs SNI to find the CA."""
    if identity.certificates_sent > 1:
        return None
    return (
        f"Note: the chain of {identity.thing_name} holds only its certificate; JITR/JITP needs the CA certificate "
        "after it, unless the endpoint finds the CA by SNI (a certificate AWS IoT issued, as 'jitr device enroll' "
        "saves, needs neither)."
    )
