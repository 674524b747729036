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
import random
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from base.certificates import load_certificate
from base.errors import AlreadyExistsError, InvalidInputError
from base.files import FileSpec, write_files
from base.keys import KeyType, PrivateKey, generate_key, private_key_pem, public_bytes, signature_hash
from base.names import check_country, check_thing_name
from device.backoff import Backoff
from device.errors import DeviceKeyMismatchError, EndpointUnreachableError, EnrollmentRefusedError

REQUEST_TIMEOUT = 15.0  # seconds for one HTTPS request
LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_BACKOFF = Backoff(base=0.5, cap=10.0, attempts=8)

# (method, url, body or None, timeout) -> (HTTP status, body); raises OSError when there is no answer
Transport = Callable[[str, str, bytes | None, float], tuple[int, bytes]]


def urllib_transport(method: str, url: str, body: bytes | None, timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
    context = ssl.create_default_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def check_url(url: str, what: str) -> str:
    """An https URL, or http on this machine only (the local emulator): a token never crosses a network in clear."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return url.rstrip("/")
    if parsed.scheme == "http" and parsed.hostname in LOOPBACK:
        return url.rstrip("/")
    raise InvalidInputError(f"{what} {url!r} must be an https:// URL (http:// only on 127.0.0.1 or localhost).")


@dataclass(frozen=True)
class Requests:
    """JSON requests to the API, retried as AWS recommends (429, 5xx and silence; never 4xx)."""

    transport: Transport = urllib_transport
    backoff: Backoff = DEFAULT_BACKOFF
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random
    on_retry: Callable[[str], None] = lambda _why: None

    def __call__(self, method: str, url: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps(payload).encode() if payload is not None else None
        why = "no attempt"
        for retry in range(self.backoff.attempts):
            if retry:
                self.sleep(self.backoff.delay(retry - 1, self.rand))
            try:
                status, raw = self.transport(method, url, body, REQUEST_TIMEOUT)
            except OSError as exc:  # refused, reset, timed out, TLS: no answer to read
                why = f"no answer ({getattr(exc, 'reason', None) or exc})"
                self.on_retry(why)
                continue
            answer = _json(raw)
            if 200 <= status < 300 and isinstance(answer, dict):
                return answer
            message = answer.get("message") if isinstance(answer, dict) else None
            message = str(message or raw[:200].decode("utf-8", "replace") or "no message").rstrip(".")
            if status == 429 or status >= 500:
                why = f"HTTP {status}: {message}"
                self.on_retry(why)
                continue
            raise EnrollmentRefusedError(f"The provisioning API refused the request: {message} (HTTP {status}).")
        raise EndpointUnreachableError(f"{url} did not answer after {self.backoff.attempts} attempts; last: {why}.")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


@dataclass(frozen=True)
class Destination:
    region: str
    iot_endpoint: str
    provisioning_url: str


def ask_config(requests: Requests, config_url: str, country: str, state: str | None = None) -> Destination:
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
    requests: Requests,
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
