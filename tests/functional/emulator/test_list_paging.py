"""ListCertificates, ListCertificatesByCA and ListThings page as AWS pages them (moto answers everything at
once): page sizes, the order by creation date, tokens that survive items coming and going, filters."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import ec

from base.certificates import to_pem
from emulator.iot.aws_issuer import aws_issuer
from emulator.store.device_certificates import store_certificate

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def api(module_api):
    return module_api


@pytest.fixture
def iot(fresh_iot):
    return fresh_iot


def certificates(api, count: int, *, ca: str | None = None) -> list[str]:
    """``count`` certificates in creation order; their ids."""
    registry = api.registry()
    key, now, made = ec.generate_private_key(ec.SECP256R1()).public_key(), dt.datetime.now(dt.UTC), []
    with registry.state.lock:
        for _ in range(count):
            cert = aws_issuer().issue(key, now=now)
            made.append(store_certificate(registry.backend, to_pem(cert).decode(), cert, status="ACTIVE",
                                          ca_certificate_id=ca).certificate_id)  # fmt: skip
    return made


def all_pages(call, key: str, token_in: str, token_out: str, **params) -> list[list[str]]:
    pages, token = [], params.pop(token_in, None)
    while True:
        answer = call(**params, **({token_in: token} if token else {}))
        pages.append(answer[key])
        token = answer.get(token_out)
        if not token:
            return pages


def test_certificates_come_25_a_page_newest_first_or_oldest_first_when_asked(api, iot):
    made = certificates(api, 60)
    pages = all_pages(iot.list_certificates, "certificates", "marker", "nextMarker")
    assert [len(page) for page in pages] == [25, 25, 10]
    assert [c["certificateId"] for page in pages for c in page] == made[::-1]
    ascending = all_pages(
        iot.list_certificates, "certificates", "marker", "nextMarker", pageSize=250, ascendingOrder=True
    )
    assert [c["certificateId"] for c in ascending[0]] == made
    assert set(ascending[0][0]) == {"certificateArn", "certificateId", "status", "certificateMode", "creationDate"}


def test_a_marker_survives_certificates_made_and_deleted_meanwhile(api, iot):
    made = certificates(api, 30)
    first = iot.list_certificates(pageSize=10, ascendingOrder=True)
    iot.update_certificate(certificateId=made[0], newStatus="INACTIVE")
    iot.delete_certificate(certificateId=made[0])  # before the marker: the offsets shift
    newer = certificates(api, 3)
    rest = all_pages(iot.list_certificates, "certificates", "marker", "nextMarker", pageSize=10, ascendingOrder=True,
                     marker=first["nextMarker"])  # fmt: skip
    seen = [c["certificateId"] for c in first["certificates"]] + [c["certificateId"] for p in rest for c in p]
    assert seen == made + newer  # none twice, none skipped (made[0] was given before it went)


def test_a_bad_page_size_or_marker_is_refused(iot):
    for params in ({"pageSize": 251}, {"marker": "not-a-marker"}):
        with pytest.raises(ClientError, match="InvalidRequest"):
            iot.list_certificates(**params)


def test_certificates_by_ca_are_only_that_cas(api, iot):
    ca = "c" * 64
    mine, _ = certificates(api, 30, ca=ca), certificates(api, 5)
    pages = all_pages(iot.list_certificates_by_ca, "certificates", "marker", "nextMarker", caCertificateId=ca)
    assert [c["certificateId"] for page in pages for c in page] == mine[::-1]


def test_things_page_50_at_a_time_and_filter_by_attribute(iot):
    for number in range(120):
        iot.create_thing(thingName=f"t-{number:03d}", attributePayload={"attributes": {"odd": str(number % 2)}})
    pages = all_pages(iot.list_things, "things", "nextToken", "nextToken")
    assert [len(page) for page in pages] == [50, 50, 20]
    assert [t["thingName"] for page in pages for t in page] == [f"t-{n:03d}" for n in range(120)]
    odd = all_pages(
        iot.list_things, "things", "nextToken", "nextToken", attributeName="odd", attributeValue="1", maxResults=25
    )
    assert [len(page) for page in odd] == [25, 25, 10]
    assert all(t["attributes"]["odd"] == "1" for page in odd for t in page)
