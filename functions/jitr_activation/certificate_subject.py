"""The thing a device certificate names: its subject CN (and C), read from the DER without third-party code.

The Lambda runtime has no ``cryptography``, so this walks just enough DER (X.690) to reach
``tbsCertificate.subject``; every length is checked against its enclosing element.
"""

from __future__ import annotations

import base64
import re

THING_NAME_RE = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
ATTRIBUTE_VALUE_RE = re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}")
THING_ATTRIBUTES = {"C": "country"}  # subject attribute -> thing attribute, as the kit's JITP template does


class CertificateFormatError(Exception):
    """The certificate PEM, its DER or its subject cannot be read, or names no valid thing."""


_NAME_OIDS = {b"\x55\x04\x03": "CN", b"\x55\x04\x06": "C", b"\x55\x04\x0a": "O", b"\x55\x04\x0b": "OU"}
_STRING_CODECS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be", 0x1C: "utf-32-be"}


def _tlv(der: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """``(tag, value_start, value_end)`` of the DER element at ``offset``, checked to end by ``end``."""
    if offset + 2 > end:
        raise CertificateFormatError("the DER is truncated")
    tag, first, start = der[offset], der[offset + 1], offset + 2
    if tag & 0x1F == 0x1F:
        raise CertificateFormatError("the DER uses a high tag number")
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4 or start + count > end:
            raise CertificateFormatError("the DER has an invalid length")
        length, start = int.from_bytes(der[start : start + count], "big"), start + count
    if start + length > end:
        raise CertificateFormatError("the DER is truncated")
    return tag, start, start + length


def _children(der: bytes, start: int, end: int, tag: int | None = None) -> list[tuple[int, int, int]]:
    items = []
    while start < end:
        item = _tlv(der, start, end)
        if tag is not None and item[0] != tag:
            raise CertificateFormatError(f"expected DER tag {tag:#04x}, found {item[0]:#04x}")
        items.append(item)
        start = item[2]
    return items


def pem_to_der(pem: str) -> bytes:
    """The first certificate of a PEM text."""
    match = re.search(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", pem or "", re.DOTALL)
    if not match:
        raise CertificateFormatError("the certificate is not PEM")
    try:
        return base64.b64decode("".join(match.group(1).split()), validate=True)
    except ValueError as exc:
        raise CertificateFormatError("the certificate PEM is not base64") from exc


def subject_attributes(der: bytes) -> list[tuple[str, str]]:
    """``(short name, value)`` for the CN, C, O and OU attributes of the certificate's subject, in order."""
    tag, start, end = _tlv(der, 0, len(der))
    tbs = _children(der, start, end) if tag == 0x30 else []
    if not tbs or tbs[0][0] != 0x30:
        raise CertificateFormatError("the certificate has no tbsCertificate")
    fields = _children(der, tbs[0][1], tbs[0][2])
    fields = fields[1:] if fields and fields[0][0] == 0xA0 else fields  # [0] version is optional
    if len(fields) < 6 or fields[4][0] != 0x30:  # serial, signature, issuer, validity, subject, key
        raise CertificateFormatError("the certificate has no subject")
    attributes = []
    for _set, set_start, set_end in _children(der, fields[4][1], fields[4][2], tag=0x31):
        for _seq, seq_start, seq_end in _children(der, set_start, set_end, tag=0x30):
            pair = _children(der, seq_start, seq_end)
            if len(pair) != 2 or pair[0][0] != 0x06:
                raise CertificateFormatError("a subject attribute is not an OID and a value")
            name = _NAME_OIDS.get(der[pair[0][1] : pair[0][2]])
            if name is None:
                continue
            codec = _STRING_CODECS.get(pair[1][0])
            if codec is None:
                raise CertificateFormatError(f"the subject {name} has an unsupported string type")
            try:
                attributes.append((name, der[pair[1][1] : pair[1][2]].decode(codec)))
            except UnicodeDecodeError as exc:
                raise CertificateFormatError(f"the subject {name} is not valid text") from exc
    return attributes


def thing_from_certificate(pem: str) -> tuple[str, dict[str, str]]:
    """The thing name (the subject CN) and the thing attributes (from C) a certificate names."""
    attributes = subject_attributes(pem_to_der(pem))
    names = [value for key, value in attributes if key == "CN"]
    if len(names) != 1:
        raise CertificateFormatError(f"the subject has {len(names)} common names; it needs exactly one")
    if not THING_NAME_RE.fullmatch(names[0]):
        raise CertificateFormatError("the common name is not a thing name (1-128 of a-z A-Z 0-9 : _ -)")
    thing_attributes = {
        THING_ATTRIBUTES[key]: value
        for key, value in attributes
        if key in THING_ATTRIBUTES and ATTRIBUTE_VALUE_RE.fullmatch(value)
    }
    return names[0], thing_attributes
