"""`jitr ca register` against moto: DEFAULT and SNI_ONLY, JITP configuration, re-runs reuse."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest
from moto import mock_aws

ROLE = "arn:aws:iam::123456789012:role/JITPRole"


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with mock_aws(config={"iot": {"use_valid_cert": True}}):
        yield boto3.client("iot", region_name="us-east-1")


def _register(jitr, pki, *args):
    result = jitr("ca", "register", "--dir", pki, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_default_mode_registers_the_intermediate_active_with_a_verification_certificate(aws, jitr, pki):
    record = _register(jitr, pki)
    show = json.loads(jitr("ca", "show", "--json", pki / "certs/intermediate-ca.pem").stdout)[0]
    assert record["caCertificateId"] == show["certificateId"]  # the CA that signs devices, by DER id
    assert record["mode"] == "DEFAULT" and record["provisioning"] == "JITR" and record["outcome"] == "registered"
    described = aws.describe_ca_certificate(certificateId=record["caCertificateId"])["certificateDescription"]
    assert described["status"] == "ACTIVE"
    assert (pki / "certs/verification.pem").exists()
    assert json.loads((pki / "registration.json").read_text())["caCertificateId"] == record["caCertificateId"]


def test_sni_only_needs_no_verification_certificate(aws, jitr, pki):
    record = _register(jitr, pki, "--mode", "sni-only")
    assert record["mode"] == "SNI_ONLY"
    assert not (pki / "certs/verification.pem").exists()


def test_jitp_stores_the_template_and_role(aws, jitr, pki):
    record = _register(jitr, pki, "--jitp", "--role-arn", ROLE)
    config = aws.describe_ca_certificate(certificateId=record["caCertificateId"])["registrationConfig"]
    assert config["roleArn"] == ROLE
    template = json.loads(config["templateBody"])
    assert template["Resources"]["certificate"]["Properties"]["Status"] == "ACTIVE"
    assert "AWS::IoT::Certificate::Country" in template["Parameters"]  # the CA has a country


def test_registering_again_reuses_the_registration(aws, jitr, pki):
    first = _register(jitr, pki)
    second = _register(jitr, pki, "--jitp", "--role-arn", ROLE)
    assert second["caCertificateId"] == first["caCertificateId"]
    assert second["outcome"] == "reused"
    assert len(aws.list_certificates_by_ca(caCertificateId=first["caCertificateId"])["certificates"]) == 0
    config = aws.describe_ca_certificate(certificateId=first["caCertificateId"])["registrationConfig"]
    assert config["roleArn"] == ROLE  # the re-run brought the CA to the requested JITP state


def test_a_re_run_keeps_when_the_ca_was_first_registered_and_says_when_it_was_updated(aws, jitr, pki):
    first = _register(jitr, pki)
    second = _register(jitr, pki)
    assert second["registeredAt"] == first["registeredAt"]
    assert second["updatedAt"] >= first["registeredAt"]
    assert json.loads((pki / "registration.json").read_text())["registeredAt"] == first["registeredAt"]
    (pki / "registration.json").unlink()  # the record lost: AWS's creationDate stands in
    third = _register(jitr, pki)
    created = aws.describe_ca_certificate(certificateId=first["caCertificateId"])["certificateDescription"]
    assert third["registeredAt"] == created["creationDate"].astimezone(dt.UTC).isoformat()


def test_root_is_registered_when_there_is_no_intermediate(aws, jitr, tmp_path):
    pki = tmp_path / "solo"
    assert jitr("ca", "init", "--dir", pki).exit_code == 0
    record = _register(jitr, pki)
    show = json.loads(jitr("ca", "show", "--json", pki / "certs/root-ca.pem").stdout)[0]
    assert record["caCertificateId"] == show["certificateId"]


def test_jitp_template_with_a_country_the_certificates_lack_is_refused(aws, jitr, tmp_path):
    pki = tmp_path / "nocountry"
    assert jitr("ca", "init", "--dir", pki).exit_code == 0
    template = tmp_path / "t.json"
    template.write_text(
        json.dumps(
            {
                "Parameters": {"AWS::IoT::Certificate::Country": {"Type": "String"}},
                "Resources": {
                    "c": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": "x", "Status": "ACTIVE"}}
                },
            }
        )
    )
    result = jitr("ca", "register", "--dir", pki, "--jitp", "--role-arn", ROLE, "--template", template)
    assert result.exit_code == 2
    assert "do not carry it" in result.stderr
    assert not (pki / "registration.json").exists()
    ca_id = json.loads(jitr("ca", "show", "--json", pki / "certs/root-ca.pem").stdout)[0]["certificateId"]
    with pytest.raises(aws.exceptions.ResourceNotFoundException):
        aws.describe_ca_certificate(certificateId=ca_id)  # nothing was registered
