"""Batch minting: files and jsonl formats, manifests, permissions, all-or-nothing."""

from __future__ import annotations

import json
import stat

import pytest
from cryptography import x509

from base import manifest
from base.certificates import certificate_id, to_pem
from base.errors import AlreadyExistsError, InvalidInputError, InvalidThingNameError, WrongPassphraseError
from base.keys import load_private_key, private_key_pem
from ca.batch import BatchRequest, mint_batch, names_from_file, numbered_names
from ca.verify import verify_chain


def _mint(issuer, names, out, now, **kwargs):
    return mint_batch(
        names,
        ca_cert_pem=to_pem(issuer.certificate),
        ca_key_pem=kwargs.pop("key_pem", private_key_pem(issuer.key)),
        passphrase=kwargs.pop("passphrase", None),
        request=BatchRequest(out=out, **kwargs),
        now=now,
    )


def test_numbered_names_are_zero_padded_to_the_count():
    assert list(numbered_names("s-", 12))[:2] == ["s-01", "s-02"]
    assert len(numbered_names("s-", 1_000_000)) == 1_000_000


@pytest.mark.parametrize("workers", [1, 2])
def test_files_batch_writes_key_cert_chain_and_manifest(tmp_path, root_issuer, intermediate_issuer, now, workers):
    result = _mint(intermediate_issuer, numbered_names("dev-", 30), tmp_path / "b", now, workers=workers, chunk=7)
    assert result.count == 30
    entries = list(manifest.read_manifest(result.manifest))
    assert [e.thing_name for e in entries] == [f"dev-{i:02d}" for i in range(1, 31)]  # order kept across workers
    for entry in entries[:5]:
        cert = x509.load_pem_x509_certificate(entry.certificate_pem())
        assert certificate_id(cert) == entry.certificate_id
        assert format(cert.serial_number, "x") == entry.record["serial"]
        key = load_private_key(entry.private_key_pem())
        assert key.public_key() == cert.public_key()
        chain = x509.load_pem_x509_certificates(entry.chain_pem())
        assert chain[1] == intermediate_issuer.certificate
        verify_chain(chain[0], root=root_issuer.certificate, intermediates=chain[1:], now=now)
    key_file = tmp_path / "b" / entries[0].record["privateKey"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "b" / "private").stat().st_mode) == 0o700
    assert not list((tmp_path / "b").glob(".mint-*"))  # staging folder gone


def test_jsonl_batch_inlines_pems_in_a_private_manifest(tmp_path, root_issuer, now):
    result = _mint(root_issuer, ["a", "b", "c"], tmp_path / "j", now, fmt="jsonl", workers=2)
    assert stat.S_IMODE(result.manifest.stat().st_mode) == 0o600
    assert not (tmp_path / "j" / "certs").exists()
    record = json.loads(result.manifest.read_text().splitlines()[0])
    assert record["thingName"] == "a" and "BEGIN CERTIFICATE" in record["certificatePem"]
    entry = next(manifest.read_manifest(result.manifest))
    verify_chain(x509.load_pem_x509_certificates(entry.chain_pem())[0], root=root_issuer.certificate, now=now)


def test_a_second_batch_into_the_same_folder_is_refused(tmp_path, root_issuer, now):
    _mint(root_issuer, ["a"], tmp_path / "x", now)
    with pytest.raises(AlreadyExistsError, match="already exists"):
        _mint(root_issuer, ["b"], tmp_path / "x", now)


def test_a_failing_batch_leaves_nothing_behind(tmp_path, root_issuer, now):
    names = ["good-1", "good-2", "bad name"]  # the third fails inside the worker
    with pytest.raises(InvalidThingNameError):
        _mint(root_issuer, names, tmp_path / "fail", now, chunk=1)
    assert not (tmp_path / "fail").exists()


def test_wrong_passphrase_fails_before_anything_is_written(tmp_path, root_issuer, now):
    encrypted = private_key_pem(root_issuer.key, b"right")
    with pytest.raises(WrongPassphraseError, match="Wrong passphrase"):
        _mint(root_issuer, ["a"], tmp_path / "p", now, key_pem=encrypted, passphrase=b"wrong")
    assert not (tmp_path / "p").exists()


def test_names_file_skips_comments_and_refuses_duplicates(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("# fleet\nalpha\n\nbeta\n")
    assert names_from_file(names) == ["alpha", "beta"]
    names.write_text("alpha\nbeta\nalpha\n")
    with pytest.raises(InvalidInputError, match="Duplicate thing name 'alpha'.*lines 1 and 3"):
        names_from_file(names)


def test_names_file_reports_the_line_of_a_bad_name(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("ok\nnot ok\n")
    with pytest.raises(InvalidThingNameError, match="Line 2"):
        names_from_file(names)
