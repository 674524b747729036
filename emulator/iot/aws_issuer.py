"""Certificates AWS IoT issues itself: CreateCertificateFromCsr, RegisterThing with a
``CertificateSigningRequest`` (the provisioning API), and the fleet provisioning MQTT API's
CreateKeysAndCertificate and CreateCertificateFromCsr.

AWS signs these with a CA of its own that nobody registers; devices present the leaf alone and AWS
IoT knows it by its id. The emulator does the same with an issuer it makes once per process: the
certificates it signs are stored in the registry as PEM, so they keep working after a restart that
makes a new issuer. moto's own CreateCertificateFromCsr puts a key of its own into the certificate,
not the CSR's, so the emulator answers that call here.

AWS's rules (API reference, CreateCertificateFromCsr): the CSR's key is RSA of at least 2048 bits or
EC on NIST P-256, P-384 or P-521; the same CSR twice makes two distinct certificates. The subject is
the CSR's (unconfirmed on AWS; a CSR without one gets ``CN=AWS IoT Certificate``, the subject AWS
gives the certificates it makes keys for). AWS-issued certificates are valid until the end of 2049.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ca import profiles
from emulator.store.errors import InvalidRequest

NOT_AFTER = dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
DEFAULT_SUBJECT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AWS IoT Certificate")])
ISSUER_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Amazon Web Services (jitr-kit emulator)"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "jitr-kit"),
    ]
)
CURVES = ("secp256r1", "secp384r1", "secp521r1")
MAX_CSR = 4096  # characters: AWS's certificateSigningRequest member is at most 4096 long


def load_request(pem: str, member: str) -> x509.CertificateSigningRequest:
    """A CSR AWS IoT would sign: it parses, its signature verifies, and its key is one AWS accepts."""
    if len(pem) > MAX_CSR:
        raise InvalidRequest(f"{member} is {len(pem)} characters; at most {MAX_CSR} are allowed.")
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        raise InvalidRequest(f"{member} is not a PEM certificate signing request.") from None
    if not csr.is_signature_valid:
        raise InvalidRequest(f"The signature of {member} does not verify.")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise InvalidRequest(f"{member} has a {key.key_size}-bit RSA key; at least 2048 bits are needed.")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in CURVES:
            raise InvalidRequest(f"{member} has an EC key on {key.curve.name}; use P-256, P-384 or P-521.")
    else:
        raise InvalidRequest(f"{member} has a {type(key).__name__}; use RSA (2048 bits or more) or EC.")
    return csr


class AwsIssuer:
    """The CA that stands for AWS IoT's own: it signs CSRs as AWS IoT does."""

    def __init__(self, now: dt.datetime) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        not_before, _ = profiles.validity(now, 1)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(ISSUER_NAME)
            .issuer_name(ISSUER_NAME)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self._aki = profiles.aki_from(self.certificate)

    def sign(self, csr: x509.CertificateSigningRequest, *, now: dt.datetime) -> x509.Certificate:
        """A device certificate for the CSR's key and subject (a new serial each time)."""
        return self.issue(csr.public_key(), csr.subject if len(csr.subject) else DEFAULT_SUBJECT, now=now)

    def issue(
        self, public_key: CertificatePublicKeyTypes, subject: x509.Name = DEFAULT_SUBJECT, *, now: dt.datetime
    ) -> x509.Certificate:
        """A device certificate for ``public_key`` (CreateKeysAndCertificate: a key AWS IoT made)."""
        not_before, _ = profiles.validity(now, 1)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ISSUER_NAME)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(profiles.ski(public_key), critical=False)
            .add_extension(self._aki, critical=False)
            .sign(self._key, hashes.SHA256())
        )


_lock = threading.Lock()


@functools.cache
def _issuer() -> AwsIssuer:
    return AwsIssuer(dt.datetime.now(dt.UTC))


def aws_issuer() -> AwsIssuer:
    """The process's issuer, made on first use."""
    with _lock:
        return _issuer()
