"""`jitr fleet reset` against moto: only the stack CA's fleet goes, re-runs are no-ops, --keep-ca, the prompt."""

from __future__ import annotations

import contextlib
import hashlib
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from base.certificates import certificate_id, to_pem
from base.errors import InvalidInputError
from ca.jitp_template import device_policy
from ca.mint import mint_device
from ca.store import PkiStore
from cloud.iot import IotApi
from cloud.s3 import empty_bucket
from fleet.reset import StackInfo, plan_reset, reset_fleet, stack_ca_id

POLICY = json.dumps(device_policy())
JITP_POLICY = hashlib.sha256(POLICY.encode()).hexdigest()  # how AWS names a JITP template's inline policy


@pytest.fixture
def iot(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "JITR_PKI_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with mock_aws(config={"iot": {"use_valid_cert": True}}):
        yield boto3.client("iot", region_name="us-east-1")


@pytest.fixture
def api(iot) -> IotApi:
    return IotApi(iot, sleep=lambda s: None)


class Fleet:
    """Registers CAs, device certificates, things and policies in moto the way JITR/JITP leave them."""

    def __init__(self, iot, now) -> None:
        self.iot, self.now = iot, now

    def ca(self, issuer) -> str:
        pem = to_pem(issuer.certificate).decode()
        return self.iot.register_ca_certificate(caCertificate=pem, setAsActive=True, allowAutoRegistration=True)[
            "certificateId"
        ]

    def device(self, issuer, thing: str | None, *, status="ACTIVE", policies=(), attach_thing=True) -> str:
        """A device certificate under ``issuer``'s CA; returns its ARN."""
        cert = mint_device(issuer, thing or "no-thing", country="DE", now=self.now, days=30).certificate
        arn = self.iot.register_certificate(
            certificatePem=to_pem(cert).decode(), caCertificatePem=to_pem(issuer.certificate).decode(), status=status
        )["certificateArn"]
        for policy in policies:
            self.policy(policy)
            self.iot.attach_policy(policyName=policy, target=arn)
        if thing and attach_thing:
            self.attach(thing, arn)
        return arn

    def attach(self, thing: str, arn: str) -> None:
        with contextlib.suppress(ClientError):  # already there
            self.iot.create_thing(thingName=thing)
        self.iot.attach_thing_principal(thingName=thing, principal=arn)

    def policy(self, name: str) -> None:
        with contextlib.suppress(ClientError):  # already there
            self.iot.create_policy(policyName=name, policyDocument=POLICY)


@pytest.fixture
def fleet(iot, now) -> Fleet:
    return Fleet(iot, now)


@pytest.fixture
def world(fleet, intermediate_issuer, root_issuer):
    """The stack's CA (the intermediate) with three devices, and another CA (the root) with one.

    dev-1 is active with the stack's policy; dev-2 is still PENDING_ACTIVATION with no thing; the
    thing "shared" is used by a stack certificate and by the other CA's certificate.
    """
    stack_ca, other_ca = fleet.ca(intermediate_issuer), fleet.ca(root_issuer)
    mine = [
        fleet.device(intermediate_issuer, "dev-1", policies=["stack-policy"]),
        fleet.device(intermediate_issuer, None, status="PENDING_ACTIVATION"),
        fleet.device(intermediate_issuer, "shared", policies=["stack-policy"]),
    ]
    other = fleet.device(root_issuer, "other-thing", policies=["other-policy"])
    fleet.attach("shared", other)
    return {"stack_ca": stack_ca, "other_ca": other_ca, "mine": mine, "other": other}


def _things(iot) -> set[str]:
    return {t["thingName"] for t in iot.list_things()["things"]}


def _by_ca(iot, ca_id) -> list[dict]:
    return iot.list_certificates_by_ca(caCertificateId=ca_id)["certificates"]


# -- what a reset deletes, and what it leaves ------------------------------------------------------------------


def test_reset_deletes_only_the_certificates_of_the_stacks_ca_and_the_things_only_they_use(api, iot, world):
    report = reset_fleet(api, world["stack_ca"], stack_policy="stack-policy")

    assert len(report["certificatesDeleted"]) == 3 and _by_ca(iot, world["stack_ca"]) == []
    assert report["thingsDeleted"] == ["dev-1"] and report["thingsKept"] == ["shared"]
    assert _things(iot) == {"shared", "other-thing"}
    assert iot.list_thing_principals(thingName="shared")["principals"] == [world["other"]]  # only detached
    other = iot.describe_certificate(certificateId=world["other"].rsplit("/", 1)[1])["certificateDescription"]
    assert other["status"] == "ACTIVE"
    assert [p["policyName"] for p in iot.list_attached_policies(target=world["other"])["policies"]] == ["other-policy"]
    assert report["caDeleted"] is True
    with pytest.raises(ClientError, match="ResourceNotFound"):
        iot.describe_ca_certificate(certificateId=world["stack_ca"])
    assert iot.describe_ca_certificate(certificateId=world["other_ca"])["certificateDescription"]["status"] == "ACTIVE"


def test_running_reset_again_is_a_no_op(api, iot, world):
    reset_fleet(api, world["stack_ca"], stack_policy="stack-policy")
    before = (_things(iot), iot.list_certificates()["certificates"], iot.list_policies()["policies"])

    again = reset_fleet(api, world["stack_ca"], stack_policy="stack-policy")

    assert again["certificatesDeleted"] == [] and again["thingsDeleted"] == [] and again["caDeleted"] is False
    assert (_things(iot), iot.list_certificates()["certificates"], iot.list_policies()["policies"]) == before


def test_keep_ca_keeps_the_registration_active_and_auto_registering(api, iot, world):
    report = reset_fleet(api, world["stack_ca"], keep_ca=True)
    assert _by_ca(iot, world["stack_ca"]) == [] and report["caDeleted"] is False and report["caKept"] is True
    assert iot.describe_ca_certificate(certificateId=world["stack_ca"])["certificateDescription"]["status"] == "ACTIVE"


def test_the_plan_counts_what_the_reset_deletes_and_changes_nothing(api, iot, world):
    plan = plan_reset(api, world["stack_ca"])
    assert len(plan.certificates) == 3 and plan.things == ("dev-1",) and plan.ca_registered
    assert plan.question(keep_ca=False) == (
        f"This deletes 3 certificates and 1 things registered under CA {world['stack_ca']}, "
        "and the CA registration itself; continue?"
    )
    assert len(_by_ca(iot, world["stack_ca"])) == 3 and _things(iot) == {"dev-1", "shared", "other-thing"}


def test_the_stacks_policy_is_detached_from_every_target_so_the_stack_can_delete_it(api, iot, fleet, world):
    iot.attach_policy(policyName="stack-policy", target=world["other"])  # an operator attached it by hand
    report = reset_fleet(api, world["stack_ca"], stack_policy="stack-policy")
    assert report["stackPolicyDetachedFrom"] == [world["other"]]
    assert iot.list_targets_for_policy(policyName="stack-policy")["targets"] == []
    assert "stack-policy" in {p["policyName"] for p in iot.list_policies()["policies"]}  # the stack deletes it


def test_jitp_policies_left_unused_are_deleted_and_named_policies_are_only_detached(
    api, iot, fleet, intermediate_issuer
):
    ca_id = fleet.ca(intermediate_issuer)
    fleet.device(intermediate_issuer, "jitp-1", policies=[JITP_POLICY, "operator-policy"])
    report = reset_fleet(api, ca_id)
    assert report["policiesDeleted"] == [JITP_POLICY]
    assert {p["policyName"] for p in iot.list_policies()["policies"]} == {"operator-policy"}


def test_a_jitp_policy_another_fleet_still_uses_is_kept(api, iot, fleet, intermediate_issuer, root_issuer):
    ca_id = fleet.ca(intermediate_issuer)
    fleet.ca(root_issuer)
    fleet.device(intermediate_issuer, "jitp-1", policies=[JITP_POLICY])
    fleet.device(root_issuer, "elsewhere", policies=[JITP_POLICY])  # same document, so the same hash name
    assert reset_fleet(api, ca_id)["policiesDeleted"] == []
    assert JITP_POLICY in {p["policyName"] for p in iot.list_policies()["policies"]}


def test_throttled_calls_are_retried(iot, world):
    class Throttling:
        """moto's client, answering ThrottlingException to the first two UpdateCertificate calls."""

        def __init__(self, client) -> None:
            self.client, self.throttled = client, 0

        def __getattr__(self, name):
            method = getattr(self.client, name)
            if name != "update_certificate":
                return method

            def throttled(**params):
                if self.throttled < 2:
                    self.throttled += 1
                    raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, name)
                return method(**params)

            return throttled

    client = Throttling(iot)
    report = reset_fleet(IotApi(client, sleep=lambda s: None), world["stack_ca"])
    assert client.throttled == 2 and len(report["certificatesDeleted"]) == 3


