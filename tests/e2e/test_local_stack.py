"""``jitr local deploy``/``destroy`` semantics: updates as CloudFormation makes them (unchanged resources stay, a
policy document changes in place and rolls back), the archive kept, a destroy that tolerates what is gone."""

from __future__ import annotations

import json

import pytest

from base.errors import AwsError
from emulator.cloudformation.deploy import StackDeployer, StackError
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
    # the rule that names the CA keeps its name: its payload is replaced in place, as CloudFormation updates a rule
    assert registration == [n for n in _physical(first, "AWS::IoT::TopicRule") if "Registration" in n]
    archive = [n for n in _physical(first, "AWS::IoT::TopicRule") if "Archive" in n]
    assert archive == [n for n in _physical(second, "AWS::IoT::TopicRule") if "Archive" in n]  # unchanged: kept


def test_redeploying_unchanged_keeps_a_device_policy_attached_to_a_certificate_and_the_rest_as_it_was(aws, emulator):
    deployer = StackDeployer(aws)
    first = deployer.deploy(TEMPLATE, "again", {"CaCertificateId": CA_A})
    iot = aws.client("iot")
    device = iot.create_keys_and_certificate(setAsActive=True)
    policy = _physical(first, "AWS::IoT::Policy")[0]
    iot.attach_policy(policyName=policy, target=device["certificateArn"])  # as the activation function does

    second = deployer.deploy(TEMPLATE, "again", {"CaCertificateId": CA_A})

    assert [item["physicalId"] for item in second["resources"]] == [item["physicalId"] for item in first["resources"]]
    assert iot.list_attached_policies(target=device["certificateArn"])["policies"][0]["policyName"] == policy
    assert second["outputs"] == first["outputs"]


def test_redeploying_a_function_whose_code_changed_replaces_it(aws, emulator, tmp_path):
    import shutil

    copy = tmp_path / "kit"
    shutil.copytree(TEMPLATE.parents[1] / "functions", copy / "functions")
    shutil.copytree(TEMPLATE.parent, copy / "sam")
    deployer = StackDeployer(aws)
    first = deployer.deploy(copy / "sam" / TEMPLATE.name, "code", {"CaCertificateId": CA_A})
    (copy / "functions" / "jitr_activation" / "app.py").open("a").write("\n# a new release\n")

    second = deployer.deploy(copy / "sam" / TEMPLATE.name, "code", {"CaCertificateId": CA_A})

    functions = {r["logicalId"]: r["physicalId"] for r in second["resources"] if r["type"] == "AWS::Lambda::Function"}
    before = {r["logicalId"]: r["physicalId"] for r in first["resources"] if r["type"] == "AWS::Lambda::Function"}
    assert functions["ActivationFunction"] != before["ActivationFunction"]  # its code changed: deployed again
    assert {k: v for k, v in functions.items() if k != "ActivationFunction"} == {
        k: v for k, v in before.items() if k != "ActivationFunction"
    }
    names = {f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]}
    assert functions["ActivationFunction"] in names and before["ActivationFunction"] not in names


POLICY_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Topic:
    Type: String
Resources:
  Policy:
    Type: AWS::IoT::Policy
    Properties:
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: iot:Publish
            Resource: !Sub arn:aws:iot:*:*:topic/${Topic}
