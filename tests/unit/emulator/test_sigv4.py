"""The emulator's check of signed MQTT-over-WebSocket URLs, against URLs signed by botocore (cloud.iot_websocket)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl, urlencode

import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cloud.iot_websocket import TemporaryCredentials, signed_path
from emulator.iot.sigv4 import SignatureRefused, verify

KEY, SECRET, TOKEN = "ASIAEXAMPLEKEY000001", "secret/with+characters", "token/with+slash=="
HOST, PORT = "localhost", 8443
CREDENTIALS = TemporaryCredentials(KEY, SECRET, TOKEN)


def check(path: str, *, host: str = f"{HOST}:{PORT}", now: dt.datetime | None = None, secret: str = SECRET):
    route, _, query = path.partition("?")
    headers = {"host": host}
    return verify(
        route,
        query,
        headers.get,
        lambda key: secret if key == KEY else None,
        now=now or dt.datetime.now(dt.UTC),
    )


def replace(path: str, **changes: str) -> str:
    route, _, query = path.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True)) | changes
    return f"{route}?{urlencode(params)}"


def test_a_url_signed_with_the_token_appended_afterwards_is_accepted():
    signed = check(signed_path(CREDENTIALS, HOST, PORT, "us-east-1"))
    assert (signed.access_key_id, signed.region, signed.session_token) == (KEY, "us-east-1", TOKEN)


def test_a_url_whose_signature_covers_the_token_is_refused_as_aws_iot_refuses_it():
    request = AWSRequest(method="GET", url=f"https://{HOST}:{PORT}/mqtt")
    SigV4QueryAuth(Credentials(KEY, SECRET, TOKEN), "iotdevicegateway", "us-east-1", expires=300).add_auth(request)
    with pytest.raises(SignatureRefused, match="does not match"):
        check(request.url.split(str(PORT), 1)[1])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"X-Amz-Signature": "0" * 64}, "does not match"),  # tampered signature
        ({"X-Amz-Expires": "3600"}, "does not match"),  # a longer life than was signed
        ({"X-Amz-Algorithm": "AWS4-HMAC-SHA1"}, "algorithm"),
        ({"X-Amz-Credential": f"{KEY}/20260101/us-east-1/execute-api/aws4_request"}, "iotdevicegateway"),
        ({"X-Amz-Credential": "OTHERKEY0000000000000/20260101/us-east-1/iotdevicegateway/aws4_request"}, "date"),
        ({"X-Amz-Date": "yesterday"}, "YYYYMMDD"),
    ],
)
def test_a_changed_url_is_refused(change, message):
    with pytest.raises(SignatureRefused, match=message):
        check(replace(signed_path(CREDENTIALS, HOST, PORT, "us-east-1"), **change))


def test_a_url_signed_for_another_host_is_refused():
    with pytest.raises(SignatureRefused, match="does not match"):
        check(signed_path(CREDENTIALS, HOST, PORT, "us-east-1"), host="localhost:9999")


def test_a_url_signed_with_another_secret_is_refused():
    with pytest.raises(SignatureRefused, match="does not match"):
        check(signed_path(CREDENTIALS, HOST, PORT, "us-east-1"), secret="another")


def test_an_access_key_sts_did_not_issue_is_refused():
    other = TemporaryCredentials("ASIAUNKNOWN000000000", SECRET, TOKEN)
    with pytest.raises(SignatureRefused, match="not one the emulator's STS issued"):
        check(signed_path(other, HOST, PORT, "us-east-1"))


def test_a_url_used_after_its_expiry_is_refused():
    path = signed_path(CREDENTIALS, HOST, PORT, "us-east-1")  # X-Amz-Expires=300
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=301)
    with pytest.raises(SignatureRefused, match="expired"):
        check(path, now=later)
    assert check(path, now=later - dt.timedelta(seconds=10)).access_key_id == KEY


def test_a_url_signed_far_in_the_future_is_refused():
    path = signed_path(CREDENTIALS, HOST, PORT, "us-east-1")
    with pytest.raises(SignatureRefused, match="more than 15 minutes"):
        check(path, now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16))


def test_an_unsigned_url_says_what_is_missing():
    with pytest.raises(SignatureRefused, match="not signed: no X-Amz-Algorithm"):
        check("/mqtt")