def test_certificate_lists_are_followed_across_pages():
    class Paged:
        def list_certificates_by_ca(self, caCertificateId, marker=None):  # noqa: N803 (the API's names)
            pages = {None: (["a", "b"], "m1"), "m1": (["c"], None)}
            items, following = pages[marker]
            answer = {"certificates": [{"certificateId": i} for i in items]}
            return answer | ({"nextMarker": following} if following else {})

    assert [c["certificateId"] for c in IotApi(Paged()).list_certificates_by_ca("x")] == ["a", "b", "c"]


def test_a_stack_and_a_ca_folder_that_disagree_are_refused():
    stack = StackInfo("s", parameters={"CaCertificateId": "a" * 64})
    assert stack_ca_id("s", stack, None) == "a" * 64
    assert stack_ca_id("s", None, "b" * 64) == "b" * 64
    with pytest.raises(InvalidInputError, match="deployed for CA a+, but the CA folder holds CA b+"):
        stack_ca_id("s", stack, "b" * 64)


# -- the archive bucket ------------------------------------------------------------------------------------------


def test_empty_bucket_deletes_every_version_and_delete_marker(iot):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="archive")
    s3.put_bucket_versioning(Bucket="archive", VersioningConfiguration={"Status": "Enabled"})
    for n in range(3):
        s3.put_object(Bucket="archive", Key="devices/dev-1/telemetry/1", Body=str(n).encode())
    s3.delete_object(Bucket="archive", Key="devices/dev-1/telemetry/1")  # a delete marker

    assert empty_bucket(s3, "archive") == 4
    listing = s3.list_object_versions(Bucket="archive")
    assert not listing.get("Versions") and not listing.get("DeleteMarkers")
    s3.delete_bucket(Bucket="archive")  # what the stack does next
    assert empty_bucket(s3, "archive") is None  # gone: nothing to do


