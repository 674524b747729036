"""``jitr ca revoke`` and ``jitr ca crl`` as an operator runs them, checked with openssl."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest


def mint(jitr, pki: Path, thing: str) -> Path:
    assert jitr("device", "mint", "--dir", pki, "--thing", thing).exit_code == 0
    return pki / "devices" / "certs" / f"{thing}.pem"


def openssl_verify(pki: Path, crl: Path, cert: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["openssl", "verify", "-crl_check", "-CAfile", str(pki / "certs/root-ca.pem"),
         "-untrusted", str(pki / "certs/intermediate-ca.pem"), "-CRLfile", str(crl), str(cert)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_a_revoked_certificate_is_refused_by_openssl_and_the_others_still_verify(jitr, pki, tmp_path):
    revoked, kept = mint(jitr, pki, "d1"), mint(jitr, pki, "d2")
    assert jitr("ca", "revoke", revoked, "--dir", pki, "--reason", "keyCompromise").exit_code == 0
    crl = tmp_path / "crl.pem"
    assert jitr("ca", "crl", "--dir", pki, "--out", crl).exit_code == 0
    text = subprocess.run(["openssl", "crl", "-in", str(crl), "-noout", "-text"], capture_output=True, text=True)
    assert "Key Compromise" in text.stdout and "CRL Number" in text.stdout
    refused = openssl_verify(pki, crl, revoked)
    assert refused.returncode != 0 and "certificate revoked" in refused.stdout + refused.stderr
    assert openssl_verify(pki, crl, kept).returncode == 0


def test_the_crl_number_only_grows_and_revoking_twice_changes_nothing(jitr, pki, tmp_path):
    cert = mint(jitr, pki, "d1")
    assert jitr("ca", "revoke", cert, "--dir", pki).exit_code == 0
    again = jitr("ca", "revoke", cert, "--dir", pki)
    assert again.exit_code == 0 and "already revoked" in again.stdout
    numbers = [
        json.loads(jitr("ca", "crl", "--dir", pki, "--out", tmp_path / "crl.pem", "--json").stdout)["crlNumber"]
        for _ in range(3)
    ]
    assert numbers == [1, 2, 3]
    assert len(json.loads((pki / "revocations.json").read_text())["revoked"]) == 1


def test_a_serial_of_a_certificate_minted_here_can_be_revoked_by_number(jitr, pki):
    cert = mint(jitr, pki, "d1")
    serial = (
        subprocess.run(
            ["openssl", "x509", "-in", str(cert), "-noout", "-serial"], capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .split("=")[1]
    )
    result = jitr("ca", "revoke", "--serial", serial, "--dir", pki, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["subject"].startswith("CN=d1")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--serial", "abcdef"], 3, "No certificate minted"),  # a serial this CA never minted
        (["--serial", "zz"], 2, "not a hexadecimal number"),  # not a serial
        ([], 2, "Say what to revoke"),  # nothing named
        (["CERT", "--reason", "lost"], 2, "is not one of"),  # a reason RFC 5280 does not have
    ],
)
def test_bad_revocations_are_refused_with_a_sentence(jitr, pki, args, code, message):
    cert = mint(jitr, pki, "d1")
    result = jitr("ca", "revoke", *[cert if a == "CERT" else a for a in args], "--dir", pki)
    assert result.exit_code == code and message in result.output
    assert not (pki / "revocations.json").exists()


def test_a_certificate_of_another_ca_is_not_revoked(jitr, pki, tmp_path):
    other = tmp_path / "other"
    assert jitr("ca", "init", "--dir", other, "--country", "FR").exit_code == 0
    foreign = mint(jitr, other, "f1")
    result = jitr("ca", "revoke", foreign, "--dir", pki)
    assert result.exit_code == 2 and "was not issued by the CA" in result.output


def test_the_intermediate_is_revoked_on_the_roots_crl(jitr, pki, tmp_path):
    assert jitr("ca", "revoke", pki / "certs/intermediate-ca.pem", "--dir", pki).exit_code == 0
    signer = json.loads(jitr("ca", "crl", "--dir", pki, "--out", tmp_path / "s.pem", "--json").stdout)
    root = json.loads(jitr("ca", "crl", "--dir", pki, "--root", "--out", tmp_path / "r.pem", "--json").stdout)
    assert (signer["revoked"], root["revoked"]) == (0, 1)


def test_a_crl_of_an_encrypted_ca_without_its_passphrase_is_refused(jitr, tmp_path):
    pki = tmp_path / "locked"
    env = {"CA_SECRET": "correct horse battery"}
    assert jitr("ca", "init", "--dir", pki, "--country", "DE", "--passphrase-env", "CA_SECRET", env=env).exit_code == 0
    result = jitr("ca", "crl", "--dir", pki, "--out", tmp_path / "crl.pem", env={"CA_SECRET": ""})
    assert result.exit_code != 0 and "passphrase" in result.output.lower()
    assert not (tmp_path / "crl.pem").exists()


def test_minted_certificates_can_carry_the_crl_url_and_a_bad_one_is_refused(jitr, pki):
    url = "http://crl.example.com/sensors.crl"
    assert jitr("device", "mint", "--dir", pki, "--thing", "d1", "--crl-url", url).exit_code == 0
    text = subprocess.run(
        ["openssl", "x509", "-in", str(pki / "devices/certs/d1.pem"), "-noout", "-text"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "CRL Distribution Points" in text and url in text
    refused = jitr("device", "mint", "--dir", pki, "--thing", "d2", "--crl-url", "ftp://crl.example.com/x")
    assert refused.exit_code == 2 and "http:// or https://" in refused.output
    assert not (pki / "devices/certs/d2.pem").exists()
