"""The X.509 profile: what each role's certificate carries."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from base.keys import generate_key
from ca import profiles


def _by_type(extensions):
    return {type(ext.value): ext for ext in extensions}


def test_root_is_an_unconstrained_ca_with_critical_key_usage():
    exts = _by_type(profiles.root_extensions())
    assert exts[x509.BasicConstraints].value == x509.BasicConstraints(ca=True, path_length=None)
    assert exts[x509.BasicConstraints].critical
    assert exts[x509.KeyUsage].critical and exts[x509.KeyUsage].value.key_cert_sign


def test_intermediate_signs_end_entities_only():
    exts = _by_type(profiles.intermediate_extensions())
    assert exts[x509.BasicConstraints].value.path_length == 0
    assert exts[x509.KeyUsage].value.crl_sign


def test_device_is_a_tls_client_and_not_a_ca():
    exts = _by_type(profiles.device_extensions(generate_key("ec-p256").public_key()))
    assert exts[x509.BasicConstraints].value.ca is False
    assert exts[x509.ExtendedKeyUsage].value == x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    assert exts[x509.KeyUsage].value.digital_signature and not exts[x509.KeyUsage].value.key_encipherment


def test_rsa_device_keys_may_encipher():
    exts = _by_type(profiles.device_extensions(generate_key("rsa-2048").public_key()))
    assert exts[x509.KeyUsage].value.key_encipherment


def test_validity_is_backdated_a_minute(now):
    not_before, not_after = profiles.validity(now, 10)
    assert (now - not_before).total_seconds() == 60
    assert (not_after - now).days == 10