# -- the command -------------------------------------------------------------------------------------------------


@pytest.fixture
def pki_fleet(iot, fleet, pki):
    """The CA of the pki fixture registered, with one active device; returns the CA id."""
    signer = PkiStore(pki).signer(None)
    ca_id = fleet.ca(signer)
    fleet.device(signer, "dev-1", policies=["stack-policy"])
    return ca_id


def test_the_command_asks_first_and_aborts_on_no(jitr, iot, pki, pki_fleet):
    result = jitr("fleet", "reset", "--stack", "gone", "--dir", pki, input="n\n")
    assert result.exit_code == 1
    assert f"This deletes 1 certificates and 1 things registered under CA {pki_fleet}" in result.stderr
    assert "Aborted; nothing was deleted." in result.stderr
    assert len(_by_ca(iot, pki_fleet)) == 1 and _things(iot) == {"dev-1"}


def test_the_command_with_yes_resets_and_prints_a_json_report(jitr, iot, pki, pki_fleet):
    result = jitr("fleet", "reset", "--stack", "gone", "--dir", pki, "--yes", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["caCertificateId"] == pki_fleet == certificate_id(PkiStore(pki).signer_certificate())
    assert len(report["certificatesDeleted"]) == 1 and report["thingsDeleted"] == ["dev-1"] and report["caDeleted"]
    again = jitr("fleet", "reset", "--stack", "gone", "--dir", pki, "--json")  # nothing left: no prompt
    assert again.exit_code == 0 and json.loads(again.stdout)["certificatesDeleted"] == []


def test_the_command_refuses_a_bucket_that_is_not_the_stacks_archive_before_deleting_anything(
    jitr, iot, pki, pki_fleet
):
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="sam-artifacts")
    result = jitr("fleet", "reset", "--stack", "gone", "--dir", pki, "--bucket", "sam-artifacts", "--yes")
    assert result.exit_code == 2
    assert "cannot be checked to be its archive bucket; refusing to empty it" in result.stderr
    assert len(_by_ca(iot, pki_fleet)) == 1


STACK_TEMPLATE = """
Parameters:
  CaCertificateId: {Type: String}
Resources:
  ArchiveBucket: {Type: AWS::S3::Bucket}
Outputs:
  ArchiveBucketName: {Value: !Ref ArchiveBucket}
  DevicePolicyName: {Value: stack-policy}
"""


def test_the_command_finds_the_stack_in_cloudformation_and_empties_its_archive(
    jitr, iot, fleet, intermediate_issuer, monkeypatch
):
    # moto has no ListProvisioningTemplates: the claim templates' part is tests/e2e/test_claim_and_rotation.py's
    monkeypatch.setattr("cli.fleet_app.claim_templates", lambda api, info: [])
    ca_id = fleet.ca(intermediate_issuer)
    fleet.device(intermediate_issuer, "dev-1", policies=["stack-policy"])
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    cloudformation.create_stack(
        StackName="kit",
        TemplateBody=STACK_TEMPLATE,
        Parameters=[{"ParameterKey": "CaCertificateId", "ParameterValue": ca_id}],
    )
    described = json.loads(jitr("fleet", "describe", "--stack", "kit", "--json").stdout)
    bucket = described["outputs"]["ArchiveBucketName"]
    assert described["exists"] and described["parameters"] == {"CaCertificateId": ca_id}
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=bucket, Key="devices/dev-1/t/1", Body=b"{}")

    result = jitr("fleet", "reset", "--stack", "kit", "--bucket", bucket, "--yes", "--json")  # no --dir: the stack's CA

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["caCertificateId"] == ca_id and report["objectsDeleted"] == 1 and report["caDeleted"]
    assert _by_ca(iot, ca_id) == [] and _things(iot) == set()
    assert json.loads(jitr("fleet", "describe", "--stack", "nope", "--json").stdout)["exists"] is False
