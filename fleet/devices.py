"""A minted batch read for registration: each manifest line checked into a :class:`Device`, or a failed
:class:`Outcome` that says what is wrong with it (not JSON, a bad or repeated thing name, no certificate,
a certificate whose id, CN or validity does not fit, or that the batch's CA did not sign).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from base.certificates import certificate_id, common_name, country, load_certificate
from base.errors import InvalidInputError, JitrError, NotFoundError
from base.manifest import CA_FILE, ManifestEntry
from base.names import check_thing_name

REGISTERED, SKIPPED, FAILED = "registered", "skipped", "failed"
_ATTRIBUTE_UNSAFE = re.compile(r"[^a-zA-Z0-9_.,@/:#=\[\]-]")  # what a thing attribute value may not hold


@dataclass(frozen=True)
class Device:
    """One manifest line that passed the checks, ready to register."""

    line: int
    thing_name: str
    certificate_pem: str
    certificate_id: str
    attributes: dict[str, str]


@dataclass
class Outcome:
    """What happened to one manifest line."""

    line: int
    thing_name: str | None
    certificate_id: str | None
    status: str
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = {
            "line": self.line,
            "thingName": self.thing_name,
            "certificateId": self.certificate_id,
            "status": self.status,
        }
        return data | ({"reason": self.reason} if self.reason else {})


def manifest_ca(manifest: Path) -> Path:
    """The CA certificate minting put beside a manifest (``ca.pem``)."""
    return Path(manifest).parent / CA_FILE


def thing_attributes(cert: x509.Certificate) -> dict[str, str]:
    """Thing attributes from the certificate subject: country, organization, serial (at most three,
    AWS's limit for a thing without a type); characters an attribute value may not hold become ``_``."""
    attributes: dict[str, str] = {}
    code = country(cert.subject)
    if code:
        attributes["country"] = code
    organization = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if organization:
        attributes["organization"] = _ATTRIBUTE_UNSAFE.sub("_", str(organization[0].value))[:800]
    attributes["serial"] = format(cert.serial_number, "x")
    return attributes


def _check_line(
    number: int, raw: bytes, base: Path, ca: x509.Certificate | None, seen: dict[str, int], now: dt.datetime
) -> Device:
    """The device of one manifest line, or an InvalidInputError that says what is wrong with it."""
    try:
        record = json.loads(raw)
        thing = record["thingName"]
    except (ValueError, KeyError, TypeError):
        raise InvalidInputError("the line is not a device record (JSON with a thingName)") from None
    if not isinstance(thing, str):
        raise InvalidInputError("thingName is not a string")
    check_thing_name(thing)
    if thing in seen:
        raise InvalidInputError(f"thing {thing} is also on line {seen[thing]}")
    entry = ManifestEntry(base, record)
    try:
        pem = entry.certificate_pem()
    except (KeyError, TypeError):
        raise InvalidInputError("the record names no certificate") from None
    cert = load_certificate(pem, "the device certificate")
    cert_id = certificate_id(cert)
    if record.get("certificateId") not in (None, cert_id):
        raise InvalidInputError(f"the certificate's id is {cert_id}, not the manifest's {record['certificateId']}")
    if common_name(cert.subject) != thing:
        raise InvalidInputError(f"the certificate's CN is {common_name(cert.subject)!r}, not the thing name")
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise InvalidInputError(f"the certificate is not valid now (notAfter {cert.not_valid_after_utc.isoformat()})")
    if ca is not None:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            raise InvalidInputError(
                f"the certificate is not signed by the CA {ca.subject.rfc4514_string()} ({certificate_id(ca)[:12]}…)"
            ) from None
    seen[thing] = number
    return Device(number, thing, pem.decode(), cert_id, thing_attributes(cert))


def load_devices(
    manifest: Path, *, ca: x509.Certificate | None, now: dt.datetime
) -> tuple[list[Device], list[Outcome]]:
    """The manifest's registrable devices, and a failed outcome for every other line."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise NotFoundError(f"The manifest {manifest} does not exist.")
    devices: list[Device] = []
    rejected: list[Outcome] = []
    seen: dict[str, int] = {}
    with manifest.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                devices.append(_check_line(number, raw, manifest.parent, ca, seen, now))
            except JitrError as exc:
                thing = _thing_of(raw)
                rejected.append(Outcome(number, thing, None, FAILED, str(exc).rstrip(".")))
    return devices, rejected


def _thing_of(raw: bytes) -> str | None:
    try:
        thing = json.loads(raw).get("thingName")
    except (ValueError, AttributeError):
        return None
    return thing if isinstance(thing, str) else None
