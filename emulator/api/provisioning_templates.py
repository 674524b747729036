"""Provisioning templates (JITP and fleet provisioning), which moto does not have.

CreateProvisioningTemplate, DescribeProvisioningTemplate, ListProvisioningTemplates,
UpdateProvisioningTemplate and DeleteProvisioningTemplate, plus the check of a CA's
``registrationConfig`` (``templateBody`` or the name of a JITP template). Templates have one
version (1); the template-version operations are not emulated.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from moto.core.utils import utcnow

from emulator.api.calls import Call, page
from emulator.store.errors import DeleteConflict, InvalidRequest, ResourceAlreadyExists, ResourceNotFound, choice
from emulator.store.records import ProvisioningTemplate
from emulator.store.state import RegionState

NAME_RE = re.compile(r"^[0-9A-Za-z_-]+$")
MAX_NAME = 36
MAX_BODY = 10240
MAX_DESCRIPTION = 500
JITP, FLEET_PROVISIONING = "JITP", "FLEET_PROVISIONING"
TYPES = (FLEET_PROVISIONING, JITP)


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > MAX_NAME:
        raise InvalidRequest(
            f"Template name {name!r} is not valid: use 1 to {MAX_NAME} letters, digits, '_' or '-' (^[0-9A-Za-z_-]+$)."
        )
    return name


def check_body(body: Any, member: str = "templateBody") -> str:
    """A template body AWS IoT accepts: a JSON object of at most 10240 characters."""
    if not isinstance(body, str):
        raise InvalidRequest(f"{member} must be a string holding the template's JSON.")
    if len(body) > MAX_BODY:
        raise InvalidRequest(f"{member} is {len(body)} characters; at most {MAX_BODY} are allowed.")
    try:
        document = json.loads(body)
    except ValueError:
        raise InvalidRequest(f"{member} is not valid JSON.") from None
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise InvalidRequest(f"{member} must be a JSON object with a Resources object.")
    return body


def _hook(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("targetArn"), str):
        raise InvalidRequest("preProvisioningHook needs a targetArn (the Lambda function's ARN).")
    return {key: value[key] for key in ("targetArn", "payloadVersion") if key in value}


def find_template(state: RegionState, name: str) -> ProvisioningTemplate:
    found = state.templates.get(check_name(name))
    if found is None:
        raise ResourceNotFound(f"The provisioning template {name} does not exist.")
    return found


def check_registration_config(state: RegionState, config: Any) -> dict[str, str]:
    """A CA's registrationConfig: templateBody or the name of a JITP template, and roleArn."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidRequest("registrationConfig must be an object.")
    body, name, role = config.get("templateBody"), config.get("templateName"), config.get("roleArn")
    if body is not None and name is not None:
        raise InvalidRequest("registrationConfig takes templateBody or templateName, not both.")
    if body is not None:
        check_body(body, "registrationConfig.templateBody")
    if name is not None and find_template(state, name).type != JITP:
        raise InvalidRequest(f"The provisioning template {name} is not of type JITP.")
    if role is not None and not isinstance(role, str):
        raise InvalidRequest("registrationConfig.roleArn must be a string.")
    return {key: value for key, value in (("templateBody", body), ("templateName", name), ("roleArn", role)) if value}


def create_provisioning_template(call: Call) -> dict[str, Any]:
    name = check_name(call.body.get("templateName"))
    body = check_body(call.text("templateBody", required=True))
    role = call.text("provisioningRoleArn", required=True, max_length=2048)
    kind = choice(call.text("type"), TYPES, "type") or FLEET_PROVISIONING
    hook = _hook(call.body.get("preProvisioningHook"))
    if hook and kind == JITP:
        raise InvalidRequest("A JITP template cannot have a preProvisioningHook.")
    now = utcnow()
    template = ProvisioningTemplate(
        name=name,
        arn=call.arn(f"provisioningtemplate/{name}"),
        body=body,
        role_arn=role,
        type=kind,
        description=call.text("description", max_length=MAX_DESCRIPTION) or "",
        enabled=bool(call.body.get("enabled", False)),
        pre_provisioning_hook=hook,
        created=now,
        modified=now,
    )
    with call.state.lock:
        existing = call.state.templates.get(name)
        if existing is not None:
            raise ResourceAlreadyExists(
                f"The provisioning template {name} already exists.", resource_id=name, resource_arn=existing.arn
            )
        call.state.templates[name] = template
    return {"templateArn": template.arn, "templateName": name, "defaultVersionId": template.default_version_id}


def describe_provisioning_template(call: Call) -> dict[str, Any]:
    return find_template(call.state, call.path["templateName"]).description_dict()


def list_provisioning_templates(call: Call) -> dict[str, Any]:
    size = call.query_int("maxResults", 250, low=1, high=250)
    templates = sorted(call.state.templates.values(), key=lambda template: template.created)
    items, token = page(templates, call.query.get("nextToken"), size)
    answer: dict[str, Any] = {"templates": [template.summary() for template in items]}
    if token:
        answer["nextToken"] = token
    return answer


def update_provisioning_template(call: Call) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "description" in call.body:
        changes["description"] = call.text("description", max_length=MAX_DESCRIPTION) or ""
    if "enabled" in call.body:
        changes["enabled"] = bool(call.body["enabled"])
    if "provisioningRoleArn" in call.body:
        changes["role_arn"] = call.text("provisioningRoleArn", max_length=2048)
    version = call.body.get("defaultVersionId")
    if version is not None and version != 1:
        raise InvalidRequest(f"Version {version} of the template does not exist (the emulator keeps version 1 only).")
    hook = _hook(call.body.get("preProvisioningHook"))
    remove_hook = call.body.get("removePreProvisioningHook") is True
    if hook and remove_hook:
        raise InvalidRequest("Give preProvisioningHook or removePreProvisioningHook, not both.")
    with call.state.lock:
        template = find_template(call.state, call.path["templateName"])
        if hook:
            if template.type == JITP:
                raise InvalidRequest("A JITP template cannot have a preProvisioningHook.")
            changes["pre_provisioning_hook"] = hook
        if remove_hook:
            changes["pre_provisioning_hook"] = None
        call.state.templates[template.name] = replace(template, modified=utcnow(), **changes)
    return {}


def delete_provisioning_template(call: Call) -> dict[str, Any]:
    with call.state.lock:
        template = find_template(call.state, call.path["templateName"])
        for ca in call.backend.ca_certificates.values():
            if (ca.registration_config or {}).get("templateName") == template.name:
                raise DeleteConflict(
                    f"The provisioning template {template.name} is used by CA certificate {ca.certificate_id}; "
                    "remove it from the CA's registrationConfig first."
                )
        del call.state.templates[template.name]
    return {}


HANDLERS = {
    "CreateProvisioningTemplate": create_provisioning_template,
    "DescribeProvisioningTemplate": describe_provisioning_template,
    "ListProvisioningTemplates": list_provisioning_templates,
    "UpdateProvisioningTemplate": update_provisioning_template,
    "DeleteProvisioningTemplate": delete_provisioning_template,
}