"""


def test_a_changed_policy_document_is_a_new_default_version_of_the_same_policy_still_attached(aws, emulator, tmp_path):
    template = tmp_path / "policy.yaml"
    template.write_text(POLICY_TEMPLATE)
    deployer, iot = StackDeployer(aws), aws.client("iot")
    name = _physical(deployer.deploy(template, "doc", {"Topic": "t0"}), "AWS::IoT::Policy")[0]
    device = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName=name, target=device["certificateArn"])

    for topic in ("t1", "t2", "t3", "t4", "t5", "t6"):  # past AWS IoT's 5 versions: the oldest goes
        assert _physical(deployer.deploy(template, "doc", {"Topic": topic}), "AWS::IoT::Policy") == [name]

    assert "topic/t6" in iot.get_policy(policyName=name)["policyDocument"]
    versions = iot.list_policy_versions(policyName=name)["policyVersions"]
    assert sorted(int(v["versionId"]) for v in versions) == [3, 4, 5, 6, 7]
    assert [v["versionId"] for v in versions if v["isDefaultVersion"]] == ["7"]
    assert iot.list_attached_policies(target=device["certificateArn"])["policies"][0]["policyName"] == name


def test_a_stack_deployed_by_an_earlier_version_updates_its_attached_device_policy_in_place(aws, emulator):
    deployer, iot, ssm = StackDeployer(aws), aws.client("iot"), aws.client("ssm")
    first = deployer.deploy(TEMPLATE, "older", {"CaCertificateId": CA_A})
    for item in first["resources"]:  # the record as the emulator kept it before it recorded what decides updates
        for key in ("fingerprint", "replacementKey"):
            item.pop(key, None)
    ssm.put_parameter(Name="/jitr/local/stacks/older", Value=json.dumps(first), Type="String", Overwrite=True)
    device = iot.create_keys_and_certificate(setAsActive=True)
    policy = _physical(first, "AWS::IoT::Policy")[0]
    iot.attach_policy(policyName=policy, target=device["certificateArn"])

    second = deployer.deploy(TEMPLATE, "older", {"CaCertificateId": CA_A})

    assert _physical(second, "AWS::IoT::Policy") == [policy]
    assert iot.list_attached_policies(target=device["certificateArn"])["policies"][0]["policyName"] == policy


def test_an_update_that_fails_further_on_rolls_the_policy_back_to_its_version_before(aws, emulator, tmp_path):
    template = tmp_path / "policy-and-rule.yaml"
    template.write_text(
        POLICY_TEMPLATE.replace("Parameters:\n", "Parameters:\n  Sql:\n    Type: String\n")
        + """
  Rule:
    Type: AWS::IoT::TopicRule
    DependsOn: Policy
    Properties:
      TopicRulePayload:
        Sql: !Ref Sql
        Actions: []
"""
    )
    deployer, iot = StackDeployer(aws), aws.client("iot")
    good = {"Topic": "t0", "Sql": "SELECT * FROM 'a/b'"}
    name = _physical(deployer.deploy(template, "undo", good), "AWS::IoT::Policy")[0]

    with pytest.raises(AwsError, match="SqlParseException"):
        deployer.deploy(template, "undo", {"Topic": "t1", "Sql": "SELECT FROM WHERE"})  # the rule does not parse

    assert "topic/t0" in iot.get_policy(policyName=name)["policyDocument"]
    assert [v["versionId"] for v in iot.list_policy_versions(policyName=name)["policyVersions"]] == ["1"]
    again = deployer.deploy(template, "undo", good)  # the record is the stack before the failed update
    assert _physical(again, "AWS::IoT::Policy") == [name]
    assert [v["versionId"] for v in iot.list_policy_versions(policyName=name)["policyVersions"]] == ["1"]


UPDATE_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Days:
    Type: Number
  NamedDays:
    Type: Number
  FirstSql:
    Type: String
  SecondSql:
    Type: String
Resources:
  Logs:
    Type: AWS::Logs::LogGroup
    Properties:
      RetentionInDays: !Ref Days
  NamedLogs:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: named-logs
      RetentionInDays: !Ref NamedDays
  First:
    Type: AWS::IoT::TopicRule
    Properties:
      TopicRulePayload:
        Sql: !Ref FirstSql
        Actions: []
  Second:
    Type: AWS::IoT::TopicRule
    DependsOn: [Logs, NamedLogs, First]
    Properties:
      TopicRulePayload:
        Sql: !Ref SecondSql
        Actions: []
"""
GOOD = {"Days": "7", "NamedDays": "7", "FirstSql": "SELECT * FROM 'a/1'", "SecondSql": "SELECT * FROM 'b'"}


