"""Device certificates cut from a prototype, for minting fleets fast.

A batch of device certificates differs only in serial, subject CN, public key and subject
key identifier. :class:`DevicePrototype` builds one real certificate with
:meth:`ca.issue.Issuer.issue_device` (the single source of the device profile), keeps its
encoded parts, and for each device assembles the TBSCertificate from those parts and the
device's own values, then signs it with the issuer key. The result is byte for byte what
``issue_device`` would produce for the same inputs (the tests hold it to that); it just skips
rebuilding and re-encoding the unchanging parts a million times.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ca import der
from ca.issue import Issuer
from ca.keys import KeyType, generate_key, signature_hash
from ca.names import check_thing_name

_SKI_OID = bytes.fromhex("0603551d0e")  # 2.5.29.14
_CN_OID = bytes.fromhex("0603550403")  # 2.5.4.3
_PROTOTYPE_CN = "prototype"
# Extension ::= SEQUENCE { extnID 2.5.29.14, extnValue OCTET STRING { OCTET STRING (20 bytes of SHA-1) } }
_SKI_PREFIX = bytes.fromhex("301d") + _SKI_OID + bytes.fromhex("04160414")


class DevicePrototype:
    """Issues device certificates (DER) for one issuer, country and validity window."""

    def __init__(
        self,
        issuer: Issuer,
        *,
        key_type: KeyType | str = KeyType.EC_P256,
        country: str | None,
        now: dt.datetime,
        days: int,
    ) -> None:
        self._issuer = issuer
        self._hash = signature_hash(issuer.key)
        self._ecdsa = ec.ECDSA(self._hash) if isinstance(issuer.key, ec.EllipticCurvePrivateKey) else None
        sample = issuer.issue_device(
            generate_key(key_type).public_key(), _PROTOTYPE_CN, country=country, now=now, days=days, serial=1
        )
        cert_der = sample.public_bytes(serialization.Encoding.DER)
        tbs, self._signature_algorithm, _signature = der.children(cert_der)
        version, _serial, sig_alg, issuer_name, validity, subject, _spki, extensions = der.children(tbs)
        self._head = version  # [0] v3
        self._middle = sig_alg + issuer_name + validity
        self._subject_prefix = b"".join(der.children(subject)[:-1])  # every RDN before the CN
        ext_list = der.children(der.children(extensions)[0])
        ski_index = next(i for i, ext in enumerate(ext_list) if ext[2:].startswith(_SKI_OID))
        self._ext_before = b"".join(ext_list[:ski_index])
        self._ext_after = b"".join(ext_list[ski_index + 1 :])
        self.not_after = sample.not_valid_after_utc

    def _subject(self, thing_name: str) -> bytes:
        cn = der.tlv(der.SET, der.tlv(der.SEQUENCE, _CN_OID + der.tlv(der.UTF8_STRING, thing_name.encode())))
        return der.tlv(der.SEQUENCE, self._subject_prefix + cn)

    def _sign(self, tbs: bytes) -> bytes:
        if self._ecdsa is not None:
            return self._issuer.key.sign(tbs, self._ecdsa)
        return self._issuer.key.sign(tbs, padding.PKCS1v15(), self._hash)

    def issue(self, public_key: PublicKeyTypes, thing_name: str, serial: int) -> bytes:
        """The DER of a device certificate for ``public_key`` with CN ``thing_name``."""
        check_thing_name(thing_name)
        spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        _tag, inner, _end = der.read_tlv(spki)
        _tag, _start, algorithm_end = der.read_tlv(spki, inner)
        _tag, bits_start, bits_end = der.read_tlv(spki, algorithm_end)
        key_bits = spki[bits_start + 1 : bits_end]  # the BIT STRING without its unused-bits byte
        ski = _SKI_PREFIX + hashlib.sha1(key_bits).digest()
        extensions = der.tlv(0xA3, der.tlv(der.SEQUENCE, self._ext_before + ski + self._ext_after))
        tbs = der.tlv(
            der.SEQUENCE,
            self._head + der.integer(serial) + self._middle + self._subject(thing_name) + spki + extensions,
        )
        signature = der.tlv(der.BIT_STRING, b"\x00" + self._sign(tbs))
        return der.tlv(der.SEQUENCE, tbs + self._signature_algorithm + signature)
