"""``jitr local deploy``/``destroy`` semantics: a re-deploy keeps the archive, a destroy tolerates what is gone."""

from __future__ import annotations

import pytest

from emulator.stack import StackDeployer, StackError
from tests.e2e.conftest import TEMPLATE

CA_A = "a" * 64
CA_B = "b" * 64


def _physical(record: dict, kind: str) -> list[str]:
    return [item["physicalId"] for item in record["resources"] if item["type"] == kind]


def test_redeploying_with_another_ca_keeps_the_archive_bucket_and_its_objects(aws, emulator):
    deployer = StackDeployer(aws)
    first = deployer.deploy(TEMPLATE, "keep", {"CaCertificateId": CA_A})
    bucket = first["outputs"]["ArchiveBucketName"]
    s3 = aws.client("s3")
    s3.put_object(Bucket=bucket, Key="devices/dev-1/telemetry/1", Body=b"{}")

    second = deployer.deploy(TEMPLATE, "keep", {"CaCertificateId": CA_B})

    assert second["outputs"]["ArchiveBucketName"] == bucket
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["devices/dev-1/telemetry/1"]
    rules = {r["ruleName"]: r for r in aws.client("iot").list_topic_rules()["rules"]}
    registration = [n for n in _physical(second, "AWS::IoT::TopicRule") if "Registration" in n]
    assert registration and CA_B in rules[registration[0]]["topicPattern"]
    assert set(_physical(first, "AWS::IoT::TopicRule")).isdisjoint(rules)  # the old rules are gone


def test_destroy_skips_resources_already_deleted_and_can_be_run_after_a_partial_failure(aws, emulator):
    deployer = StackDeployer(aws)
    record = deployer.deploy(TEMPLATE, "gone", {"CaCertificateId": CA_A})
    iot = aws.client("iot")
    for rule in _physical(record, "AWS::IoT::TopicRule"):
        iot.delete_topic_rule(ruleName=rule)
    aws.client("lambda").delete_function(FunctionName=_physical(record, "AWS::Lambda::Function")[0])

    deployer.destroy("gone")

    assert deployer.record("gone") is None
    assert not any(p["policyName"] in _physical(record, "AWS::IoT::Policy") for p in iot.list_policies()["policies"])


def test_destroy_refuses_a_non_empty_bucket_and_says_which(aws, emulator):
    deployer = StackDeployer(aws)
    record = deployer.deploy(TEMPLATE, "full", {"CaCertificateId": CA_A})
    bucket = record["outputs"]["ArchiveBucketName"]
    aws.client("s3").put_object(Bucket=bucket, Key="k", Body=b"x")

    with pytest.raises(StackError, match=f"ArchiveBucket: bucket {bucket} is not empty"):
        deployer.destroy("full")

    s3 = aws.client("s3")
    for version in s3.list_object_versions(Bucket=bucket).get("Versions", []):
        s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
    deployer.destroy("full")
    assert deployer.record("full") is None
