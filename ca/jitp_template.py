"""JITP provisioning templates: the kit's least-privilege default, and the check that a
template can be filled by the CA's device certificates (the Country trap, AWS-FACTS.md #5)."""

from __future__ import annotations

import json
import re

from base.errors import InvalidInputError, InvalidTemplateError
from base.names import DEFAULT_TOPIC_ROOT, OWNER_ATTRIBUTE

MAX_TEMPLATE_CHARS = 10240
CERT_PARAMETER_PREFIX = "AWS::IoT::Certificate::"
# Parameters JITP fills from the device certificate's subject (plus the certificate id).
CERT_PARAMETERS = (
    "Country",
    "Organization",
    "OrganizationalUnit",
    "DistinguishedNameQualifier",
    "StateName",
    "CommonName",
    "SerialNumber",
    "Id",
)
RESOURCE_TYPES = ("AWS::IoT::Thing", "AWS::IoT::Certificate", "AWS::IoT::Policy")
THING = "${iot:Connection.Thing.ThingName}"
TOPIC_ROOT_RE = re.compile(r"[A-Za-z0-9_.:-]+(/[A-Za-z0-9_.:-]+)*")


def stack_topic_root(stack: str) -> str:
    """Where a stack's devices publish (``devices/<stack>``): the stack's archive rule hears only that root."""
    return f"{DEFAULT_TOPIC_ROOT}/{stack}"


def check_topic_root(topic_root: str) -> str:
    """A topic root is levels of letters, digits and ``_.:-`` joined by ``/``: no wildcard, no empty level."""
    if not TOPIC_ROOT_RE.fullmatch(topic_root) or topic_root.startswith("$"):
        raise InvalidInputError(
            f"{topic_root!r} is not a topic root: use levels of letters, digits, _ . : - joined by /, "
            "such as devices/my-stack."
        )
    return topic_root