def _id(record: dict, logical: str) -> str:
    return next(r["physicalId"] for r in record["resources"] if r["logicalId"] == logical)


def _log_groups(aws) -> list[str]:
    return sorted(g["logGroupName"] for g in aws.client("logs").describe_log_groups()["logGroups"])


def test_a_failed_update_leaves_replaced_resources_as_they_were_and_rolls_back_rule_changes(aws, emulator, tmp_path):
    template = tmp_path / "update.yaml"
    template.write_text(UPDATE_TEMPLATE)
    deployer, iot = StackDeployer(aws), aws.client("iot")
    first = deployer.deploy(template, "swap", GOOD)
    groups = _log_groups(aws)

    with pytest.raises(AwsError, match="SqlParseException"):  # Second does not parse: the update fails there
        deployer.deploy(template, "swap", GOOD | {"Days": "14", "FirstSql": "SELECT * FROM 'a/2'", "SecondSql": "x"})

    by_id = sorted(deployer.record("swap")["resources"], key=lambda r: r["logicalId"])
    assert by_id == sorted(first["resources"], key=lambda r: r["logicalId"])  # the stack as before the update
    assert _log_groups(aws) == groups  # the replacement was made first, then deleted; the old one stays
    assert iot.get_topic_rule(ruleName=_id(first, "First"))["rule"]["sql"] == "SELECT * FROM 'a/1'"  # rolled back


def test_an_update_replaces_changed_resources_and_changes_rules_and_parameters_in_place(aws, emulator, tmp_path):
    template = tmp_path / "update.yaml"
    template.write_text(UPDATE_TEMPLATE)
    deployer, iot = StackDeployer(aws), aws.client("iot")
    first = deployer.deploy(template, "swap", GOOD)

    changed = {"Days": "14", "NamedDays": "14", "FirstSql": "SELECT * FROM 'a/2'"}
    updated = deployer.deploy(template, "swap", GOOD | changed)

    assert _id(updated, "Logs") != _id(first, "Logs")  # a generated name: made anew, the old deleted
    assert _id(updated, "NamedLogs") == "named-logs"  # a name the template fixes: the old one went first
    assert _log_groups(aws) == sorted([_id(updated, "Logs"), "named-logs"])
    assert _id(updated, "First") == _id(first, "First")  # ReplaceTopicRule, as CloudFormation updates a rule
    assert iot.get_topic_rule(ruleName=_id(first, "First"))["rule"]["sql"] == "SELECT * FROM 'a/2'"


def test_destroying_a_stack_whose_policy_a_certificate_has_names_the_policy_and_can_be_run_again(aws, emulator):
    deployer, iot = StackDeployer(aws), aws.client("iot")
    record = deployer.deploy(TEMPLATE, "held", {"CaCertificateId": CA_A})
    policy = _physical(record, "AWS::IoT::Policy")[0]
    device = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName=policy, target=device["certificateArn"])

    with pytest.raises(StackError, match=f"policy {policy} is still attached to certificates; detach it first"):
        deployer.destroy("held")

    iot.detach_policy(policyName=policy, target=device["certificateArn"])
    deployer.destroy("held")  # the rest went the first time; the policy goes now
    assert deployer.record("held") is None
    assert policy not in [p["policyName"] for p in iot.list_policies()["policies"]]


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


