"""The signed URL path of AWS IoT's MQTT-over-WebSocket endpoint (``wss://ENDPOINT/mqtt``), for temporary
credentials: botocore's SigV4 query signing (service ``iotdevicegateway``), with ``X-Amz-Security-Token``
appended after signing, since AWS IoT leaves it out of the canonical request.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "iotdevicegateway"
PATH = "/mqtt"
URL_SECONDS = 300  # a signed URL is used at once, for one connect; a reconnect signs again


@dataclass(frozen=True)
class TemporaryCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None


def signed_path(credentials: TemporaryCredentials, host: str, port: int, region: str) -> str:
    """``/mqtt?X-Amz-...`` signed for ``host:port`` (the Host header a client sends; port 443 is left out)."""
    netloc = host if port == 443 else f"{host}:{port}"
    request = AWSRequest(method="GET", url=f"https://{netloc}{PATH}")
    keys = Credentials(credentials.access_key_id, credentials.secret_access_key)  # the token is not signed
    SigV4QueryAuth(keys, SERVICE, region, expires=URL_SECONDS).add_auth(request)
    path = str(request.url).split(netloc, 1)[1]
    if credentials.session_token:
        path += "&X-Amz-Security-Token=" + quote(credentials.session_token, safe="")
    return path
