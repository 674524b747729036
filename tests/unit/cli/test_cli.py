"""The `jitr` CLI: what each command makes, driven with CliRunner."""

from __future__ import annotations

import json
import stat

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from base.keys import generate_key


def test_init_writes_certs_apart_from_private_keys_with_mode_0600(jitr, tmp_path):
    result = jitr("ca", "init", "--dir", tmp_path / "p", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["encrypted"] is False
    assert stat.S_IMODE((tmp_path / "p/private/root-ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "p/private").stat().st_mode) == 0o700
    assert (tmp_path / "p/certs/root-ca.pem").exists()


def test_init_with_a_passphrase_encrypts_the_keys_and_mint_uses_it(jitr, tmp_path):
    env = {"MY_PASS": "s3cret-passphrase"}
    assert (
        jitr("ca", "init", "--dir", tmp_path / "p", "--intermediate", "--passphrase-env", "MY_PASS", env=env).exit_code
        == 0
    )
    assert b"ENCRYPTED" in (tmp_path / "p/private/intermediate-ca.key").read_bytes()
    result = jitr("device", "mint", "--dir", tmp_path / "p", "--thing", "dev-1", env=env)
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output


def test_mint_one_device_writes_key_certificate_and_chain(jitr, pki):
    result = jitr("device", "mint", "--dir", pki, "--thing", "dev-1", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    chain = x509.load_pem_x509_certificates((pki / "devices/certs/dev-1.chain.pem").read_bytes())
    assert chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dev-1"
    assert chain[0].subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "DE"  # CA's country by default
    assert chain[1] == x509.load_pem_x509_certificate((pki / "certs/intermediate-ca.pem").read_bytes())
    assert stat.S_IMODE((pki / "devices/private/dev-1.key").stat().st_mode) == 0o600
    assert info["certificateId"] and len(info["files"]) == 3
    verified = jitr("ca", "verify", "--dir", pki, pki / "devices/certs/dev-1.chain.pem")
    assert verified.exit_code == 0 and verified.stdout.startswith("OK")


def test_mint_batch_with_json_reports_the_manifest(jitr, pki, tmp_path):
    result = jitr(
        "device",
        "mint",
        "--dir",
        pki,
        "--count",
        "25",
        "--prefix",
        "s-",
        "--workers",
        "2",
        "--format",
        "jsonl",
        "--out",
        tmp_path / "b",
        "--json",
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["count"] == 25
    lines = (tmp_path / "b/manifest.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["thingName"] == "s-25"


def test_show_describes_every_certificate_in_a_chain(jitr, pki):
    jitr("device", "mint", "--dir", pki, "--thing", "dev-1")
    result = jitr("ca", "show", "--json", pki / "devices/certs/dev-1.chain.pem")
    described = json.loads(result.stdout)
    assert [d["commonName"] for d in described] == ["dev-1", "jitr-kit Root CA Intermediate"]
    assert described[1]["isCa"] is True and len(described[0]["certificateId"]) == 64


def test_sign_csr_prints_a_certificate_that_chains(jitr, pki, tmp_path):
    key = generate_key("ec-p256")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev-csr")]))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "d.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    result = jitr(
        "device", "sign-csr", "--dir", pki, "--csr", tmp_path / "d.csr", "--chain", "--out", tmp_path / "d.pem"
    )
    assert result.exit_code == 0, result.output
    assert jitr("ca", "verify", "--dir", pki, tmp_path / "d.pem").exit_code == 0


def test_template_renders_valid_json_to_a_file(jitr, pki, tmp_path):
    result = jitr("ca", "template", "--dir", pki, "--out", tmp_path / "t.json")
    assert result.exit_code == 0, result.output
    template = json.loads((tmp_path / "t.json").read_text())
    assert set(template["Parameters"]) == {
        "AWS::IoT::Certificate::CommonName",
        "AWS::IoT::Certificate::Id",
        "AWS::IoT::Certificate::Country",
    }


def test_help_explains_every_command(jitr):
    for args in (["--help"], ["ca", "--help"], ["device", "mint", "--help"], ["ca", "register", "--help"]):
        result = jitr(*args)
        assert result.exit_code == 0
        assert "Usage" in result.stdout


def test_lambda_retry_delays_are_two_waits_in_seconds():
    from cli.local_app import parse_retry_delays

    assert parse_retry_delays("60,120") == (60.0, 120.0)
    assert parse_retry_delays(" 0.5 , 1 ") == (0.5, 1.0)
