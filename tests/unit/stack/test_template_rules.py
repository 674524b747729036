"""rules/ is the one source of the topic rules: the SAM template, and what the emulator is given, agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

import rules
from ca.jitp_template import device_policy, stack_topic_root

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = yaml_parse((ROOT / "sam" / "template.yaml").read_text())
# Each placeholder of rules/*.json, as sam/template.yaml fills it.
BINDINGS = {
    "CaCertificateId": {"Ref": "CaCertificateId"},
    "ActivationFunctionArn": {"Fn::GetAtt": ["ActivationFunction", "Arn"]},
    "StackName": {"Ref": "AWS::StackName"},
    "ArchiveBucketName": {"Ref": "ArchiveBucket"},
    "ArchiveRoleArn": {"Fn::GetAtt": ["ArchiveRuleRole", "Arn"]},
    "ErrorLogGroupName": {"Ref": "RuleErrorLogGroup"},
    "ErrorRoleArn": {"Fn::GetAtt": ["RuleErrorRole", "Arn"]},
    "RetireFunctionArn": {"Fn::GetAtt": ["RotationRetireFunction", "Arn"]},
    "PresenceTableName": {"Ref": "PresenceTable"},
    "PresenceRoleArn": {"Fn::GetAtt": ["PresenceRuleRole", "Arn"]},
}
RESOURCES = {
    "registration": "RegistrationRule",
    "archive": "ArchiveRule",
    "rotation": "RotationRule",
    "presence": "PresenceRule",
}
CA_ID = "ab" * 32
VALUES = {
    "CaCertificateId": CA_ID,
    "ActivationFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:activation",
    "StackName": "fleet-a",
    "ArchiveBucketName": "archive-bucket",
    "ArchiveRoleArn": "arn:aws:iam::123456789012:role/archive",
    "ErrorLogGroupName": "rule-errors",
    "ErrorRoleArn": "arn:aws:iam::123456789012:role/errors",
}


@pytest.mark.parametrize("key", list(rules.RULE_FILES))
def test_the_template_rule_equals_the_rule_in_rules(key):
    resource = TEMPLATE["Resources"][RESOURCES[key]]
    assert resource["Type"] == "AWS::IoT::TopicRule"
    assert resource["Properties"]["TopicRulePayload"] == rules.to_cloudformation(rules.load(key), BINDINGS)


def test_the_template_has_no_other_topic_rules():
    kinds = {name for name, res in TEMPLATE["Resources"].items() if res["Type"] == "AWS::IoT::TopicRule"}
    assert kinds == set(RESOURCES.values())


def test_every_rule_uses_sql_2016_and_has_an_error_action():
    for rule in rules.load_all().values():
        assert rule.payload["awsIotSqlVersion"] == "2016-03-23"
        assert rule.payload["errorAction"] and rule.payload["ruleDisabled"] is False


def test_render_fills_every_placeholder_for_create_topic_rule():
    payload = rules.render(rules.load("registration"), VALUES)
    assert payload["sql"] == f"SELECT * FROM '$aws/events/certificates/registered/{CA_ID}'"
    assert payload["actions"] == [{"lambda": {"functionArn": VALUES["ActivationFunctionArn"]}}]
    archive = rules.render(rules.load("archive"), VALUES)
    assert archive["actions"][0]["s3"] == {
        "bucketName": "archive-bucket",
        "key": "${topic()}/${timestamp()}_${newuuid()}",  # substitution templates are IoT's, left as they are
        "roleArn": VALUES["ArchiveRoleArn"],
    }


def test_render_names_a_missing_value():
    with pytest.raises(rules.RuleDefinitionError, match="CaCertificateId"):
        rules.render(rules.load("registration"), {k: v for k, v in VALUES.items() if k != "CaCertificateId"})


def test_an_unknown_rule_is_named():
    with pytest.raises(rules.RuleDefinitionError, match="registration, archive, rotation"):
        rules.load("telemetry")


def test_a_placeholder_inside_text_becomes_fn_sub_with_iot_templates_escaped():
    rule = rules.RuleDefinition("t", "t", "", {"X": ""}, {"key": "{{X}}/${topic()}"})
    assert rules.to_cloudformation(rule, {"X": {"Fn::GetAtt": ["Bucket", "Arn"]}}) == {
        "Key": {"Fn::Sub": "${Bucket.Arn}/${!topic()}"}
    }


def test_rule_names_are_valid_for_iot():
    archive = rules.load("archive")
    assert rules.rule_name(archive) == "jitr_archive"
    assert rules.rule_name(archive, "my-stack") == "mystack_jitr_archive"


def test_archive_keys_cannot_collide():
    key = rules.load("archive").payload["actions"][0]["s3"]["key"]
    assert "${topic()}" in key and "${timestamp()}" in key  # browsable by topic and time
    assert "${newuuid()}" in key  # two messages in one millisecond on one topic still get two objects


def test_the_archive_rule_hears_every_topic_the_stacks_device_policy_lets_a_device_publish_to():
    publish = next(s for s in device_policy(stack_topic_root("fleet-a"))["Statement"] if s["Action"] == "iot:Publish")
    assert publish["Resource"].endswith(":topic/devices/fleet-a/${iot:Connection.Thing.ThingName}/*")
    assert rules.render(rules.load("archive"), VALUES)["sql"] == "SELECT * FROM 'devices/fleet-a/+/#'"


def test_the_emulator_parses_the_rules():
    rules_sql = pytest.importorskip("emulator.rules.sql")
    substitution = pytest.importorskip("emulator.rules.substitution")
    registration = rules_sql.Rule.parse(rules.render(rules.load("registration"), VALUES)["sql"])
    assert registration.matches_topic(f"$aws/events/certificates/registered/{CA_ID}")
    assert not registration.matches_topic(f"$aws/events/certificates/registered/{'cd' * 32}")
    archive = rules.render(rules.load("archive"), VALUES)
    parsed = rules_sql.Rule.parse(archive["sql"])
    assert parsed.matches_topic("devices/fleet-a/dev-1/telemetry") and parsed.matches_topic("devices/fleet-a/dev-1/a/b")
    assert not parsed.matches_topic("devices/fleet-b/dev-1/telemetry")  # another stack's device
    assert not parsed.matches_topic("other/fleet-a/dev-1/telemetry")
    substitution.Template.parse(archive["actions"][0]["s3"]["key"])
