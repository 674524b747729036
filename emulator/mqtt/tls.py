"""TLS for the emulator's MQTT endpoint: the endpoint CA, the server certificate, the server context.

AWS IoT Core asks every device for a client certificate whose CA it may have been told about only
minutes ago (JITR/JITP), so the server context requests a client certificate and accepts any (except from
a client that offers ALPN without AWS IoT's X.509 names, such as a browser opening wss://: AWS IoT's port
443 serves it MQTT over WebSocket, authenticated by SigV4, without asking for a certificate):
whether the certificate is good is the connect hook's decision, not the TLS layer's. Python's
``ssl`` module cannot express "request, then accept whatever comes", so :func:`accept_any_client_certificate`
installs an always-true OpenSSL verify callback through ``ctypes`` on the context's ``SSL_CTX``
(the libssl ``_ssl`` itself is linked to, checked against what ``ssl`` reports before it is used).

After the handshake, :func:`peer_chain` returns every certificate the client sent (leaf first) and
:func:`server_name` the SNI it asked for: AWS IoT needs one of the two to find the device's CA.
"""

from __future__ import annotations

import _ssl
import ctypes
import datetime as dt
import functools
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from base.certificates import load_certificate, to_pem
from base.errors import JitrError
from base.files import FileSpec, write_files
from base.keys import KeyType, PrivateKey, generate_key, load_private_key, private_key_pem, signature_hash
from ca import profiles
from ca.issue import Issuer, issue_root, make_name

ENDPOINT_CA_FILE = "endpoint-ca.pem"
ENDPOINT_CA_KEY_FILE = "private/endpoint-ca.key"
SERVER_CERT_FILE = "endpoint-server.pem"
SERVER_KEY_FILE = "private/endpoint-server.key"
ENDPOINT_CA_NAME = "jitr-kit local endpoint CA"
ENDPOINT_CA_DAYS = 3650
SERVER_CERT_DAYS = 365
SERVER_DNS_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1",)

_SNI_ATTRIBUTE = "_jitr_server_name"
_SSL_VERIFY_PEER = 0x01
_SSL_CTRL_SET_SESS_CACHE_MODE = 44
_SSL_SESS_CACHE_OFF = 0x0000


class TlsSetupError(JitrError):
    """The emulator's MQTT endpoint cannot set TLS up the way AWS IoT Core behaves."""