def _cli_env(emulator) -> dict[str, str]:
    return emulator.environment()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["CaCertificateId=nothex"], "CaCertificateId failed to satisfy constraint: 64 lowercase hexadecimal"),
        (["CaCertificateId="], "CaCertificateId failed to satisfy constraint"),
        ([], "Parameters: [CaCertificateId] must have values"),
        ([f"CaCertificateId={CA_A}", "ArchiveBucketName=Bad_Bucket"], "ArchiveBucketName failed to satisfy"),
        ([f"CaCertificateId={CA_A}", "FleetParameterName=nope"], "FleetParameterName failed to satisfy"),
        ([f"CaCertificateId={CA_A}", "Country=DE"], "The template has no parameter Country"),
    ],
    ids=["not-hex", "empty", "missing", "bad-bucket", "bad-ssm-name", "unknown"],
)
def test_local_deploy_refuses_parameters_cloudformation_refuses_and_creates_nothing(
    jitr, aws, emulator, overrides, message
):
    args = ["local", "deploy", "--stack", "checked", "--template", TEMPLATE]
    result = jitr(*args, *(["--parameter-overrides", *overrides] if overrides else []), env=_cli_env(emulator))
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert StackDeployer(aws).record("checked") is None
    assert aws.client("s3").list_buckets()["Buckets"] == [] and aws.client("iot").list_policies()["policies"] == []


def test_a_redeploy_with_a_bad_parameter_leaves_the_deployed_stack_as_it_was(jitr, aws, emulator):
    deployer = StackDeployer(aws)
    first = deployer.deploy(TEMPLATE, "kept", {"CaCertificateId": CA_A})
    args = ["local", "deploy", "--stack", "kept", "--template", TEMPLATE, "--parameter-overrides", "CaCertificateId=x"]
    assert jitr(*args, env=_cli_env(emulator)).exit_code == 2
    assert deployer.record("kept")["resources"] == first["resources"]
    assert len(aws.client("iot").list_topic_rules()["rules"]) == 3  # registration, archive, rotation


def test_parameter_overrides_take_several_values_after_one_flag_as_sam_deploy_does(jitr, aws, emulator):
    args = ["local", "deploy", "--stack", "sam-style", "--template", TEMPLATE, "--json", "--parameter-overrides"]
    given = [f"CaCertificateId={CA_A}", "ParameterKey=ArchiveBucketName,ParameterValue=sam-style-archive"]
    result = jitr(*args, *given, env=_cli_env(emulator))
    assert result.exit_code == 0, result.output
    assert StackDeployer(aws).record("sam-style")["outputs"]["ArchiveBucketName"] == "sam-style-archive"


@pytest.mark.parametrize(
    ("template", "stack", "message"),
    [
        ("hostname", "kit", "is not a CloudFormation or SAM template"),  # a file such as /etc/hostname
        ("/nonexistent/template.yaml", "kit", "Cannot read the template"),
        (TEMPLATE, "bad name", "Invalid stack name 'bad name'"),
    ],
    ids=["not-a-template", "missing", "bad-stack-name"],
)
def test_local_deploy_of_something_that_is_not_a_template_or_a_stack_name_is_a_usage_error(
    jitr, emulator, tmp_path, template, stack, message
):
    if template == "hostname":
        template = tmp_path / "hostname"
        template.write_text("build-host-7\n")
    args = [
        "local",
        "deploy",
        "--stack",
        stack,
        "--template",
        template,
        "--parameter-overrides",
        f"CaCertificateId={CA_A}",
    ]
    result = jitr(*args, env=_cli_env(emulator))
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_the_stack_makes_the_activation_claim_table_and_destroy_removes_it(aws, emulator):
    deployer = StackDeployer(aws)
    record = deployer.deploy(TEMPLATE, "claims", {"CaCertificateId": CA_A})
    table = _physical(record, "AWS::DynamoDB::Table")[0]
    ddb = aws.client("dynamodb")
    assert ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expiresAt",
    }
    function = aws.client("lambda").get_function(FunctionName=_physical(record, "AWS::Lambda::Function")[0])
    assert function["Configuration"]["Environment"]["Variables"]["CLAIMS_TABLE"] == table

    deployer.destroy("claims")

    assert table not in ddb.list_tables()["TableNames"]
