"""A device identity is checked before it connects: key pairing, validity, thing name."""

from __future__ import annotations

import datetime as dt

import pytest

from base.certificates import to_pem
from base.errors import ExitStatus, MalformedError
from base.keys import generate_key, private_key_pem
from ca.issue import Issuer, issue_root, make_name
from device.errors import CertificateExpiredError, DeviceKeyMismatchError
from device.identity import load_identity

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    key = generate_key("ec-p256")
    return Issuer(issue_root(key, make_name("Device Test CA"), now=NOW, days=30), key)


def device(issuer: Issuer, thing: str = "sensor-1", *, now: dt.datetime = NOW, days: int = 10):
    key = generate_key("ec-p256")
    cert = issuer.issue_device(key.public_key(), thing, country="DE", now=now, days=days)
    return to_pem(cert) + to_pem(issuer.certificate), private_key_pem(key)


def test_the_thing_name_is_the_certificate_cn_and_the_chain_is_counted(issuer):
    chain, key = device(issuer)
    identity = load_identity(chain, key)
    assert identity.thing_name == "sensor-1"
    assert identity.certificates_sent == 2


def test_a_key_that_is_not_the_certificates_is_found_before_connecting(issuer):
    chain, _ = device(issuer)
    _, other_key = device(issuer, "sensor-2")
    with pytest.raises(DeviceKeyMismatchError, match="does not belong to its certificate") as caught:
        load_identity(chain, other_key, source="chain.pem")
    assert caught.value.exit_code == ExitStatus.KEY_MISMATCH == 11


@pytest.mark.parametrize(
    ("issued", "match"),
    [
        (NOW - dt.timedelta(days=20), "expired on"),  # issued for 10 days, 20 days ago
        (NOW + dt.timedelta(days=5), "not valid before .* check the device clock"),
    ],
)
def test_a_certificate_outside_its_validity_is_refused_locally(issuer, issued, match):
    chain, key = device(issuer, now=issued)
    with pytest.raises(CertificateExpiredError, match=match) as caught:
        load_identity(chain, key)
    assert caught.value.exit_code == ExitStatus.CERTIFICATE_EXPIRED


def test_garbage_is_a_malformed_identity(issuer):
    _, key = device(issuer)
    with pytest.raises(MalformedError):
        load_identity(b"not a certificate", key)
