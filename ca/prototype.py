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
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from base.keys import KeyType, generate_key, signature_hash
from base.names import check_thing_name
from ca import der
from ca.issue import Issuer

_SKI_OID = bytes.fromhex("0603551d0e")  # 2.5.29.14
_CN_OID = bytes.fromhex("0603550403")  # 2.5.4.3
_PROTOTYPE_CN = "prototype"
_DER, _SPKI = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
# SubjectPublicKeyInfo of a P-256 key up to the uncompressed point (id-ecPublicKey, prime256v1, BIT STRING).
P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
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
        crl_url: str | None = None,
    ) -> None:
        self._issuer = issuer
        hash_ = signature_hash(issuer.key)
        is_ec = isinstance(issuer.key, ec.EllipticCurvePrivateKey)
        self._sign_args = (ec.ECDSA(hash_),) if is_ec else (padding.PKCS1v15(), hash_)
        self._sign = issuer.key.sign
        sample = issuer.issue_device(
            generate_key(key_type).public_key(),
            _PROTOTYPE_CN,
            country=country,
            now=now,
            days=days,
            serial=1,
            crl_url=crl_url,
        )
        cert_der = sample.public_bytes(serialization.Encoding.DER)
        tbs, self._signature_algorithm, _signature = der.children(cert_der)
        version, _serial, sig_alg, issuer_name, validity, subject, _spki, extensions = der.children(tbs)
        self._head = version  # [0] v3
        self._middle = sig_alg + issuer_name + validity
        self._subject_prefix = b"".join(der.children(subject)[:-1])  # every RDN before the CN
        ext_list = der.children(der.children(extensions)[0])
        ski_index = next(i for i, ext in enumerate(ext_list) if ext[2:].startswith(_SKI_OID))
        before, after = b"".join(ext_list[:ski_index]), b"".join(ext_list[ski_index + 1 :])
        # The SKI extension is always len(_SKI_PREFIX) + 20 bytes, so the extensions' headers are constant.
        inner_len = len(before) + len(_SKI_PREFIX) + 20 + len(after)
        sequence_header = der.tlv(der.SEQUENCE, bytes(inner_len))[: -inner_len or None]
        explicit_header = der.tlv(0xA3, bytes(len(sequence_header) + inner_len))[: -(len(sequence_header) + inner_len)]
        self._ext_open = explicit_header + sequence_header + before + _SKI_PREFIX
        self._ext_after = after
        self.not_after = sample.not_valid_after_utc

    def _subject(self, thing_name: str) -> bytes:
        value = thing_name.encode()
        n = len(value)  # at most 64 (a checked thing name), so every length below is one byte
        cn = bytes((der.SET, n + 9, der.SEQUENCE, n + 7)) + _CN_OID + bytes((der.UTF8_STRING, n)) + value
        return der.tlv(der.SEQUENCE, self._subject_prefix + cn)

    def issue(self, public_key: CertificatePublicKeyTypes, thing_name: str, serial: int) -> bytes:
        """The DER of a device certificate for ``public_key`` with CN ``thing_name``."""
        return self.issue_spki(public_key.public_bytes(_DER, _SPKI), thing_name, serial)

    def issue_spki(self, spki: bytes, thing_name: str, serial: int) -> bytes:
        """As :meth:`issue`, for a public key given as SubjectPublicKeyInfo DER."""
        check_thing_name(thing_name)
        if spki.startswith(P256_SPKI_PREFIX):
            key_bits = spki[len(P256_SPKI_PREFIX) :]  # the fleet's usual key: a fixed layout
        else:
            _tag, inner, _end = der.read_tlv(spki)
            _tag, _start, algorithm_end = der.read_tlv(spki, inner)
            _tag, bits_start, bits_end = der.read_tlv(spki, algorithm_end)
            key_bits = spki[bits_start + 1 : bits_end]  # the BIT STRING without its unused-bits byte
        extensions = self._ext_open + hashlib.sha1(key_bits).digest() + self._ext_after
        tbs = der.tlv(
            der.SEQUENCE,
            self._head + der.integer(serial) + self._middle + self._subject(thing_name) + spki + extensions,
        )
        signature = der.tlv(der.BIT_STRING, b"\x00" + self._sign(tbs, *self._sign_args))
        return der.tlv(der.SEQUENCE, tbs + self._signature_algorithm + signature)
