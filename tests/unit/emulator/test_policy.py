"""AWS IoT policy evaluation: what the emulator's broker lets a connected device do."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from base.errors import ExitStatus, InvalidInputError
from ca.jitp_template import device_policy
from emulator.iot.policy import (
    Action,
    Decision,
    InvalidPolicyError,
    Policy,
    RequestContext,
    certificate_attributes,
    client_arn,
    decide,
    is_allowed,
    topic_arn,
    topicfilter_arn,
)

REGION, ACCOUNT = "eu-west-1", "123456789012"
ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}"
THING = "${iot:Connection.Thing.ThingName}"

# The kit's default device policy, as the brief and the stack state it.
DEVICE_POLICY = """{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
 {"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/*"},
 {"Effect":"Allow","Action":"iot:Receive","Resource":"arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/*"},
 {"Effect":"Allow","Action":"iot:Subscribe",
  "Resource":"arn:aws:iot:*:*:topicfilter/devices/${iot:Connection.Thing.ThingName}/*"}]}"""


def context(client_id: str = "dev-1", thing_name: str | None = "dev-1", **fields) -> RequestContext:
    return RequestContext(REGION, ACCOUNT, client_id, thing_name, **fields)


def allow(action: Any, resource: Any, **extra) -> dict:  # Any: malformed documents too
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any, **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def policy(*statements: dict, version: str | None = "2012-10-17") -> Policy:
    document: dict = {"Statement": list(statements)}
    if version is not None:
        document["Version"] = version
    return Policy.parse(document)


def publish(ctx: RequestContext, topic: str, *policies: Policy) -> Decision:
    return decide(policies, Action.PUBLISH, topic_arn(ctx, topic), ctx)


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        DEVICE_POLICY,  # JSON text, as CreatePolicy takes it
        DEVICE_POLICY.encode(),  # bytes, as read from a file or a socket
        json.loads(DEVICE_POLICY),  # an already decoded object
    ],
)
def test_parse_accepts_json_text_bytes_and_objects(document):
    assert len(Policy.parse(document).statements) == 4


@pytest.mark.parametrize(
    "statement",
    [
        allow("iot:Publish", f"{ARN}:topic/a"),  # a single statement object
        [allow("iot:Publish", f"{ARN}:topic/a")],  # a list of one
    ],
)
def test_statement_may_be_a_single_object_or_a_list(statement):
    parsed = Policy.parse({"Version": "2012-10-17", "Statement": statement})
    assert publish(context(), "a", parsed) is Decision.ALLOW


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "is not valid JSON"),  # a syntax error
        ("[]", "must be a JSON object"),  # JSON, but not an object
        ({"Version": "2012-10-17"}, "needs a Statement"),  # no Statement at all
        ({"Version": "2012-10-17", "Statement": []}, "needs a Statement"),  # an empty list grants nothing, refuse it
        ({"Version": "2012-10-17", "Statement": ["Allow"]}, "statement 1 must be a JSON object"),
        ({"Version": "2020-01-01", "Statement": [allow("*", "*")]}, "has Version '2020-01-01'"),  # unknown grammar
        ({"Version": "2012-10-17", "Statement": [allow("*", "*", Effect="allow")]}, "Effect 'allow'"),  # case matters
        ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*"}]}, "exactly one of Action"),
        (
            {"Version": "2012-10-17", "Statement": [allow("*", "*", NotAction="iot:Connect")]},
            "exactly one of Action or NotAction",  # both Action and NotAction
        ),
        ({"Version": "2012-10-17", "Statement": [allow(["iot:Publish", 3], "*")]}, "not a string or list"),
        ({"Version": "2012-10-17", "Statement": [allow("Publish", "*")]}, "write actions as 'iot:Publish'"),
        ({"Version": "2012-10-17", "Statement": [allow("iot:Publish", "topic/a")]}, "use an ARN or"),
        (
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resources": "*"}]},
            "unknown element",  # a typo in an element name must not silently grant nothing
        ),
        ({"Version": "2012-10-17", "Statement": [allow("*", "*", Condition="x")]}, "Condition that is not"),
    ],
)
def test_malformed_documents_are_refused_with_a_sentence(document, message):
    with pytest.raises(InvalidPolicyError, match=message):
        Policy.parse(document)


def test_policy_errors_are_usage_errors_naming_the_policy():
    with pytest.raises(InvalidInputError, match="IoT policy 'dev-policy' is not valid JSON") as caught:
        Policy.parse("{", name="dev-policy")
    assert caught.value.exit_code is ExitStatus.USAGE


# --- the kit's default device policy -------------------------------------------------------------

DEVICE_REQUESTS = [
    (Action.CONNECT, client_arn, "dev-1", True),  # a thing connects as itself
    (Action.CONNECT, client_arn, "dev-2", False),  # ...and as no other client id
    (Action.PUBLISH, topic_arn, "devices/dev-1/telemetry", True),  # its own telemetry
    (Action.PUBLISH, topic_arn, "devices/dev-2/telemetry", False),  # another device's topic
    (Action.PUBLISH, topic_arn, "devices/dev-1", False),  # `/*` needs a level below the thing
    (Action.RECEIVE, topic_arn, "devices/dev-1/commands", True),
    (Action.SUBSCRIBE, topicfilter_arn, "devices/dev-1/#", True),  # `*` covers the literal `#`
    (Action.SUBSCRIBE, topicfilter_arn, "devices/+/telemetry", False),  # no wildcard over other things
    (Action.SUBSCRIBE, topicfilter_arn, "#", False),  # nor over everything
]


@pytest.mark.parametrize("document", [DEVICE_POLICY, device_policy()], ids=["brief", "ca.jitp_template"])
@pytest.mark.parametrize(("action", "arn_of", "name", "allowed"), DEVICE_REQUESTS)
def test_default_device_policy_confines_a_thing_to_its_own_client_id_and_topics(
    document, action, arn_of, name, allowed
):
    ctx = context(client_id="dev-1", thing_name="dev-1")
    assert is_allowed([Policy.parse(document)], action, arn_of(ctx, name), ctx) is allowed


def test_default_device_policy_refuses_a_certificate_with_no_thing_attached():
    ctx = context(client_id="dev-1", thing_name=None)
    assert (
        decide([Policy.parse(DEVICE_POLICY)], Action.CONNECT, client_arn(ctx, "dev-1"), ctx) is Decision.IMPLICIT_DENY
    )


@pytest.mark.parametrize(
    ("attributes", "allowed"),
    [({"caCertificateId": "ca-a"}, True), ({"caCertificateId": "ca-b"}, False), ({}, False)],
    ids=["own-ca", "another-ca", "no-owner"],
)
def test_a_jitp_device_policy_connects_only_through_a_thing_its_ca_owns(attributes, allowed):
    ctx = context(client_id="dev-1", thing_name="dev-1", thing_attributes=attributes)
    document = device_policy(owner_ca="ca-a")
    assert is_allowed([Policy.parse(document)], Action.CONNECT, client_arn(ctx, "dev-1"), ctx) is allowed


# --- allow, deny and the default ------------------------------------------------------------------


def test_no_policy_at_all_is_an_implicit_deny():
    assert publish(context(), "a") is Decision.IMPLICIT_DENY


def test_a_request_no_statement_covers_is_an_implicit_deny():
    assert publish(context(), "b", policy(allow("iot:Publish", f"{ARN}:topic/a"))) is Decision.IMPLICIT_DENY


@pytest.mark.parametrize(
    "policies",
    [
        [policy(allow("iot:*", "*"), deny("iot:Publish", f"{ARN}:topic/secret"))],  # deny after allow
        [policy(deny("iot:Publish", f"{ARN}:topic/secret"), allow("iot:*", "*"))],  # deny before allow
        [policy(allow("iot:*", "*")), policy(deny("iot:Publish", "*"))],  # deny from another attached policy
    ],
)
def test_explicit_deny_wins_over_any_allow(policies):
    assert publish(context(), "secret", *policies) is Decision.EXPLICIT_DENY


def test_any_attached_policy_may_grant():
    ctx = context()
    policies = (policy(allow("iot:Connect", "*")), policy(allow("iot:Publish", f"{ARN}:topic/a")))
    assert is_allowed((p for p in policies), Action.PUBLISH, topic_arn(ctx, "a"), ctx)  # any iterable, once


# --- wildcards ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "topic", "allowed"),
    [
        (f"{ARN}:topic/a/*", "a/b/c", True),  # `*` spans `/`, unlike MQTT's `+`
        (f"{ARN}:topic/a/*", "a/", True),  # `*` matches the empty string
        (f"{ARN}:topic/a/*", "a", False),  # but the `/` before it is literal
        (f"{ARN}:topic/*/status", "x/y/status", True),  # `*` in the middle
        (f"{ARN}:topic/sensor-?", "sensor-7", True),  # `?` is exactly one character
        (f"{ARN}:topic/sensor-?", "sensor-17", False),  # not two
        (f"{ARN}:topic/sensor-?", "sensor-", False),  # nor none
        (f"{ARN}:topic/Sensor", "sensor", False),  # resources are case-sensitive
        (f"{ARN}:topic/a.b", "aXb", False),  # regex characters are literal
        ("*", "anything/at/all", True),  # the whole ARN
        ("arn:aws:iot:*:*:topic/a", "a", True),  # any region, any account
        (f"arn:aws:iot:{REGION}:999999999999:topic/a", "a", False),  # another account
        ("arn:aws:iot:us-east-1:*:topic/a", "a", False),  # another region
    ],
)
def test_resource_wildcards_follow_iam(resource, topic, allowed):
    assert (publish(context(), topic, policy(allow("iot:Publish", resource))) is Decision.ALLOW) is allowed


@pytest.mark.parametrize(
    ("action_pattern", "action", "allowed"),
    [
        ("iot:*", Action.SUBSCRIBE, True),  # every iot action
        ("*", Action.CONNECT, True),  # every action of every service
        ("iot:Pub*", Action.PUBLISH, True),  # a prefix
        ("iot:Pub*", Action.SUBSCRIBE, False),  # ...that does not cover other actions
        ("iot:publish", Action.PUBLISH, True),  # action names are case-insensitive
        ("IOT:PUBLISH", Action.PUBLISH, True),
        ("iot:Publis?", Action.PUBLISH, True),  # `?` in action names too
        (["iot:Connect", "iot:Receive"], Action.RECEIVE, True),  # a list of actions
        ("iot:Publish", Action.RETAIN_PUBLISH, False),  # retained publishes need their own action
    ],
)
def test_action_names_match_case_insensitively_with_wildcards(action_pattern, action, allowed):
    ctx = context()
    parsed = policy(allow(action_pattern, "*"))
    assert is_allowed([parsed], action, topic_arn(ctx, "a"), ctx) is allowed


@pytest.mark.parametrize(
    ("resource", "topic_filter", "allowed"),
    [
        (f"{ARN}:topicfilter/a/+/status", "a/+/status", True),  # `+` in a policy is the character `+`
        (f"{ARN}:topicfilter/a/+/status", "a/b/status", False),  # ...not an MQTT wildcard
        (f"{ARN}:topicfilter/a/#", "a/#", True),  # the same for `#`
        (f"{ARN}:topicfilter/a/#", "a/b", False),
        (f"{ARN}:topicfilter/a/*", "a/+/b/#", True),  # IAM `*` covers filters with MQTT wildcards
        (f"{ARN}:topic/a/#", "a/#", False),  # a topic resource does not grant Subscribe
    ],
)
def test_mqtt_wildcards_are_literal_characters_in_topicfilter_resources(resource, topic_filter, allowed):
    ctx = context()
    parsed = policy(allow("iot:Subscribe", resource))
    assert is_allowed([parsed], Action.SUBSCRIBE, topicfilter_arn(ctx, topic_filter), ctx) is allowed


# --- policy variables -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_id", "topic", "allowed"),
    [
        ("sensor-9", "clients/sensor-9/out", True),  # its own client id
        ("sensor-9", "clients/sensor-8/out", False),  # not another's
        ("*", "clients/sensor-8/out", False),  # a client id of `*` is inserted literally, not as a wildcard
        ("*", "clients/*/out", True),  # ...so it only reaches the topic literally named so
    ],
)
def test_client_id_variable_is_replaced_by_the_connecting_client_id(client_id, topic, allowed):
    parsed = policy(allow("iot:Publish", f"{ARN}:topic/clients/${{iot:ClientId}}/out"))
    assert (publish(context(client_id=client_id), topic, parsed) is Decision.ALLOW) is allowed


def test_client_id_plus_reaches_the_mqtt_wildcard_filter_as_aws_warns():
    # basic-policy-variables: a client that connects as `+` may subscribe to my/+/topic.
    ctx = context(client_id="+", thing_name=None)
    parsed = policy(allow("iot:Subscribe", f"{ARN}:topicfilter/my/${{iot:ClientId}}/topic"))
    assert is_allowed([parsed], Action.SUBSCRIBE, topicfilter_arn(ctx, "my/+/topic"), ctx)


@pytest.mark.parametrize(
    ("variable", "fields", "topic", "allowed"),
    [
        ("iot:Certificate.Subject.CommonName", {"certificate_subject": {"CommonName": "dev-1"}}, "dev-1", True),
        ("iot:Certificate.Subject.Country", {"certificate_subject": {"Country": "DE"}}, "DE", True),
        ("iot:Certificate.Subject.Country", {"certificate_subject": {"Country": "DE"}}, "FR", False),
        ("iot:Certificate.Subject.Country", {"certificate_subject": {}}, "DE", False),  # absent: grants nothing
        ("iot:Certificate.Issuer.Organization", {"certificate_issuer": {"Organization": "Acme"}}, "Acme", True),
        ("iot:Connection.Thing.ThingTypeName", {"thing_type": "meter"}, "meter", True),
        ("iot:Connection.Thing.ThingTypeName", {}, "None", False),  # a thing with no type
        ("iot:Connection.Thing.Attributes[site]", {"thing_attributes": {"site": "berlin"}}, "berlin", True),
        ("iot:Connection.Thing.IsAttached", {}, "true", True),
        ("iot:Unknown.Variable", {}, "", False),  # a variable AWS does not define never resolves
    ],
)
def test_certificate_and_thing_variables_are_substituted(variable, fields, topic, allowed):
    parsed = policy(allow("iot:Publish", f"{ARN}:topic/${{{variable}}}"))
    assert (publish(context(**fields), topic, parsed) is Decision.ALLOW) is allowed


def test_thing_variables_have_no_value_without_an_attached_thing():
    ctx = context(thing_name=None, thing_type="meter", thing_attributes={"site": "berlin"})
    assert ctx.variable("iot:Connection.Thing.ThingTypeName") is None
    assert ctx.variable("iot:Connection.Thing.Attributes[site]") is None
    assert ctx.variable("iot:Connection.Thing.IsAttached") == "false"


def test_an_unresolved_variable_makes_a_deny_statement_not_apply_either():
    parsed = policy(allow("iot:Publish", "*"), deny("iot:Publish", f"{ARN}:topic/{THING}/*"))
    assert publish(context(thing_name=None), "x/y", parsed) is Decision.ALLOW


def test_one_unresolved_resource_does_not_spoil_the_others_in_its_list():
    parsed = policy(allow("iot:Publish", [f"{ARN}:topic/{THING}", f"{ARN}:topic/public"]))
    assert publish(context(thing_name=None), "public", parsed) is Decision.ALLOW


def test_special_character_variables_stand_for_literal_characters():
    parsed = policy(allow("iot:Publish", f"{ARN}:topic/what${{?}}/star${{*}}/${{$}}"))
    assert publish(context(), "what?/star*/$", parsed) is Decision.ALLOW
    assert publish(context(), "whatX/starX/$", parsed) is Decision.IMPLICIT_DENY


@pytest.mark.parametrize("version", ["2008-10-17", None])  # the old grammar, and IAM's default without Version
def test_variables_are_literal_text_under_the_old_policy_version(version):
    parsed = policy(allow("iot:Publish", f"{ARN}:topic/${{iot:ClientId}}"), version=version)
    assert publish(context(client_id="c1"), "c1", parsed) is Decision.IMPLICIT_DENY
    assert publish(context(client_id="c1"), "${iot:ClientId}", parsed) is Decision.ALLOW


# --- NotAction and NotResource --------------------------------------------------------------------


def test_not_action_covers_every_other_action():
    ctx = context()
    parsed = policy({"Effect": "Allow", "NotAction": "iot:Publish", "Resource": "*"})
    assert is_allowed([parsed], Action.RECEIVE, topic_arn(ctx, "a"), ctx)
    assert not is_allowed([parsed], Action.PUBLISH, topic_arn(ctx, "a"), ctx)


def test_not_resource_covers_every_other_resource():
    parsed = policy({"Effect": "Deny", "Action": "iot:Publish", "NotResource": f"{ARN}:topic/ok/*"}, allow("*", "*"))
    assert publish(context(), "ok/1", parsed) is Decision.ALLOW
    assert publish(context(), "elsewhere", parsed) is Decision.EXPLICIT_DENY


def test_not_resource_with_an_unresolved_variable_does_not_apply():
    parsed = policy({"Effect": "Allow", "Action": "iot:Publish", "NotResource": f"{ARN}:topic/{THING}"})
    assert publish(context(thing_name=None), "anything", parsed) is Decision.IMPLICIT_DENY


# --- conditions -----------------------------------------------------------------------------------

IS_ATTACHED = {"Bool": {"iot:Connection.Thing.IsAttached": ["true"]}}


@pytest.mark.parametrize(
    ("condition", "fields", "allowed"),
    [
        (IS_ATTACHED, {}, True),  # thing-policy-examples: connect only with an attached thing
        (IS_ATTACHED, {"thing_name": None}, False),
        ({"Bool": {"iot:Connection.Thing.IsAttached": True}}, {}, True),  # a JSON boolean reads as "true"
        ({"StringEquals": {"iot:ClientId": THING}}, {"client_id": "dev-1"}, True),  # variables in values
        ({"StringEquals": {"iot:ClientId": THING}}, {"client_id": "dev-2"}, False),
        (
            {"StringEqualsIgnoreCase": {"iot:Certificate.Subject.Country": "de"}},
            {"certificate_subject": {"Country": "DE"}},
            True,
        ),
        ({"StringLike": {"iot:ClientId": "dev-*"}}, {}, True),
        ({"StringNotLike": {"iot:ClientId": ["adm-*", "ops-*"]}}, {}, True),  # negated: none of the values
        ({"StringNotEquals": {"iot:Connection.Thing.ThingTypeName": "x"}}, {}, True),  # absent key passes a negation
        ({"StringEquals": {"iot:Connection.Thing.ThingTypeName": "x"}}, {}, False),  # ...and fails a test
        ({"StringEqualsIfExists": {"iot:Connection.Thing.ThingTypeName": "x"}}, {}, True),  # unless IfExists
        ({"Null": {"iot:Connection.Thing.ThingTypeName": "true"}}, {}, True),  # Null tests absence
        ({"Bool": {"iot:Connection.Thing.IsAttached": "true"}, "StringLike": {"iot:ClientId": "x*"}}, {}, False),
    ],
)
def test_conditions_on_iot_keys_are_evaluated(condition, fields, allowed):
    ctx = context(**fields)
    parsed = policy(allow("iot:Connect", "*", Condition=condition))
    assert is_allowed([parsed], Action.CONNECT, client_arn(ctx, ctx.client_id), ctx) is allowed


@pytest.mark.parametrize(
    "condition",
    [
        {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},  # an operator the emulator does not evaluate
        {"StringEquals": {"aws:SourceIp": "10.0.0.1"}},  # a key the emulator does not know
    ],
)
def test_a_condition_the_emulator_cannot_evaluate_fails_closed(condition):
    ctx = context()
    allowing = policy(allow("iot:Connect", "*", Condition=condition))
    denying = policy(allow("iot:Connect", "*"), deny("iot:Connect", "*", Condition=condition))
    assert decide([allowing], Action.CONNECT, client_arn(ctx, "dev-1"), ctx) is Decision.IMPLICIT_DENY
    assert decide([denying], Action.CONNECT, client_arn(ctx, "dev-1"), ctx) is Decision.EXPLICIT_DENY


def test_a_false_condition_beside_an_unknown_one_is_simply_false():
    ctx = context()
    condition = {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}, "Bool": {"iot:Connection.Thing.IsAttached": "false"}}
    denying = policy(allow("iot:Connect", "*"), deny("iot:Connect", "*", Condition=condition))
    assert decide([denying], Action.CONNECT, client_arn(ctx, "dev-1"), ctx) is Decision.ALLOW


# --- resource ARNs and certificate attributes -----------------------------------------------------


@pytest.mark.parametrize(
    ("arn_of", "region", "name", "expected"),
    [
        (client_arn, "eu-west-1", "dev-1", f"arn:aws:iot:eu-west-1:{ACCOUNT}:client/dev-1"),
        (topic_arn, "eu-west-1", "devices/dev-1/t", f"arn:aws:iot:eu-west-1:{ACCOUNT}:topic/devices/dev-1/t"),
        (topicfilter_arn, "eu-west-1", "a/+/#", f"arn:aws:iot:eu-west-1:{ACCOUNT}:topicfilter/a/+/#"),
        (topic_arn, "cn-north-1", "t", f"arn:aws-cn:iot:cn-north-1:{ACCOUNT}:topic/t"),  # the China partition
        (topic_arn, "us-gov-west-1", "t", f"arn:aws-us-gov:iot:us-gov-west-1:{ACCOUNT}:topic/t"),  # GovCloud
    ],
)
def test_resource_arns_are_built_like_aws(arn_of, region, name, expected):
    assert arn_of(RequestContext(region, ACCOUNT, "c"), name) == expected


def test_certificate_attributes_use_aws_iot_names():
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Berlin"),
            x509.NameAttribute(NameOID.COMMON_NAME, "dev-1"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Mitte"),  # no AWS IoT policy variable: left out
        ]
    )
    attributes = certificate_attributes(name)
    assert attributes == {"Country": "DE", "Organization": "Acme", "State": "Berlin", "CommonName": "dev-1"}
    ctx = context(certificate_subject=attributes)
    assert ctx.variable("iot:Certificate.Subject.CommonName") == "dev-1"
    assert ctx.variable("iot:certificate.subject.country") == "DE"  # key names are case-insensitive
