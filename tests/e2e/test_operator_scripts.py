"""deploy.sh and delete.sh as an operator runs them, against the emulator: the whole loop, twice, then gone."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from base.certificates import certificate_id, load_certificates
from emulator.cloudformation.deploy import StackDeployer
from tests.e2e.conftest import Device, publish, wait_for

ROOT = Path(__file__).resolve().parents[2]
VENV_JITR = Path(sys.executable).with_name("jitr")  # the jitr installed beside the interpreter running the tests
JITR = VENV_JITR if VENV_JITR.exists() else ROOT / ".venv/bin/jitr"
STACK = "kit-e2e"
SAM_BUCKET = "sam-artifacts"
ARCHIVE_KEY = re.compile(rf"^devices/{STACK}/dev-1/telemetry/\d{{13}}_[0-9a-f-]{{36}}$")


class Operator:
    """A shell pointed at the emulator ('eval "$(jitr local env)"') that runs the operator scripts."""

    def __init__(self, emulator, tmp_path: Path) -> None:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "JITR_"))}
        # JITR_ROOT_CA as 'jitr local env' exports it, but no JITR_MQTT_ENDPOINT: deploy.sh asks DescribeEndpoint.
        self.env = inherited | emulator.environment()
        self.env |= {
            "JITR": str(JITR),
            "PKI_ROOT": str(tmp_path / "pki"),
            "PATH": f"{JITR.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "JITR_ROOT_CA": emulator.info()["endpoint_ca"],
        }
        self.cwd = tmp_path

    def __call__(self, script: str, *args: str, **extra: str) -> subprocess.CompletedProcess:
        command = [str(ROOT / script) if script.endswith(".sh") else str(JITR), *args]
        return subprocess.run(command, env=self.env | extra, capture_output=True, text=True, timeout=180, cwd=self.cwd)

    def archive_bucket(self, stack: str = STACK) -> str:
        described = self("jitr", "fleet", "describe", "--stack", stack, "--json")
        assert described.returncode == 0, described.stderr
        return json.loads(described.stdout)["outputs"]["ArchiveBucketName"]


@pytest.fixture
def run(emulator, tmp_path) -> Operator:
    return Operator(emulator, tmp_path)


def _ca_ids(iot) -> set[str]:
    return {ca["certificateId"] for ca in iot.list_ca_certificates()["certificates"]}


def _connect_line(stdout: str) -> dict[str, str]:
    words = shlex.split(stdout.strip().splitlines()[-1])
    assert words[:3] == [str(JITR), "device", "connect"], words
    return dict(zip(words[3::2], words[4::2], strict=True))


@pytest.fixture
def foreign(jitr, tmp_path, emulator, aws):
    """A CA, certificate, thing and policy that the stack did not create (and delete.sh must leave)."""
    other = tmp_path / "other-ca"
    assert jitr("ca", "init", "--dir", other, "--country", "FR").exit_code == 0
    ca_id = json.loads(jitr("ca", "register", "--dir", other, "--json").stdout)["caCertificateId"]
    assert jitr("device", "mint", "--dir", other, "--thing", "foreign-1").exit_code == 0
    pem = (other / "devices/certs/foreign-1.pem").read_bytes()
    cert = emulator.api.registry().register_certificate(pem, ca_certificate_id=ca_id, status="ACTIVE")
    iot = aws.client("iot")
    iot.create_thing(thingName="foreign-1")
    iot.attach_thing_principal(thingName="foreign-1", principal=cert.arn)
    document = {"Version": "2012-10-17", "Statement": []}
    iot.create_policy(policyName="foreign-policy", policyDocument=json.dumps(document))
    iot.attach_policy(policyName="foreign-policy", target=cert.arn)
    return {"ca": ca_id, "cert": cert}


def test_deploy_connect_archive_redeploy_and_delete_leave_nothing_of_the_stack(run, emulator, aws, foreign, tmp_path):
    iot, s3, registry = aws.client("iot"), aws.client("s3"), emulator.api.registry()

    deployed = run("deploy.sh", STACK, SAM_BUCKET, "DE", "dev-1")
    assert deployed.returncode == 0, deployed.stderr
    connect = _connect_line(deployed.stdout)
    assert connect["--endpoint"] == f"localhost:{emulator.info()['mqtt_port']}"
    assert connect["--root-ca"] == emulator.info()["endpoint_ca"]
    assert connect["--topic-root"] == f"devices/{STACK}"  # where the stack's policy and archive rule agree
    chain, key = Path(connect["--cert"]), Path(connect["--key"])
    assert chain == tmp_path / "pki" / STACK / "devices/certs/dev-1.chain.pem" and key.exists()
    ca_id = certificate_id(load_certificates((tmp_path / "pki" / STACK / "certs/intermediate-ca.pem").read_bytes())[0])
    assert _ca_ids(iot) == {ca_id, foreign["ca"]}
    bucket = run.archive_bucket()

    # JITR: the first connect is dropped, the Lambda activates the certificate, the device is accepted.
    device = Device(emulator, chain, key, "dev-1")
    assert device.connect_once() == (None, None)
    cert_id = certificate_id(load_certificates(chain.read_bytes())[0])
    wait_for(lambda: registry.certificate(cert_id) and registry.certificate(cert_id).status == "ACTIVE")
    client, _ = device.connect_until_accepted()
    publish(client, f"{connect['--topic-root']}/dev-1/telemetry", {"temperature": 21.5})
    client.disconnect()
    keys = wait_for(lambda: [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])])
    assert len(keys) == 1 and ARCHIVE_KEY.match(keys[0]), keys

    # Re-running deploy.sh reuses everything: same CA, same certificate, same stack and archive.
    chain_before = chain.read_bytes()
    again = run("deploy.sh", STACK, SAM_BUCKET, "DE", "dev-1")
    assert again.returncode == 0, again.stderr
    assert "reusing the CA" in again.stdout and "reusing the certificate of dev-1" in again.stdout
    assert _ca_ids(iot) == {ca_id, foreign["ca"]} and chain.read_bytes() == chain_before
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == keys
    assert registry.certificate(cert_id).status == "ACTIVE"

    # delete.sh refuses any bucket but the stack's archive (such as the SAM bucket), before deleting anything.
    refused = run("delete.sh", STACK, SAM_BUCKET)
    assert refused.returncode == 2 and "is not the archive bucket of stack" in refused.stderr
    assert registry.certificate(cert_id).status == "ACTIVE"

    deleted = run("delete.sh", STACK, bucket)
    assert deleted.returncode == 0, deleted.stderr
    _assert_nothing_of_the_stack_remains(aws, ca_id, bucket)
    _assert_untouched(iot, registry, foreign)

    rerun = run("delete.sh", STACK, bucket)
    assert rerun.returncode == 0, rerun.stderr
    assert "already gone" in rerun.stdout
    _assert_untouched(iot, registry, foreign)


def _policies(aws) -> list[str]:
    """The IoT policies of the stack, as the emulator recorded it."""
    record = StackDeployer(aws).record(STACK)
    assert record is not None, f"no stack {STACK} in the emulator"
    return [r["physicalId"] for r in record["resources"] if r["type"] == "AWS::IoT::Policy"]


def test_a_live_stack_gains_the_provisioning_api_and_a_second_stack_comes_and_goes_beside_it(run, emulator, aws):
    """One scenario, to keep the suite short: a stack update with an ACTIVE device (the device policy it has
    stays), then two stacks in one account, each with a CA of its own and a device named dev-1."""
    s3, other = aws.client("s3"), "kit-e2e-b"
    deployed = run("deploy.sh", STACK, SAM_BUCKET, "DE", "dev-1")
    assert deployed.returncode == 0, deployed.stderr
    line = _connect_line(deployed.stdout)
    bucket = run.archive_bucket()

    def connect_and_publish(n: int, *, first: bool = False) -> None:
        device = Device(emulator, Path(line["--cert"]), Path(line["--key"]), "dev-1")
        if first:  # JITR: the function activates it and attaches the device policy
            assert device.connect_once() == (None, None)
            client, _ = device.connect_until_accepted()
        else:
            rc, client = device.connect_once()
            assert rc == 0, "the ACTIVE device is accepted at its first connect"
        publish(client, f"{line['--topic-root']}/dev-1/telemetry", {"n": n})
        client.disconnect()
        assert wait_for(lambda: s3.list_objects_v2(Bucket=bucket).get("KeyCount") == n)

    connect_and_publish(1, first=True)
    policy = _policies(aws)

    updated = run("deploy.sh", STACK, SAM_BUCKET, "DE", "box-1", PROVISIONING="api")  # a stack update, as on AWS

    assert updated.returncode == 0, updated.stderr
    assert StackDeployer(aws).record(STACK)["outputs"].get("ProvisioningApiUrl")
    assert policy[0] in _policies(aws)  # the device policy the device has is the stack's still
    connect_and_publish(2)

    second = run("deploy.sh", other, SAM_BUCKET, "DE", "dev-1")  # the same thing name, another CA
    assert second.returncode == 0, second.stderr
    other_line, other_bucket = _connect_line(second.stdout), run.archive_bucket(other)
    assert other_bucket != bucket
    device = Device(emulator, Path(other_line["--cert"]), Path(other_line["--key"]), "dev-1")
    assert device.connect_once() == (None, None)
    refused = wait_for(
        lambda: [i for i in emulator.lambdas.invocations if (i.result or {}).get("outcome") == "refused"]
    )
    assert "belongs to CA" in refused[0].result["reason"]  # the other stack's function will not hand it dev-1
    other_id = certificate_id(load_certificates(Path(other_line["--cert"]).read_bytes())[0])
    assert emulator.api.registry().certificate(other_id).status == "PENDING_ACTIVATION"
    assert s3.list_objects_v2(Bucket=other_bucket).get("KeyCount") == 0  # each archive hears its own stack

    deleted = run("delete.sh", other, other_bucket)

    assert deleted.returncode == 0, deleted.stderr
    connect_and_publish(3)  # the remaining stack's device still connects and is archived
    assert StackDeployer(aws).record(STACK) is not None and StackDeployer(aws).record(other) is None


def _assert_nothing_of_the_stack_remains(aws, ca_id: str, bucket: str) -> None:
    iot = aws.client("iot")
    assert iot.list_topic_rules()["rules"] == []
    assert [p["policyName"] for p in iot.list_policies()["policies"]] == ["foreign-policy"]
    assert [t["thingName"] for t in iot.list_things()["things"]] == ["foreign-1"]
    with pytest.raises(ClientError, match="ResourceNotFound"):
        iot.describe_ca_certificate(certificateId=ca_id)
    assert iot.list_certificates_by_ca(caCertificateId=ca_id)["certificates"] == []
    with pytest.raises(ClientError, match="404|NoSuchBucket|Not Found"):
        aws.client("s3").head_bucket(Bucket=bucket)
    assert aws.client("lambda").list_functions()["Functions"] == []
    assert not [r for r in aws.client("iam").list_roles()["Roles"] if r["RoleName"].startswith(STACK)]
    assert not [g for g in aws.client("logs").describe_log_groups()["logGroups"] if STACK in g["logGroupName"]]
    with pytest.raises(ClientError, match="ParameterNotFound"):  # the emulator's record of the stack
        aws.client("ssm").get_parameter(Name=f"/jitr/local/stacks/{STACK}")


def _assert_untouched(iot, registry, foreign) -> None:
    assert iot.describe_ca_certificate(certificateId=foreign["ca"])["certificateDescription"]["status"] == "ACTIVE"
    assert registry.certificate(foreign["cert"].id).status == "ACTIVE"
    assert iot.list_thing_principals(thingName="foreign-1")["principals"] == [foreign["cert"].arn]
    attached = iot.list_attached_policies(target=foreign["cert"].arn)["policies"]
    assert [p["policyName"] for p in attached] == ["foreign-policy"]


def test_jitp_deploys_the_stack_first_for_its_role_and_delete_removes_the_policy_jitp_made(run, emulator, aws):
    deployed = run("deploy.sh", STACK, SAM_BUCKET, "DE", "dev-1", PROVISIONING="jitp")
    assert deployed.returncode == 0, deployed.stderr
    assert "(JITP)" in deployed.stdout
    line = deployed.stdout.strip().splitlines()[-1]
    connected = run("jitr", *shlex.split(line)[1:], "--json")  # the printed line, as the operator pastes it
    assert connected.returncode == 0, connected.stdout + connected.stderr
    iot = aws.client("iot")
    assert len(iot.list_policies()["policies"]) == 2  # the stack's, and the one JITP made from the template

    bucket = run.archive_bucket()
    wait_for(lambda: aws.client("s3").list_objects_v2(Bucket=bucket).get("Contents"))
    deleted = run("delete.sh", STACK, bucket)
    assert deleted.returncode == 0, deleted.stderr
    assert iot.list_policies()["policies"] == [] and iot.list_things()["things"] == []
    assert iot.list_certificates()["certificates"] == [] and iot.list_ca_certificates()["certificates"] == []


def test_deploy_with_users_uploads_the_web_page_and_delete_empties_its_bucket_and_removes_it(run, aws):
    deployed = run("deploy.sh", STACK, SAM_BUCKET, "DE", "box-1", PROVISIONING="api", USERS="true")
    assert deployed.returncode == 0, deployed.stderr
    described = json.loads(run("jitr", "fleet", "describe", "--stack", STACK, "--json").stdout)["outputs"]
    site = described["WebsiteUrl"]
    assert f"or on the web page: {site}" in deployed.stdout
    hosting = described["HostingBucketName"]
    s3 = aws.client("s3")
    config = json.loads(s3.get_object(Bucket=hosting, Key="config.json")["Body"].read())
    assert config["usersApiUrl"] == described["UsersApiUrl"] and config["userPoolId"] == described["UserPoolId"]
    assert {"index.html", "error.html", "src/main.js", "vendor/mqtt.esm.js"} <= {
        item["Key"] for item in s3.list_objects_v2(Bucket=hosting)["Contents"]
    }
    deleted = run("delete.sh", STACK, run.archive_bucket())
    assert deleted.returncode == 0, deleted.stderr
    assert "Emptied the web page's bucket" in deleted.stdout
    assert hosting not in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}


# -- bad arguments: a usage line, exit 2, nothing created --------------------------------------------------------

DEPLOY_ARGS = ["kit", SAM_BUCKET, "DE", "dev-1"]


@pytest.mark.parametrize(
    ("script", "args", "extra"),
    [
        ("deploy.sh", [], {}),  # no arguments
        ("deploy.sh", DEPLOY_ARGS[:3], {}),  # one missing
        ("deploy.sh", [*DEPLOY_ARGS, "extra"], {}),  # one too many
        ("deploy.sh", ["kit", SAM_BUCKET, "de", "dev-1"], {}),  # lower-case country
        ("deploy.sh", ["kit", SAM_BUCKET, "DEU", "dev-1"], {}),  # three-letter country
        ("deploy.sh", ["kit", SAM_BUCKET, "DE", "dev 1"], {}),  # a blank in the thing name
        ("deploy.sh", ["kit", SAM_BUCKET, "DE", "d" * 65], {}),  # a thing name longer than a CN may be
        ("deploy.sh", ["kit", SAM_BUCKET, "DE", "dev/1"], {}),  # a slash in the thing name
        ("deploy.sh", ["1kit", SAM_BUCKET, "DE", "dev-1"], {}),  # stack name starting with a digit
        ("deploy.sh", ["kit_1", SAM_BUCKET, "DE", "dev-1"], {}),  # underscore in the stack name
        ("deploy.sh", ["kit", "Bad_Bucket", "DE", "dev-1"], {}),  # not an S3 bucket name
        ("deploy.sh", DEPLOY_ARGS, {"PROVISIONING": "fleet"}),  # unknown provisioning
        ("delete.sh", ["kit"], {}),  # the bucket missing
        ("delete.sh", ["kit", "archive", "--keep-all"], {}),  # unknown option
        ("delete.sh", ["kit", "archive", "more"], {}),  # one too many
    ],
)
def test_bad_arguments_print_the_usage_and_exit_2_having_created_nothing(run, aws, tmp_path, script, args, extra):
    result = run(script, *args, **extra)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"usage: {ROOT / script}" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "pki").exists()
    assert aws.client("iot").list_ca_certificates()["certificates"] == []


@pytest.mark.parametrize("script", ["deploy.sh", "delete.sh"])
def test_an_emulator_that_is_not_running_stops_the_scripts_with_exit_6_before_anything_is_made(run, tmp_path, script):
    with socket.socket() as probe:  # a loopback port nothing listens on: the exports of a stopped emulator
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = DEPLOY_ARGS if script == "deploy.sh" else ["kit", "archive-bucket"]
    result = run(script, *args, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    assert result.returncode == 6, result.stdout + result.stderr
    assert f"Cannot reach http://127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "pki").exists()  # deploy.sh checks access before it creates the CA
