"""JITP templates: the kit's default, and the refusal of templates certificates cannot fill."""

from __future__ import annotations

import json

import pytest

from base.errors import InvalidTemplateError
from ca.jitp_template import (
    check_template,
    device_policy,
    fillable_parameters,
    parse_template,
    render_jitp_template,
    template_body,
)


def test_default_template_names_the_thing_by_cn_and_activates_the_certificate():
    template = render_jitp_template(has_country=True)
    resources = template["Resources"]
    assert resources["thing"]["Properties"]["ThingName"] == {"Ref": "AWS::IoT::Certificate::CommonName"}
    assert resources["certificate"]["Properties"] == {
        "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
        "Status": "ACTIVE",
    }
    check_template(template, fillable=fillable_parameters(has_country=True))


def test_default_template_without_country_declares_no_country():
    template = render_jitp_template(has_country=False)
    assert "AWS::IoT::Certificate::Country" not in template["Parameters"]
    check_template(template, fillable=fillable_parameters(has_country=False))


def test_device_policy_is_least_privilege():
    policy = device_policy()
    resources = [s["Resource"] for s in policy["Statement"]]
    actions = {s["Action"] for s in policy["Statement"]}
    assert actions == {"iot:Connect", "iot:Publish", "iot:Receive", "iot:Subscribe"}
    assert all("${iot:Connection.Thing.ThingName}" in r for r in resources)
    assert "*" not in resources and "iot:*" not in actions


def test_country_trap_is_refused_when_certificates_have_no_country():
    template = render_jitp_template(has_country=True)
    with pytest.raises(InvalidTemplateError, match="Country, but this CA's device certificates do not carry it"):
        check_template(template, fillable=fillable_parameters(has_country=False))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        # a parameter that is neither a certificate field nor defaulted
        (lambda t: t["Parameters"].update({"Location": {"Type": "String"}}), "without a Default"),
        # a certificate parameter AWS does not define
        (lambda t: t["Parameters"].update({"AWS::IoT::Certificate::Email": {"Type": "String"}}), "not a certificate"),
        # a Ref to something undeclared
        (lambda t: t["Resources"]["thing"]["Properties"].update({"ThingName": {"Ref": "Nope"}}), "refers to Nope"),
        # an unknown resource type
        (lambda t: t["Resources"].update({"x": {"Type": "AWS::S3::Bucket"}}), "has type"),
        # policy with both name and document
        (lambda t: t["Resources"]["policy"]["Properties"].update({"PolicyName": "p"}), "exactly one of PolicyName"),
        # no certificate resource
        (lambda t: t["Resources"].pop("certificate"), "exactly one AWS::IoT::Certificate"),
        # over AWS's 10,240 characters
        (
            lambda t: t["Resources"]["thing"]["Properties"].update({"AttributePayload": {"x": "y" * 10300}}),
            "at most 10240",
        ),
    ],
)
def test_templates_aws_would_reject_are_refused(mutate, match):
    template = render_jitp_template(has_country=True)
    mutate(template)
    with pytest.raises(InvalidTemplateError, match=match):
        check_template(template, fillable=fillable_parameters(has_country=True))


def test_parse_accepts_a_registration_config_wrapping_the_body():
    body = template_body(render_jitp_template(has_country=False))
    wrapped = json.dumps({"templateBody": body, "roleArn": "arn:aws:iam::123456789012:role/r"})
    assert parse_template(wrapped) == json.loads(body)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_parse_refuses_what_is_not_a_template_object(text):
    with pytest.raises(InvalidTemplateError):
        parse_template(text)


def test_a_template_for_a_ca_marks_new_things_as_its_own_and_leaves_existing_ones_alone():
    template = render_jitp_template(has_country=True, ca_certificate_id="ab" * 32)
    thing = template["Resources"]["thing"]
    assert thing["Properties"]["AttributePayload"]["caCertificateId"] == "ab" * 32
    assert thing["OverrideSettings"]["AttributePayload"] == "DO_NOTHING"  # another CA's owner is never overwritten
    policy = json.loads(template["Resources"]["policy"]["Properties"]["PolicyDocument"])
    connect = next(s for s in policy["Statement"] if s["Action"] == "iot:Connect")
    assert connect["Condition"]["StringEquals"] == {"iot:Connection.Thing.Attributes[caCertificateId]": "ab" * 32}
    check_template(template, fillable=fillable_parameters(has_country=True))
