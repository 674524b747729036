"""Checking the SigV4 signature of an MQTT-over-WebSocket URL, as AWS IoT's device gateway does.

The client signs ``GET /mqtt`` with the query-string form of Signature Version 4 (service
``iotdevicegateway``, the ``host`` header signed) and, with temporary credentials, appends
``X-Amz-Security-Token`` *after* signing: AWS IoT leaves the token out of the canonical query string
(what the AWS IoT Device SDKs do, ``omit_session_token``). The payload hash is that of the empty body;
``UNSIGNED-PAYLOAD`` is accepted too. A URL is good from 15 minutes before its ``X-Amz-Date`` (clock
skew) until ``X-Amz-Expires`` seconds after it, or 15 minutes after it when the URL names no expiry.

Pure: the secret key is looked up through the function given, the time is an argument.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from base.errors import JitrError

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "iotdevicegateway"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"
SKEW = dt.timedelta(minutes=15)
MAX_EXPIRES = 7 * 24 * 3600  # SigV4's longest presigned URL
_CREDENTIAL = re.compile(
    r"^(?P<key>[A-Z0-9]{16,128})/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)/aws4_request$"
)
_UNENCODED = "-_.~"


class SignatureRefused(JitrError):
    """A signed WebSocket URL that AWS IoT would refuse; the message says why (for the emulator's log)."""


@dataclass(frozen=True)
class SignedRequest:
    access_key_id: str
    region: str
    signed_at: dt.datetime
    session_token: str | None


def verify(
    path: str,
    query: str,
    header: Callable[[str], str | None],
    secret_of: Callable[[str], str | None],
    *,
    now: dt.datetime,
) -> SignedRequest:
    """The request's signer, once its signature, scope and time check out; else :class:`SignatureRefused`."""
    pairs = parse_qsl(query, keep_blank_values=True)
    params = dict(pairs)
    missing = [
        name
        for name in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature")
        if not params.get(name)
    ]
    if missing:
        raise SignatureRefused(f"the URL is not signed: no {', '.join(missing)}")
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise SignatureRefused(f"algorithm {params['X-Amz-Algorithm']!r}; AWS IoT takes {ALGORITHM}")
    scope = _CREDENTIAL.match(params["X-Amz-Credential"])
    if scope is None:
        raise SignatureRefused("X-Amz-Credential is not KEY/DATE/REGION/SERVICE/aws4_request")
    if scope.group("service") != SERVICE:
        raise SignatureRefused(f"signed for service {scope.group('service')!r}, not {SERVICE!r}")
    signed_at = _when(params["X-Amz-Date"])
    if signed_at.strftime("%Y%m%d") != scope.group("date"):
        raise SignatureRefused("the credential scope's date is not the date of X-Amz-Date")
    _check_time(signed_at, params.get("X-Amz-Expires"), now)
    signed_headers = params["X-Amz-SignedHeaders"].split(";")
    if "host" not in signed_headers or signed_headers != sorted(signed_headers):
        raise SignatureRefused("X-Amz-SignedHeaders must list host (lower case, sorted)")
    secret = secret_of(scope.group("key"))
    if secret is None:
        raise SignatureRefused(f"the access key {scope.group('key')} is not one the emulator's STS issued")
    canonical_query = "&".join(
        f"{k}={v}"
        for k, v in sorted((_encode(k), _encode(v)) for k, v in pairs)
        if k not in ("X-Amz-Signature", "X-Amz-Security-Token")
    )
    headers = ""
    for name in signed_headers:
        value = header(name)
        if value is None:
            raise SignatureRefused(f"the signed header {name!r} was not sent")
        headers += f"{name}:{' '.join(value.split())}\n"
    key = _signing_key(secret, scope.group("date"), scope.group("region"))
    for payload_hash in (EMPTY_SHA256, UNSIGNED):
        canonical = "\n".join(
            ["GET", _encode(path, safe="/"), canonical_query, headers, ";".join(signed_headers), payload_hash]
        )
        text = "\n".join(
            [
                ALGORITHM,
                params["X-Amz-Date"],
                params["X-Amz-Credential"].split("/", 1)[1],
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        expected = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, params["X-Amz-Signature"]):
            return SignedRequest(
                scope.group("key"), scope.group("region"), signed_at, params.get("X-Amz-Security-Token")
            )
    raise SignatureRefused("the signature does not match (tampered, or signed with another secret)")


def _when(text: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise SignatureRefused(f"X-Amz-Date {text!r} is not YYYYMMDDTHHMMSSZ") from None


def _check_time(signed_at: dt.datetime, expires: str | None, now: dt.datetime) -> None:
    if signed_at - SKEW > now:
        raise SignatureRefused(f"signed at {signed_at:%Y-%m-%dT%H:%M:%SZ}, more than 15 minutes from now")
    lifetime = SKEW
    if expires is not None:
        if not expires.isdigit() or not 1 <= int(expires) <= MAX_EXPIRES:
            raise SignatureRefused(f"X-Amz-Expires {expires!r} is not 1 to {MAX_EXPIRES} seconds")
        lifetime = dt.timedelta(seconds=int(expires))
    if now > signed_at + lifetime:
        raise SignatureRefused(f"the signed URL expired at {signed_at + lifetime:%Y-%m-%dT%H:%M:%SZ}")


def _encode(text: str, safe: str = "") -> str:
    return quote(text, safe=_UNENCODED + safe)


def _signing_key(secret: str, date: str, region: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, SERVICE, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
