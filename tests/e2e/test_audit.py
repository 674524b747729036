"""``jitr audit`` against the emulator: what the kit deploys audits clean (deploy.sh and a JITR device, a
batch registered up front, provisioning by claim and a rotation), and every check fires on an account
made bad on purpose."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from base.certificates import certificate_id, load_certificates
from fleet import audit
from tests.e2e.conftest import Device, register_ca, wait_for
from tests.e2e.test_operator_scripts import SAM_BUCKET, Operator

pytestmark = pytest.mark.timeout(240)
STACK = "audit-e2e"


def run_audit(run: Operator, *args: str) -> tuple[int, dict]:
    done = run("jitr", "audit", "--json", *args)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_what_the_kit_deploys_audits_clean(emulator, tmp_path):
    run = Operator(emulator, tmp_path)
    deployed = run("deploy.sh", STACK, SAM_BUCKET, "DE", "dev-1")
    assert deployed.returncode == 0, deployed.stderr
    pki = tmp_path / "pki" / STACK
    chain, key = pki / "devices/certs/dev-1.chain.pem", pki / "devices/private/dev-1.key"
    Device(emulator, chain, key, "dev-1").connect_until_accepted()[0].disconnect()  # JITR: activated
    cert_id = certificate_id(load_certificates(chain.read_bytes())[0])
    registry = emulator.api.registry()
    wait_for(lambda: registry.certificate(cert_id).status == "ACTIVE")

    minted = run("jitr", "device", "mint", "--dir", str(pki), "--count", "3", "--prefix", "batch-", "--out",
                 str(tmp_path / "batch"), "--format", "jsonl", "--json")  # fmt: skip
    assert minted.returncode == 0, minted.stderr
    registered = run("jitr", "fleet", "register", "--manifest", str(tmp_path / "batch" / "manifest.jsonl"), "--dir",
                     str(pki), "--json")  # fmt: skip
    assert registered.returncode == 0, registered.stderr

    claimed = run("jitr", "fleet", "claim", "--stack", STACK, "--template", "factory", "--out", "claim", "--json")
    assert claimed.returncode == 0, claimed.stderr
    endpoint = f"localhost:{emulator.info()['mqtt_port']}"
    ca = emulator.info()["endpoint_ca"]
    provisioned = run("jitr", "device", "provision", "--claim-cert", "claim/claim.cert.pem", "--claim-key",
                      "claim/claim.private.key", "--template", "factory", "--endpoint", endpoint, "--root-ca", ca,
                      "--parameter", "SerialNumber=sn-1", "--csr", "--out", "devices", "--json")  # fmt: skip
    assert provisioned.returncode == 0, provisioned.stderr
    assert run("jitr", "fleet", "claim", "--stack", STACK, "--template", "rotate", "--rotation").returncode == 0
    rotated = run("jitr", "device", "rotate", "--cert", "devices/certs/sn-1.pem", "--key", "devices/private/sn-1.key",
                  "--template", "rotate", "--endpoint", endpoint, "--root-ca", ca, "--out", "rotated")  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr

    code, report = run_audit(run)
    assert (code, report["findings"]) == (0, []), report["findings"]
    assert report["scanned"]["certificates"] >= 7  # dev-1, 3 batch, claim, sn-1's old and new
    code, scoped = run_audit(run, "--stack", STACK)
    assert (code, scoped["findings"]) == (0, [])
    human = run("jitr", "audit")
    assert human.returncode == 0 and human.stdout.startswith("Clean: no finding")


def self_signed(key, cn: str, *, days: int) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
    )  # fmt: skip
    if cn.startswith("ca"):
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(key, hashes.SHA256())


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_every_check_fires_on_an_account_made_bad_on_purpose(emulator, aws, jitr, pki, tmp_path):
    iot, registry = aws.client("iot"), emulator.api.registry()
    ca_id = register_ca(jitr, pki)  # auto-registration on, and no stack: nothing handles its devices
    for thing, days in (("dev-ok", 365), ("dev-expiring", 5), ("dev-revoked", 365)):
        assert jitr("device", "mint", "--dir", pki, "--thing", thing, "--days", days).exit_code == 0
        cert = registry.register_certificate((pki / f"devices/certs/{thing}.pem").read_bytes(),
                                             ca_certificate_id=ca_id, status="ACTIVE")  # fmt: skip
        iot.create_thing(thingName=thing)
        iot.attach_thing_principal(thingName=thing, principal=cert.arn)
    iot.create_thing(thingName="dev-twin")
    iot.attach_thing_principal(thingName="dev-twin", principal=registry.certificate(
        certificate_id(load_certificates((pki / "devices/certs/dev-ok.pem").read_bytes())[0])).arn)  # fmt: skip
    assert jitr("device", "mint", "--dir", pki, "--thing", "dev-pending").exit_code == 0
    registry.register_certificate((pki / "devices/certs/dev-pending.pem").read_bytes(), ca_certificate_id=ca_id)
    iot.create_thing(thingName="nobody")

    weak = iot.register_certificate_without_ca(
        certificatePem=pem(self_signed(ec.generate_private_key(ec.SECP256K1()), "dev-weak", days=365)),
        status="ACTIVE",
    )
    iot.create_thing(thingName="dev-weak")
    iot.attach_thing_principal(thingName="dev-weak", principal=weak["certificateArn"])
    weak_ca = self_signed(rsa.generate_private_key(public_exponent=65537, key_size=1024), "ca-weak", days=10)
    iot.register_ca_certificate(caCertificate=pem(weak_ca), certificateMode="SNI_ONLY", setAsActive=True)

    statements = [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"},
                  {"Effect": "Deny", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/admin/#"}]  # fmt: skip
    iot.create_policy(
        policyName="too-open", policyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements})
    )

    assert jitr("ca", "revoke", pki / "devices/certs/dev-revoked.pem", "--dir", pki).exit_code == 0
    assert jitr("ca", "crl", "--dir", pki, "--out", tmp_path / "devices.crl").exit_code == 0
    assert jitr("ca", "revoke", pki / "certs/intermediate-ca.pem", "--dir", pki).exit_code == 0
    assert jitr("ca", "crl", "--dir", pki, "--root", "--out", tmp_path / "root.crl").exit_code == 0

    run = Operator(emulator, tmp_path)
    code, report = run_audit(run, "--crl", str(tmp_path / "devices.crl"), "--crl", str(tmp_path / "root.crl"),
                             "--issuer", str(pki / "certs/root-ca.pem"), "--pending-minutes", "0")  # fmt: skip

    assert code == 1
    fired = {finding["check"] for finding in report["findings"]}
    assert fired == set(audit.CHECKS), set(audit.CHECKS) - fired
    by_check = {f["check"]: f for f in report["findings"]}
    assert by_check[audit.DEVICE_SHARED]["why"].startswith("One certificate is attached to 2 things")
    assert by_check[audit.POLICY_PERMISSIVE]["resource"] == "too-open"
    assert by_check[audit.THING_WITHOUT_CERTIFICATE]["resource"] == "nobody"
    assert by_check[audit.INTERMEDIATE_REVOKED]["resource"] == ca_id
    for finding in report["findings"]:
        assert finding["severity"] == audit.SEVERITY[finding["check"]] and finding["why"] and finding["fix"]

    unverifiable = run("jitr", "audit", "--crl", str(tmp_path / "root.crl"))  # the root is no registered CA
    assert unverifiable.returncode == 2 and "give its certificate with --issuer" in unverifiable.stderr
    garbage = tmp_path / "garbage.crl"
    garbage.write_text("not a CRL")
    bad = run("jitr", "audit", "--crl", str(garbage))
    assert bad.returncode == 2 and "is not a CRL" in bad.stderr
    human = run("jitr", "audit", "--pending-minutes", "0")
    assert human.returncode == 1 and "IOT_POLICY_OVERLY_PERMISSIVE_CHECK (CRITICAL): 1" in human.stdout


def test_an_empty_account_has_only_logging_to_say(emulator, tmp_path):
    code, report = run_audit(Operator(emulator, tmp_path))
    assert code == 1 and [f["check"] for f in report["findings"]] == [audit.LOGGING_DISABLED]
