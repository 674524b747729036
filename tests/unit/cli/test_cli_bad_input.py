"""Bad input: one clear sentence on stderr, a non-zero exit, no traceback, nothing half-written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from base.keys import generate_key
from device.errors import DevicesFailedError


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def _fails(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert fragment in lines[0], lines[0]


def _csr_file(tmp_path: Path, cn: str = "dev-1", key=None) -> Path:
    key = key or generate_key("ec-p256")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / f"{cn.replace(' ', '_')}.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def encrypted_pki(jitr, tmp_path) -> Path:
    directory = tmp_path / "enc"
    assert jitr("ca", "init", "--dir", directory, "--passphrase-env", "PASS", env={"PASS": "right"}).exit_code == 0
    return directory


def test_wrong_passphrase(jitr, encrypted_pki):
    before = _files(encrypted_pki)
    _fails(jitr("device", "mint", "--dir", encrypted_pki, "--thing", "d", env={"PASS": "wrong"}), 5, "Wrong passphrase")
    assert _files(encrypted_pki) == before


def test_missing_passphrase_names_the_variable(jitr, encrypted_pki):
    _fails(jitr("device", "mint", "--dir", encrypted_pki, "--thing", "d", env={"PASS": ""}), 5, "set PASS")


def test_passphrase_variable_unset_at_init(jitr, tmp_path):
    _fails(jitr("ca", "init", "--dir", tmp_path / "p", "--passphrase-env", "NOPE_UNSET"), 2, "NOPE_UNSET is empty")
    assert not (tmp_path / "p").exists()


def test_existing_ca_directory_is_not_overwritten(jitr, pki):
    before = (pki / "certs/root-ca.pem").read_bytes()
    _fails(jitr("ca", "init", "--dir", pki), 4, "already exists")
    assert (pki / "certs/root-ca.pem").read_bytes() == before


def test_missing_ca_directory(jitr, tmp_path):
    _fails(jitr("device", "mint", "--dir", tmp_path / "nowhere", "--thing", "d"), 3, "No CA in")


def test_corrupt_ca_key(jitr, pki):
    (pki / "private/intermediate-ca.key").write_text(
        "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n"
    )
    _fails(jitr("device", "mint", "--dir", pki, "--thing", "d"), 2, "is not a PEM private key")
    assert not (pki / "devices").exists()


def test_missing_ca_key(jitr, pki):
    (pki / "private/intermediate-ca.key").unlink()
    _fails(jitr("device", "mint", "--dir", pki, "--thing", "d"), 3, "does not exist")


def test_corrupt_certificate(jitr, tmp_path):
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    _fails(jitr("ca", "show", tmp_path / "bad.pem"), 2, "is not a PEM certificate")


def test_missing_certificate_file(jitr, tmp_path):
    _fails(jitr("ca", "show", tmp_path / "absent.pem"), 3, "does not exist")


def test_key_that_does_not_match_its_certificate(jitr, pki):
    shutil.copy(pki / "private/root-ca.key", pki / "private/intermediate-ca.key")
    _fails(jitr("device", "mint", "--dir", pki, "--thing", "d"), 5, "does not match")


def test_issuer_that_is_not_a_ca(jitr, pki):
    jitr("device", "mint", "--dir", pki, "--thing", "leaf")
    shutil.copy(pki / "devices/certs/leaf.pem", pki / "certs/intermediate-ca.pem")
    shutil.copy(pki / "devices/private/leaf.key", pki / "private/intermediate-ca.key")
    _fails(jitr("device", "mint", "--dir", pki, "--thing", "d"), 5, "is not a CA certificate")


@pytest.mark.parametrize("code", ["de", "DEU", "1X", ""])
def test_bad_country_code(jitr, tmp_path, code):
    _fails(jitr("ca", "init", "--dir", tmp_path / "p", "--country", code), 2, "Invalid country code")
    assert not (tmp_path / "p").exists()


def test_an_empty_country_for_a_device_is_refused_not_taken_as_the_cas(jitr, pki):
    _fails(jitr("device", "mint", "--dir", pki, "--thing", "d", "--country", ""), 2, "Invalid country code ''")
    assert not (pki / "devices").exists()


def test_invalid_thing_name(jitr, pki):
    _fails(jitr("device", "mint", "--dir", pki, "--thing", "bad name"), 2, "Invalid thing name")
    assert not (pki / "devices").exists()


def test_thing_name_too_long_for_a_certificate(jitr, pki):
    _fails(jitr("device", "mint", "--dir", pki, "--thing", "x" * 65), 2, "at most 64")


def test_duplicate_thing_names_in_a_batch(jitr, pki, tmp_path):
    (tmp_path / "names.txt").write_text("a\nb\na\n")
    _fails(
        jitr("device", "mint", "--dir", pki, "--names", tmp_path / "names.txt", "--out", tmp_path / "o"),
        2,
        "Duplicate thing name",
    )
    assert not (tmp_path / "o").exists()


def test_minting_an_existing_device_again(jitr, pki):
    assert jitr("device", "mint", "--dir", pki, "--thing", "dev-1").exit_code == 0
    before = (pki / "devices/certs/dev-1.pem").read_bytes()
    _fails(jitr("device", "mint", "--dir", pki, "--thing", "dev-1"), 4, "already exists")
    assert (pki / "devices/certs/dev-1.pem").read_bytes() == before


def test_unwritable_output(jitr, pki, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    _fails(jitr("device", "mint", "--dir", pki, "--thing", "d", "--out", blocker / "sub"), 1, "Cannot")


def test_csr_with_a_bad_signature(jitr, pki, tmp_path):
    path = _csr_file(tmp_path)
    der = bytearray(x509.load_pem_x509_csr(path.read_bytes()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    path.write_bytes(bytes(der))
    _fails(jitr("device", "sign-csr", "--dir", pki, "--csr", path, "--out", tmp_path / "o.pem"), 5, "does not verify")
    assert not (tmp_path / "o.pem").exists()


def test_malformed_csr(jitr, pki, tmp_path):
    (tmp_path / "x.csr").write_text("hello")
    _fails(
        jitr("device", "sign-csr", "--dir", pki, "--csr", tmp_path / "x.csr"), 2, "not a certificate signing request"
    )


def test_csr_with_a_weak_rsa_key(jitr, pki, tmp_path):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    _fails(jitr("device", "sign-csr", "--dir", pki, "--csr", _csr_file(tmp_path, key=weak)), 2, "too weak")


def test_csr_whose_cn_is_not_a_thing_name(jitr, pki, tmp_path):
    _fails(
        jitr("device", "sign-csr", "--dir", pki, "--csr", _csr_file(tmp_path, cn="no good")), 2, "Invalid thing name"
    )


def test_certificate_from_another_ca_does_not_verify(jitr, pki, tmp_path):
    assert jitr("ca", "init", "--dir", tmp_path / "other").exit_code == 0
    jitr("device", "mint", "--dir", tmp_path / "other", "--thing", "stranger")
    _fails(jitr("ca", "verify", "--dir", pki, tmp_path / "other/devices/certs/stranger.pem"), 5, "does not chain")


def test_one_device_and_a_batch_at_once(jitr, pki):
    _fails(jitr("device", "mint", "--dir", pki, "--thing", "a", "--count", "3", "--prefix", "p"), 2, "not both")


def test_jitp_without_a_role(jitr, pki):
    _fails(jitr("ca", "register", "--dir", pki, "--jitp"), 2, "needs --role-arn")


def test_malformed_role_arn(jitr, pki):
    _fails(jitr("ca", "register", "--dir", pki, "--jitp", "--role-arn", "role/x"), 2, "is not an IAM role ARN")


def test_malformed_template_file(jitr, pki, tmp_path):
    (tmp_path / "t.json").write_text("{nope")
    _fails(jitr("ca", "template", "--dir", pki, "--policy", tmp_path / "t.json"), 2, "not valid JSON")


def test_debug_shows_the_traceback(jitr, tmp_path):
    result = jitr("--debug", "ca", "show", tmp_path / "absent.pem")
    assert result.exit_code != 0
    assert result.exception is not None and "does not exist" in str(result.exception)


@pytest.mark.parametrize("delays", ["60", "60,120,180", "a,b", "-1,2", "1,inf"])
def test_local_up_refuses_lambda_retry_delays_that_are_not_two_waits(jitr, tmp_path, delays):
    state = tmp_path / "state"
    _fails(jitr("local", "up", "--state-dir", state, "--lambda-retry-delays", delays), 2, "Invalid Lambda retry delays")
    assert not state.exists()  # refused before anything started


@pytest.mark.parametrize(
    "args",
    [
        ("ca", "init", "--country", "DE", "--days", "99999999"),
        ("device", "mint", "--thing", "dev-1", "--days", "99999999"),
        ("device", "mint", "--count", "3", "--prefix", "long-", "--days", "99999999"),  # before any worker starts
    ],
    ids=["ca init", "device mint", "batch mint"],
)
def test_a_validity_past_the_year_9999_is_refused_before_anything_is_written(jitr, pki, tmp_path, args):
    target = tmp_path / "new-ca" if args[0] == "ca" else pki
    before = _files(target)
    _fails(jitr(*args[:2], "--dir", target, *args[2:]), 2, "a certificate cannot be valid after 9999-12-31")
    assert _files(target) == before


def test_sign_csr_with_a_validity_past_the_year_9999_is_refused(jitr, pki, tmp_path):
    result = jitr("device", "sign-csr", "--dir", pki, "--csr", _csr_file(tmp_path), "--days", "99999999")
    _fails(result, 2, "--days must be 1 to")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda data: [], "is not valid CA metadata: it is not a JSON object"),
        (lambda data: {k: v for k, v in data.items() if k != "device_days"}, "device_days None is not a positive"),
        (lambda data: data | {"signer": "bogus"}, "signer 'bogus' is not one of root, intermediate"),
        (lambda data: data | {"key_type": "dsa"}, "key_type 'dsa' is not one of"),
        (lambda data: "not json", "it is not JSON"),
    ],
    ids=["a-list", "no-device-days", "bogus-signer", "unknown-key-type", "not-json"],
)
def test_a_damaged_ca_json_is_refused_and_never_guessed(jitr, pki, change, fragment):
    """A bogus signer used to sign devices with the root instead of the registered intermediate."""
    import json

    path = pki / "ca.json"
    changed = change(json.loads(path.read_text()))
    path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    _fails(jitr("device", "mint", "--dir", pki, "--thing", "dev-1"), 2, fragment)
    assert not (pki / "devices").exists()


def test_a_wrong_passphrase_message_reads_as_a_sentence(jitr, encrypted_pki):
    result = jitr("device", "mint", "--dir", encrypted_pki, "--thing", "dev-1", env={"PASS": "nope"})
    _fails(result, 5, "Wrong passphrase for the CA key ")


@pytest.mark.parametrize("command", ["describe", "reset"])
def test_an_invalid_stack_name_is_a_usage_error_before_any_call(jitr, command):
    result = jitr("fleet", command, "--stack", "bad name", *(["--yes"] if command == "reset" else []))
    _fails(result, 2, "Invalid stack name 'bad name'")


@pytest.mark.parametrize("command", ["simulate", "check"])
def test_a_run_over_an_empty_manifest_is_refused_not_reported_as_success(jitr, tmp_path, command):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n")
    _fails(jitr("device", command, "--manifest", manifest, "--endpoint", "localhost:1"), 2, "holds no devices")


def test_unencrypted_ca_keys_get_a_warning_on_stderr_and_encrypted_ones_none(jitr, tmp_path):
    plain = jitr("ca", "init", "--dir", tmp_path / "plain", "--json")
    assert plain.exit_code == 0 and "are not encrypted" in plain.stderr and "--passphrase-env" in plain.stderr
    assert json.loads(plain.stdout)["encrypted"] is False  # stdout stays one JSON object
    secret = jitr("ca", "init", "--dir", tmp_path / "secret", "--passphrase-env", "P", env={"P": "s3cret"})
    assert secret.exit_code == 0 and "not encrypted" not in secret.stderr


def test_the_emulator_state_with_its_endpoint_ca_key_is_ignored_by_git():
    ignored = (Path(__file__).resolve().parents[3] / ".gitignore").read_text().splitlines()
    assert "/.jitr-local/" in ignored and ".aws-sam/" in ignored


@pytest.mark.parametrize("debug", [False, True])
def test_a_device_side_bug_fails_that_device_and_shows_its_traceback_only_with_debug(
    jitr, pki, tmp_path, monkeypatch, debug
):
    assert jitr("device", "mint", "--dir", pki, "--count", "2", "--prefix", "bug-", "--format", "jsonl").exit_code == 0
    manifest = pki / "batches/bug/manifest.jsonl"

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("a bug in the device client")

    monkeypatch.setattr("device.simulate.run_device", broken)
    args = ["--debug"] * debug + ["device", "simulate", "--manifest", manifest, "--endpoint", "127.0.0.1:1"]
    result = jitr(*args)
    assert result.exit_code == 20 or (debug and isinstance(result.exception, DevicesFailedError))  # --debug: raised
    assert "unexpected: 2" in result.stdout  # the failures by reason
    assert ("Traceback (most recent call last)" in result.stderr) is debug
    assert ("ZeroDivisionError: a bug in the device client" in result.stderr) is debug
