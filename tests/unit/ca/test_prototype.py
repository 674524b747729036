"""Prototype minting produces exactly what the builder path produces."""

from __future__ import annotations

import pytest
from cryptography import x509

from base.errors import InvalidThingNameError
from base.keys import generate_key
from ca.issue import Issuer, issue_root, make_name
from ca.prototype import DevicePrototype
from ca.verify import verify_chain


@pytest.mark.parametrize(
    ("issuer_key", "device_key", "country"),
    [
        ("ec-p256", "ec-p256", "DE"),  # the fleet default
        ("ec-p384", "ec-p256", None),  # SHA-384 issuer, no country RDN
        ("rsa-2048", "ec-p256", "US"),  # RSA issuer signs with PKCS#1 v1.5
        ("ec-p256", "rsa-2048", "DE"),  # RSA device keys add keyEncipherment
    ],
)
def test_prototype_tbs_equals_the_builders(issuer_key, device_key, country, now):
    key = generate_key(issuer_key)
    issuer = Issuer(issue_root(key, make_name("Proto Root", country="DE"), now=now, days=3650), key)
    prototype = DevicePrototype(issuer, key_type=device_key, country=country, now=now, days=365)
    device_public = generate_key(device_key).public_key()
    serial = x509.random_serial_number()
    fast = x509.load_der_x509_certificate(prototype.issue(device_public, "dev-42", serial))
    slow = issuer.issue_device(device_public, "dev-42", country=country, now=now, days=365, serial=serial)
    assert fast.tbs_certificate_bytes == slow.tbs_certificate_bytes
    verify_chain(fast, root=issuer.certificate, now=now)


def test_prototype_serials_of_every_length_encode_minimally(root_issuer, now):
    prototype = DevicePrototype(root_issuer, country=None, now=now, days=1)
    public = generate_key("ec-p256").public_key()
    for serial in (1, 127, 128, 255, 256, 2**63, 2**159 - 1):
        cert = x509.load_der_x509_certificate(prototype.issue(public, "d", serial))
        assert cert.serial_number == serial


def test_prototype_refuses_invalid_thing_names(root_issuer, now):
    prototype = DevicePrototype(root_issuer, country=None, now=now, days=1)
    with pytest.raises(InvalidThingNameError, match="Invalid thing name"):
        prototype.issue(generate_key("ec-p256").public_key(), "no spaces", 5)


def test_a_crl_distribution_point_is_in_prototype_and_builder_certificates_alike(root_issuer, now):
    url = "http://crl.example.com/devices.crl"
    prototype = DevicePrototype(root_issuer, country="DE", now=now, days=30, crl_url=url)
    device_public = generate_key("ec-p256").public_key()
    fast = x509.load_der_x509_certificate(prototype.issue(device_public, "dev-7", 99))
    slow = root_issuer.issue_device(device_public, "dev-7", country="DE", now=now, days=30, serial=99, crl_url=url)
    assert fast.tbs_certificate_bytes == slow.tbs_certificate_bytes
    points = slow.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [name.value for point in points for name in point.full_name or []] == [url]