@dataclass(frozen=True)
class EndpointPki:
    """The files of the local endpoint: the CA devices trust and the server's certificate and key."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    ca_certificate: x509.Certificate


def issue_server_certificate(
    issuer: Issuer,
    public_key: CertificatePublicKeyTypes,
    *,
    now: dt.datetime,
    days: int = SERVER_CERT_DAYS,
    dns_names: tuple[str, ...] = SERVER_DNS_NAMES,
    ips: tuple[str, ...] = SERVER_IPS,
) -> x509.Certificate:
    """A TLS server certificate for the endpoint, with SANs for every name and address clients dial."""
    not_before, not_after = profiles.validity(now, days)
    sans = [x509.DNSName(name) for name in dns_names] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(make_name(dns_names[0] if dns_names else ips[0]))
        .issuer_name(issuer.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(min(not_after, issuer.certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(profiles.ski(public_key), critical=False)
        .add_extension(profiles.aki_from(issuer.certificate), critical=False)
        .sign(issuer.key, signature_hash(issuer.key))
    )


def _load_endpoint_ca(state_dir: Path, now: dt.datetime) -> Issuer | None:
    """The endpoint CA kept from an earlier run, if it is there and valid for another day."""
    cert_path, key_path = state_dir / ENDPOINT_CA_FILE, state_dir / ENDPOINT_CA_KEY_FILE
    if not (cert_path.is_file() and key_path.is_file()):
        return None
    try:
        issuer = Issuer(load_certificate(cert_path.read_bytes()), load_private_key(key_path.read_bytes()))
    except JitrError:
        return None
    if issuer.certificate.not_valid_after_utc < now + dt.timedelta(days=1):
        return None
    return issuer


def endpoint_pki(state_dir: Path, *, now: dt.datetime | None = None) -> EndpointPki:
    """Load (or create) the endpoint CA under ``state_dir`` and issue a fresh server certificate.

    The CA is kept across runs so that devices holding ``endpoint-ca.pem`` keep trusting the
    endpoint, the way devices trust Amazon Root CA 1. Keys go to ``private/`` with mode 0600.
    """
    state_dir = Path(state_dir)
    now = now or dt.datetime.now(dt.UTC)
    files: dict[str, FileSpec] = {}
    issuer = _load_endpoint_ca(state_dir, now)
    if issuer is None:
        ca_key = generate_key(KeyType.EC_P256)
        ca_cert = issue_root(ca_key, make_name(ENDPOINT_CA_NAME, org="jitr-kit"), now=now, days=ENDPOINT_CA_DAYS)
        issuer = Issuer(ca_cert, ca_key)
        files[ENDPOINT_CA_FILE] = FileSpec(to_pem(ca_cert))
        files[ENDPOINT_CA_KEY_FILE] = FileSpec(private_key_pem(ca_key), private=True)
    server_key: PrivateKey = generate_key(KeyType.EC_P256)
    server_cert = issue_server_certificate(issuer, server_key.public_key(), now=now)
    files[SERVER_CERT_FILE] = FileSpec(to_pem(server_cert))
    files[SERVER_KEY_FILE] = FileSpec(private_key_pem(server_key), private=True)
    write_files(state_dir, files, overwrite=True)
    return EndpointPki(
        ca_file=state_dir / ENDPOINT_CA_FILE,
        cert_file=state_dir / SERVER_CERT_FILE,
        key_file=state_dir / SERVER_KEY_FILE,
        ca_certificate=issuer.certificate,
    )


# --- accepting any client certificate --------------------------------------------------------

_VERIFY_CALLBACK_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_CLIENT_HELLO_CALLBACK_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
_TLSEXT_ALPN = 16
_SSL_VERIFY_NONE = 0x00
_SSL_CLIENT_HELLO_SUCCESS = 1
# AWS IoT on port 443: these ALPN names ask for a client certificate (MQTT or HTTPS with X.509); a client that
# offers ALPN without them (a browser's "http/1.1" for wss://) speaks MQTT over WebSocket with SigV4, unasked
CLIENT_CERTIFICATE_ALPN = (b"x-amzn-mqtt-ca", b"x-amzn-http-ca")


@_VERIFY_CALLBACK_TYPE
def _accept_any(_preverify_ok: int, _store_ctx: int) -> int:
    return 1


def offered_alpn(extension: bytes) -> list[bytes]:
    """The protocol names of a ClientHello's ALPN extension (RFC 7301: a 2-byte length, then 1-byte-length names)."""
    names, at = [], 2
    end = min(len(extension), 2 + int.from_bytes(extension[:2], "big"))
    while at < end:
        size = extension[at]
        names.append(bytes(extension[at + 1 : at + 1 + size]))
        at += 1 + size
    return names


def asks_for_client_certificate(alpn: list[bytes] | None) -> bool:
    """Whether the endpoint requests a client certificate: unless ALPN is offered without AWS IoT's X.509 names."""
    return alpn is None or any(name in CLIENT_CERTIFICATE_ALPN for name in alpn)


@_CLIENT_HELLO_CALLBACK_TYPE
def _choose_client_authentication(ssl_pointer: int, _alert: int, _arg: int) -> int:
    """Before the server answers the ClientHello: no CertificateRequest for a WebSocket client (a browser has
    no certificate to give, and cancels a wss:// connection that is asked for one)."""
    lib = _libssl()
    data, size = ctypes.c_void_p(), ctypes.c_size_t()
    found = lib.SSL_client_hello_get0_ext(ssl_pointer, _TLSEXT_ALPN, ctypes.byref(data), ctypes.byref(size))
    alpn = offered_alpn(ctypes.string_at(data, size.value)) if found == 1 and data.value else None
    if not asks_for_client_certificate(alpn):
        lib.SSL_set_verify(ssl_pointer, _SSL_VERIFY_NONE, None)
    return _SSL_CLIENT_HELLO_SUCCESS


