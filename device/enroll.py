"""Enrollment over HTTPS: a device that ships with a serial and a token, not a certificate, gets one
from the stack's provisioning API (``jitr device enroll``).

The key is made here and never leaves the device: the API gets a CSR whose CN is the serial, and
answers the certificate AWS IoT signed for it. ``GET /config`` first, when a configuration URL is
given, tells the device which region (and so which API and IoT endpoint) it belongs to. A 429 or a
5xx, or no answer at all, is retried with exponential backoff and full jitter; a 4xx stops at once
with the API's own sentence. Files are written only once the certificate is in hand, all or none:
``private/SERIAL.key`` (0600), ``certs/SERIAL.pem`` and ``SERIAL.json`` (endpoint, region, ids).
AWS IoT knows the certificates it issued, so the certificate alone is what the device presents.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from base import http
from base.certificates import load_certificate
from base.errors import AlreadyExistsError
from base.files import FileSpec, write_files
from base.keys import KeyType, PrivateKey, generate_key, private_key_pem, public_bytes, signature_hash
from base.names import check_country, check_thing_name
from device.errors import DeviceKeyMismatchError, EndpointUnreachableError, EnrollmentRefusedError

DEFAULT_BACKOFF = http.DEFAULT_BACKOFF
check_url = http.check_url


def provisioning_requests(**options: Any) -> http.Requests:
    """Requests to the provisioning API: refusals are :class:`EnrollmentRefusedError`, silence
    :class:`EndpointUnreachableError` (each with its exit code)."""
    return http.Requests(
        api="The provisioning API", refused=EnrollmentRefusedError, unreachable=EndpointUnreachableError, **options
    )


@dataclass(frozen=True)
class Destination:
    region: str
    iot_endpoint: str
    provisioning_url: str


def ask_config(requests: http.Requests, config_url: str, country: str, state: str | None = None) -> Destination:
    """``GET /config``: the region, IoT endpoint and provisioning URL for a device in ``country`` (and ``state``)."""
    query = {"country": check_country(country.upper())} | ({"state": state} if state else {})
    answer = requests("GET", f"{check_url(config_url, 'The configuration URL')}/config?{urllib.parse.urlencode(query)}")
    try:
        return Destination(answer["region"], answer["iotEndpoint"], answer["provisioningUrl"])
    except KeyError as exc:
        raise EnrollmentRefusedError(f"The configuration answer lacks {exc.args[0]}.") from None


def make_csr(serial: str, key: PrivateKey) -> bytes:
    """A CSR whose CN is the serial (the thing name), signed by the device's key."""
    from cryptography.hazmat.primitives import serialization

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, signature_hash(key))
    return request.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Enrolled:
    thing_name: str
    certificate_id: str
    iot_endpoint: str
    region: str
    topic_root: str | None
    certificate: Path
    key: Path

    def as_dict(self) -> dict[str, Any]:
        return {
            "thingName": self.thing_name,
            "certificateId": self.certificate_id,
            "iotEndpoint": self.iot_endpoint,
            "region": self.region,
            "topicRoot": self.topic_root,
            "certificate": str(self.certificate),
            "key": str(self.key),
        }


def device_files(out: Path, serial: str) -> tuple[Path, Path, Path]:
    return out / "certs" / f"{serial}.pem", out / "private" / f"{serial}.key", out / f"{serial}.json"


def enroll(
    requests: http.Requests,
    api_url: str,
    serial: str,
    token: str,
    out: Path,
    *,
    replace: bool = False,
    key_type: KeyType | str = KeyType.EC_P256,
) -> Enrolled:
    """Make a key, send its CSR with the serial and token, and write the identity the API answered."""
    check_thing_name(serial)
    api = check_url(api_url, "The provisioning API URL")
    cert_path, key_path, info_path = device_files(out, serial)
    if not replace and any(path.exists() for path in (cert_path, key_path, info_path)):
        raise AlreadyExistsError(f"{out} already holds an identity for {serial}; re-issue it with --replace.")
    key = generate_key(key_type)
    payload = {"token": token, "csr": make_csr(serial, key).decode(), **({"replace": True} if replace else {})}
    answer = requests("POST", f"{api}/devices/{urllib.parse.quote(serial, safe='')}/certificate", payload)
    pem = str(answer.get("certificatePem") or "").encode()
    cert = load_certificate(pem, "The certificate the provisioning API answered")
    if public_bytes(cert.public_key()) != public_bytes(key):
        raise DeviceKeyMismatchError("The provisioning API answered a certificate for another key; nothing was saved.")
    enrolled = Enrolled(
        thing_name=str(answer.get("thingName") or serial),
        certificate_id=str(answer.get("certificateId") or ""),
        iot_endpoint=str(answer.get("iotEndpoint") or ""),
        region=str(answer.get("region") or ""),
        topic_root=answer.get("topicRoot"),
        certificate=cert_path,
        key=key_path,
    )
    files = {
        str(cert_path.relative_to(out)): FileSpec(pem),
        str(key_path.relative_to(out)): FileSpec(private_key_pem(key), private=True),
        str(info_path.relative_to(out)): FileSpec((json.dumps(enrolled.as_dict(), indent=1) + "\n").encode()),
    }
    write_files(out, files, overwrite=replace)
    return enrolled
