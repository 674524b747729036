"""What the provisioning API checks in a CSR before it claims a serial, read from its DER with the
standard library alone (the Lambda has no cryptography package): the subject's CN and the key.

The CSR's signature is verified by AWS IoT itself when RegisterThing signs it; a CSR whose
signature does not verify is refused there (InvalidRequestException) and the claim is undone.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

PEM_RE = re.compile(
    r"-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END (?:NEW )?CERTIFICATE REQUEST-----"
)
OID_CN = "2.5.4.3"
OID_RSA = "1.2.840.113549.1.1.1"
OID_EC = "1.2.840.10045.2.1"
CURVES = {"1.2.840.10045.3.1.7": "P-256", "1.3.132.0.34": "P-384"}
MIN_RSA_BITS = 2048
MAX_PEM = 4096  # characters; RegisterThing's parameter values are limited too


class CsrError(ValueError):
    """The CSR is not one the API accepts; the message is the sentence for the device."""


@dataclass(frozen=True)
class CsrInfo:
    common_name: str | None
    key: str  # "P-256", "P-384" or "RSA-<bits>"


def _read(data: bytes, at: int) -> tuple[int, int, int]:
    """The DER element at ``at``: (tag, start of its contents, end of its contents)."""
    if at + 2 > len(data):
        raise CsrError("The CSR is truncated.")
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 3 or at + count > len(data):
            raise CsrError("The CSR is not valid DER.")
        length = int.from_bytes(data[at : at + count], "big")
        at += count
    if at + length > len(data):
        raise CsrError("The CSR is truncated.")
    return tag, at, at + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found, at = [], start
    while at < end:
        tag, body, stop = _read(data, at)
        found.append((tag, body, stop))
        at = stop
    return found


def _oid(raw: bytes) -> str:
    if not raw:
        raise CsrError("The CSR has an empty object identifier.")
    parts, value = [raw[0] // 40, raw[0] % 40], 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _common_name(data: bytes, start: int, end: int) -> str | None:
    for _set_tag, set_start, set_end in _children(data, start, end):
        for _seq, seq_start, seq_end in _children(data, set_start, set_end):
            (oid_tag, oid_start, oid_end), (_vtag, v_start, v_end) = _children(data, seq_start, seq_end)[:2]
            if oid_tag == 0x06 and _oid(data[oid_start:oid_end]) == OID_CN:
                try:
                    return data[v_start:v_end].decode("utf-8")
                except UnicodeDecodeError:
                    raise CsrError("The CSR's common name is not text.") from None
    return None


def _key(data: bytes, start: int, end: int) -> str:
    algorithm, bits = _children(data, start, end)[:2]
    parts = _children(data, algorithm[1], algorithm[2])
    kind = _oid(data[parts[0][1] : parts[0][2]])
    if kind == OID_EC:
        curve = _oid(data[parts[1][1] : parts[1][2]]) if len(parts) > 1 and parts[1][0] == 0x06 else ""
        if curve not in CURVES:
            raise CsrError("The CSR's EC key is not on P-256 or P-384.")
        return CURVES[curve]
    if kind == OID_RSA:
        rsa_key = bytes(data[bits[1] + 1 : bits[2]])  # the BIT STRING's contents after its unused-bits byte
        _tag, body, stop = _read(rsa_key, 0)
        _mtag, m_start, m_end = _children(rsa_key, body, stop)[0]
        size = int.from_bytes(rsa_key[m_start:m_end], "big").bit_length()
        if size < MIN_RSA_BITS:
            raise CsrError(f"The CSR's RSA key has {size} bits; at least {MIN_RSA_BITS} are needed.")
        return f"RSA-{size}"
    raise CsrError("The CSR's key is neither EC (P-256, P-384) nor RSA.")


def read_csr(pem: str) -> CsrInfo:
    """The CSR's CN and key type, or :class:`CsrError` with the reason."""
    if len(pem) > MAX_PEM:
        raise CsrError(f"The CSR is {len(pem)} characters; at most {MAX_PEM} are accepted.")
    match = PEM_RE.search(pem)
    if match is None:
        raise CsrError("csr is not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----).")
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise CsrError("The CSR's base64 does not decode.") from None
    try:
        _tag, body, _stop = _read(der, 0)
        info = _children(der, body, _stop)[0]
        version, subject, key = _children(der, info[1], info[2])[:3]
        if version[0] != 0x02 or subject[0] != 0x30 or key[0] != 0x30:
            raise CsrError("The CSR is not a PKCS#10 certificate request.")
        return CsrInfo(_common_name(der, subject[1], subject[2]), _key(der, key[1], key[2]))
    except (IndexError, ValueError) as exc:
        if isinstance(exc, CsrError):
            raise
        raise CsrError("The CSR is not valid DER.") from None