def device_policy(topic_root: str = DEFAULT_TOPIC_ROOT, *, owner_ca: str | None = None) -> dict:
    """The least-privilege device policy: a thing connects as itself and uses only its own topics,
    ``<topic_root>/<thing>/...`` (a stack's devices: :func:`stack_topic_root`).

    With ``owner_ca`` (a CA certificate id) the device connects only through a thing whose
    :data:`~base.names.OWNER_ATTRIBUTE` names that CA: the JITP template's guard against a thing of another CA.
    """
    check_topic_root(topic_root)
    arn = "arn:aws:iot:*:*:"
    condition: dict = {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    if owner_ca is not None:
        condition["StringEquals"] = {f"iot:Connection.Thing.Attributes[{OWNER_ATTRIBUTE}]": owner_ca}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{arn}client/{THING}", "Condition": condition},
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{arn}topic/{topic_root}/{THING}/*"},
            {"Effect": "Allow", "Action": "iot:Receive", "Resource": f"{arn}topic/{topic_root}/{THING}/*"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{arn}topicfilter/{topic_root}/{THING}/*"},
        ],
    }


def fillable_parameters(*, has_country: bool) -> set[str]:
    """The certificate parameters the kit's device certificates carry: CN, Id, and C when set."""
    names = {"CommonName", "Id"} | ({"Country"} if has_country else set())
    return {CERT_PARAMETER_PREFIX + name for name in names}


def render_jitp_template(
    *,
    has_country: bool,
    policy: dict | None = None,
    topic_root: str = DEFAULT_TOPIC_ROOT,
    ca_certificate_id: str | None = None,
) -> dict:
    """A JITP template: thing named by the CN, the policy attached, the certificate ACTIVE.

    A template cannot look at the registry, so it cannot refuse a thing of another CA the way the
    activation function does. With ``ca_certificate_id`` it guards instead: a new thing gets the CA in
    its owner attribute, an existing thing's attributes are left as they are (``DO_NOTHING``), and the
    default policy lets a device connect only through a thing whose owner attribute names this CA. So a
    device of another CA whose CN names an existing thing is provisioned by AWS IoT but refused at
    CONNECT, and the thing's own devices are untouched.
    """
    parameters = {
        f"{CERT_PARAMETER_PREFIX}CommonName": {"Type": "String"},
        f"{CERT_PARAMETER_PREFIX}Id": {"Type": "String"},
    }
    thing_properties: dict = {"ThingName": {"Ref": f"{CERT_PARAMETER_PREFIX}CommonName"}}
    attributes: dict = {}
    if has_country:
        parameters[f"{CERT_PARAMETER_PREFIX}Country"] = {"Type": "String"}
        attributes["country"] = {"Ref": f"{CERT_PARAMETER_PREFIX}Country"}
    if ca_certificate_id is not None:
        attributes[OWNER_ATTRIBUTE] = ca_certificate_id
    if attributes:
        thing_properties["AttributePayload"] = attributes
    return {
        "Parameters": parameters,
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": thing_properties,
                "OverrideSettings": {
                    "AttributePayload": "MERGE" if ca_certificate_id is None else "DO_NOTHING",
                    "ThingTypeName": "REPLACE",
                    "ThingGroups": "DO_NOTHING",
                },
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": f"{CERT_PARAMETER_PREFIX}Id"}, "Status": "ACTIVE"},
                "OverrideSettings": {"Status": "DO_NOTHING"},
            },
            "policy": {
                "Type": "AWS::IoT::Policy",
                "Properties": {
                    "PolicyDocument": json.dumps(
                        policy or device_policy(topic_root, owner_ca=ca_certificate_id), separators=(",", ":")
                    )
                },
            },
        },
    }


def template_body(template: dict) -> str:
    """The compact JSON string AWS IoT takes as ``templateBody``."""
    return json.dumps(template, separators=(",", ":"))


def _refs(node) -> set[str]:
    if isinstance(node, dict):
        found = {node["Ref"]} if isinstance(node.get("Ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def parse_template(text: str | bytes, source: str = "the template") -> dict:
    """Parse a template (JSON, or a registrationConfig wrapping ``templateBody``)."""
    try:
        template = json.loads(text)
    except ValueError as exc:
        raise InvalidTemplateError(f"{source} is not valid JSON: {exc}.") from exc
    if isinstance(template, dict) and isinstance(template.get("templateBody"), str):
        return parse_template(template["templateBody"], source)
    if not isinstance(template, dict):
        raise InvalidTemplateError(f"{source} must be a JSON object with Parameters and Resources.")
    return template


def check_template(template: dict, *, fillable: set[str], source: str = "the template") -> dict:
    """Return ``template`` if AWS IoT would accept it and the CA's certificates can fill it."""
    body = template_body(template)
    if len(body) > MAX_TEMPLATE_CHARS:
        raise InvalidTemplateError(f"{source} is {len(body)} characters; AWS IoT takes at most {MAX_TEMPLATE_CHARS}.")
    parameters = template.get("Parameters", {})
    resources = template.get("Resources")
    if not isinstance(parameters, dict) or not isinstance(resources, dict) or not resources:
        raise InvalidTemplateError(f"{source} needs a Resources object (and Parameters, if any, as an object).")
    for name, spec in parameters.items():
        if name.startswith(CERT_PARAMETER_PREFIX):
            if name[len(CERT_PARAMETER_PREFIX) :] not in CERT_PARAMETERS:
                raise InvalidTemplateError(
                    f"{source} declares {name}, which is not a certificate parameter AWS IoT knows."
                )
            if name not in fillable:
                raise InvalidTemplateError(
                    f"{source} declares {name}, but this CA's device certificates do not carry it, so JITP "
                    "would fail and leave devices PENDING_ACTIVATION."
                )
        elif not isinstance(spec, dict) or "Default" not in spec:
            raise InvalidTemplateError(f"{source} declares {name} without a Default; JITP has nothing to fill it with.")
    undeclared = sorted(ref for ref in _refs(resources) if ref not in parameters and ref not in resources)
    if undeclared:
        raise InvalidTemplateError(f"{source} refers to {undeclared[0]}, which it does not declare.")
    types: dict[str, list] = {}
    for name, resource in resources.items():
        kind = resource.get("Type") if isinstance(resource, dict) else None
        if kind not in RESOURCE_TYPES:
            raise InvalidTemplateError(
                f"{source}: resource {name} has type {kind!r}; use one of {', '.join(RESOURCE_TYPES)}."
            )
        types.setdefault(kind, []).append(resource)
        if kind == "AWS::IoT::Policy":
            props = resource.get("Properties", {})
            if ("PolicyName" in props) == ("PolicyDocument" in props):
                raise InvalidTemplateError(
                    f"{source}: policy {name} needs exactly one of PolicyName or PolicyDocument."
                )
    if len(types.get("AWS::IoT::Certificate", [])) != 1:
        raise InvalidTemplateError(f"{source} needs exactly one AWS::IoT::Certificate resource.")
    return template