@functools.cache
def _libssl() -> ctypes.CDLL:
    """The libssl that Python's ``_ssl`` module uses (symbols resolve through its dependencies)."""
    try:
        lib = ctypes.CDLL(getattr(_ssl, "__file__", None))  # None: the interpreter itself (static builds)
        lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CALLBACK_TYPE]
    except (OSError, AttributeError) as exc:
        raise TlsSetupError(
            "This Python's ssl module does not expose OpenSSL to ctypes, so the MQTT endpoint cannot accept "
            "client certificates from CAs registered at run time; use a Python linked to a shared libssl."
        ) from exc
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_set_client_hello_cb.argtypes = [ctypes.c_void_p, _CLIENT_HELLO_CALLBACK_TYPE, ctypes.c_void_p]
    lib.SSL_client_hello_get0_ext.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.SSL_client_hello_get0_ext.restype = ctypes.c_int
    lib.SSL_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    return lib


def accept_any_client_certificate(context: ssl.SSLContext) -> None:
    """Request a client certificate on ``context`` and let the handshake succeed whatever it is.

    The ``SSL_CTX*`` sits right after the object header of CPython's ``_ssl._SSLContext``; it is
    only used once OpenSSL confirms it holds the options and verify mode ``ssl`` reports.
    Session resumption is also turned off, since a resumed session carries no certificate chain.
    """
    context.verify_mode = ssl.CERT_OPTIONAL
    context.options |= ssl.OP_NO_TICKET
    context.num_tickets = 0
    lib = _libssl()
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if (
        not pointer
        or lib.SSL_CTX_get_options(pointer) != context.options
        or lib.SSL_CTX_get_verify_mode(pointer) != _SSL_VERIFY_PEER
    ):
        raise TlsSetupError("This Python's ssl module lays its contexts out differently; cannot install TLS hooks.")
    lib.SSL_CTX_set_verify(pointer, _SSL_VERIFY_PEER, _accept_any)
    lib.SSL_CTX_ctrl(pointer, _SSL_CTRL_SET_SESS_CACHE_MODE, _SSL_SESS_CACHE_OFF, None)
    lib.SSL_CTX_set_client_hello_cb(pointer, _choose_client_authentication, None)


def _remember_server_name(ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _ctx) -> None:
    setattr(ssl_object, _SNI_ATTRIBUTE, server_name)


def server_context(pki: EndpointPki) -> ssl.SSLContext:
    """The endpoint's TLS context: TLS 1.2+, any client certificate accepted, SNI remembered."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pki.cert_file, pki.key_file)
    context.sni_callback = _remember_server_name
    accept_any_client_certificate(context)
    return context


def spki_sha256(cert_file: Path) -> str:
    """The base64 SHA-256 of a certificate's public key: what Chromium's --ignore-certificate-errors-spki-list
    takes, so that a browser trusts the endpoint's own certificate (and only it) without the endpoint CA."""
    import base64
    import hashlib

    from cryptography.hazmat.primitives import serialization

    key = load_certificate(cert_file.read_bytes()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


# --- what the client presented ----------------------------------------------------------------


def _der(certificate: Any) -> bytes | None:
    if certificate is None or isinstance(certificate, bytes):
        return certificate
    return certificate.public_bytes(_ssl.ENCODING_DER)  # _ssl.Certificate (CPython 3.10-3.12)


def peer_chain(ssl_object: ssl.SSLObject | None) -> tuple[bytes, ...]:
    """Every certificate the client sent, DER, leaf first, without repeats; empty without one.

    Python 3.13 has ``get_unverified_chain()``; 3.10-3.12 have it on the private ``_sslobj``.
    Where neither exists, the leaf alone is returned.
    """
    if ssl_object is None:
        return ()
    leaf = ssl_object.getpeercert(binary_form=True)
    if not leaf:
        return ()
    getter = getattr(ssl_object, "get_unverified_chain", None) or getattr(
        getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None
    )
    try:
        sent = [_der(cert) for cert in (getter() or [])] if getter else []
    except (ssl.SSLError, ValueError, AttributeError):
        sent = []
    chain: list[bytes] = [leaf]
    for der in sent:
        if der and der not in chain:
            chain.append(der)
    return tuple(chain)


def server_name(ssl_object: ssl.SSLObject | None) -> str | None:
    """The SNI host name the client asked for, if it sent one."""
    return getattr(ssl_object, _SNI_ATTRIBUTE, None) if ssl_object is not None else None
