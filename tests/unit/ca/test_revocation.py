"""CRLs as the CA signs them: entries with reasons, a number, the issuer's key id, a signature that verifies."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from base.errors import InvalidInputError
from base.keys import generate_key
from ca.revocation import Revoked, build_crl, parse_serial, revocation_of


def test_the_crl_lists_each_revoked_serial_with_its_reason_and_is_signed_by_the_issuer(intermediate_issuer, now):
    device = intermediate_issuer.issue_device(generate_key("ec-p256").public_key(), "d1", country="DE", now=now, days=9)
    revoked = [
        revocation_of(device, intermediate_issuer.certificate, now=now, reason="keyCompromise"),
        Revoked(77, now),  # a reason of "unspecified" is left out of the entry, as RFC 5280 advises
    ]
    crl = build_crl(intermediate_issuer, revoked, number=5, now=now, days=7)
    assert crl.is_signature_valid(intermediate_issuer.certificate.public_key())
    assert crl.issuer == intermediate_issuer.certificate.subject
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 5
    ski = intermediate_issuer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest
    entry = crl.get_revoked_certificate_by_serial_number(device.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    unspecified = crl.get_revoked_certificate_by_serial_number(77)
    assert unspecified is not None and len(unspecified.extensions) == 0
    assert crl.next_update_utc == now + dt.timedelta(days=7)


def test_a_revocation_names_the_ca_that_issued_it_and_round_trips_through_json(intermediate_issuer, now):
    device = intermediate_issuer.issue_device(generate_key("ec-p256").public_key(), "d2", country=None, now=now, days=9)
    record = revocation_of(device, intermediate_issuer.certificate, now=now, reason="superseded")
    assert Revoked.from_json(record.as_json()) == record
    assert record.subject == "CN=d2" and record.issuer_id and record.certificate_id


@pytest.mark.parametrize(
    ("text", "serial"),
    [("0x1f", 31), ("1F", 31), ("1f:00", 7936)],  # openssl prints hex; colons as in some tools
)
def test_serials_are_read_as_openssl_prints_them(text, serial):
    assert parse_serial(text) == serial


@pytest.mark.parametrize("text", ["xyz", "0", ""])  # not hex; zero; nothing
def test_a_serial_that_is_not_one_is_refused(text):
    with pytest.raises(InvalidInputError, match="Serial"):
        parse_serial(text)


def test_a_reason_rfc_5280_does_not_name_is_refused(intermediate_issuer, now):
    with pytest.raises(InvalidInputError, match="Reason 'lost' is not one of"):
        revocation_of(intermediate_issuer.certificate, intermediate_issuer.certificate, now=now, reason="lost")


def test_a_crl_for_more_than_a_year_is_refused(intermediate_issuer, now):
    with pytest.raises(InvalidInputError, match="--days"):
        build_crl(intermediate_issuer, [], number=1, now=now, days=400)
