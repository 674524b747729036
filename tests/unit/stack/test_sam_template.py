"""sam/template.yaml: the resources the kit promises, least privilege, and cfn-lint and `sam validate --lint` pass."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from ca.jitp_template import device_policy, stack_topic_root

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE_PATH = ROOT / "sam" / "template.yaml"
TEMPLATE = yaml_parse(TEMPLATE_PATH.read_text())
RESOURCES = TEMPLATE["Resources"]
BIN = Path(sys.executable).parent
FUNCTION_DIR = ROOT / "functions" / "jitr_activation"


class _ManagedPolicies:
    """What SAM would look up in IAM: the one managed policy it attaches to function roles."""

    def load(self):
        return {"AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}


@pytest.fixture
def translated(monkeypatch) -> dict:
    """The template as CloudFormation sees it after the SAM transform (CodeUri stands in for a package)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # SAM fills AWS::Region from the session
    template = yaml_parse(TEMPLATE_PATH.read_text())
    template["Resources"]["ActivationFunction"]["Properties"]["CodeUri"] = "s3://bucket/activation.zip"
    template["Resources"]["ProvisioningFunction"]["Properties"]["CodeUri"] = "s3://bucket/provisioning.zip"
    template["Resources"]["UsersFunction"]["Properties"]["CodeUri"] = "s3://bucket/provisioning.zip"
    for name in ("RotationHookFunction", "RotationRetireFunction"):
        template["Resources"][name]["Properties"]["CodeUri"] = "s3://bucket/rotation.zip"
    return transform(template, {}, _ManagedPolicies())


def statements(resources: dict):
    """Every IAM statement in roles and bucket policies, with where it came from (``Fn::If`` branches too)."""
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        documents = [props.get("PolicyDocument")] + [
            policy.get("PolicyDocument")
            for item in props.get("Policies", [])
            for policy in (item["Fn::If"][1:] if "Fn::If" in item else [item])
            if isinstance(policy, dict)
        ]
        for document in filter(None, documents):
            for statement in document.get("Statement", []):
                yield name, statement


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_it_is_a_sam_template_with_the_kit_parameters():
    assert TEMPLATE["Transform"] == "AWS::Serverless-2016-10-31"
    assert re.fullmatch(TEMPLATE["Parameters"]["CaCertificateId"]["AllowedPattern"], "ab" * 32)
    assert TEMPLATE["Parameters"]["FleetParameterName"]["Default"] == ""
    assert TEMPLATE["Parameters"]["ArchiveBucketName"]["Default"] == ""


def test_the_resources_are_there():
    kinds = {name: resource["Type"] for name, resource in RESOURCES.items()}
    assert kinds == {
        "ActivationFunction": "AWS::Serverless::Function",
        "ActivationFunctionLogGroup": "AWS::Logs::LogGroup",
        "ActivationClaims": "AWS::DynamoDB::Table",
        "RegistrationRule": "AWS::IoT::TopicRule",
        "ActivationInvokePermission": "AWS::Lambda::Permission",
        "ArchiveBucket": "AWS::S3::Bucket",
        "ArchiveBucketPolicy": "AWS::S3::BucketPolicy",
        "ArchiveRuleRole": "AWS::IAM::Role",
        "ArchiveRule": "AWS::IoT::TopicRule",
        "RuleErrorLogGroup": "AWS::Logs::LogGroup",
        "RuleErrorRole": "AWS::IAM::Role",
        "DevicePolicy": "AWS::IoT::Policy",
        "ProvisioningRole": "AWS::IAM::Role",
        "ProvisioningHttpApi": "AWS::Serverless::HttpApi",
        "ProvisioningFunction": "AWS::Serverless::Function",
        "ProvisioningFunctionLogGroup": "AWS::Logs::LogGroup",
        "FleetTable": "AWS::DynamoDB::Table",
        "RegionMapParameter": "AWS::SSM::Parameter",
        "ApiUrlParameter": "AWS::SSM::Parameter",
        "RotationHookFunction": "AWS::Serverless::Function",
        "RotationHookFunctionLogGroup": "AWS::Logs::LogGroup",
        "RotationRetireFunction": "AWS::Serverless::Function",
        "RotationRetireFunctionLogGroup": "AWS::Logs::LogGroup",
        "RotationRule": "AWS::IoT::TopicRule",
        "RotationInvokePermission": "AWS::Lambda::Permission",
        "IotLoggingRole": "AWS::IAM::Role",
        "UserPool": "AWS::Cognito::UserPool",
        "UserPoolClient": "AWS::Cognito::UserPoolClient",
        "BindingsTable": "AWS::DynamoDB::Table",
        "UsersHttpApi": "AWS::Serverless::HttpApi",
        "UsersFunction": "AWS::Serverless::Function",
        "UsersFunctionAssumesDeviceRole": "AWS::IAM::Policy",
        "UsersFunctionLogGroup": "AWS::Logs::LogGroup",
        "UserDeviceRole": "AWS::IAM::Role",
        "PresenceTable": "AWS::DynamoDB::Table",
        "PresenceRuleRole": "AWS::IAM::Role",
        "PresenceRule": "AWS::IoT::TopicRule",
        "HostingBucket": "AWS::S3::Bucket",
        "HostingBucketPolicy": "AWS::S3::BucketPolicy",
    }
    assert set(TEMPLATE["Outputs"]) >= {
        "ArchiveBucketName",
        "DevicePolicyName",
        "RegistrationRuleName",
        "ArchiveRuleName",
        "ProvisioningRoleArn",
        "ActivationFunctionName",
    }


PROVISIONING_API = (
    "ProvisioningHttpApi",
    "ProvisioningFunction",
    "ProvisioningFunctionLogGroup",
    "FleetTable",
    "RegionMapParameter",
    "ApiUrlParameter",
)


def test_the_provisioning_api_is_off_unless_asked_for():
    assert TEMPLATE["Parameters"]["ProvisioningApi"]["Default"] == "false"
    assert TEMPLATE["Parameters"]["AllowServerKeys"]["Default"] == "false"
    assert {RESOURCES[name].get("Condition") for name in PROVISIONING_API} == {"HasProvisioningApi"}
    for output in ("ProvisioningApiUrl", "FleetTableName"):
        assert TEMPLATE["Outputs"][output]["Condition"] == "HasProvisioningApi"


def test_the_provisioning_function_may_touch_its_table_and_parameters_only_and_no_iot_wildcard_action():
    statements = RESOURCES["ProvisioningFunction"]["Properties"]["Policies"][0]["Statement"]
    by_sid = {statement["Sid"]: statement for statement in statements}
    assert by_sid["FleetRows"]["Resource"] == {"Fn::GetAtt": ["FleetTable", "Arn"]}
    assert sorted(by_sid["FleetRows"]["Action"]) == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    actions = [action for statement in statements for action in statement["Action"]]
    assert not any(action.endswith(":*") or action == "*" for action in actions)
    assert by_sid["RegionMap"]["Action"] == "ssm:GetParameters"


def test_the_provisioning_routes_have_throttling():
    api = RESOURCES["ProvisioningHttpApi"]["Properties"]["DefaultRouteSettings"]
    assert api["ThrottlingRateLimit"] > 0 and api["ThrottlingBurstLimit"] > 0
    events = RESOURCES["ProvisioningFunction"]["Properties"]["Events"]
    routes = sorted((e["Properties"]["Method"], e["Properties"]["Path"]) for e in events.values())
    assert routes == [("DELETE", "/devices/{serial}"), ("GET", "/config"), ("POST", "/devices/{serial}/certificate")]


def test_the_function_is_the_code_in_functions_on_a_current_python_runtime():
    props = RESOURCES["ActivationFunction"]["Properties"]
    code = (TEMPLATE_PATH.parent / props["CodeUri"]).resolve()
    assert code == FUNCTION_DIR and props["Handler"] == "app.lambda_handler"
    assert "def lambda_handler(event, context)" in (code / "app.py").read_text()
    function = TEMPLATE["Globals"]["Function"]
    assert function["Runtime"] in ("python3.12", "python3.13")
    assert function["Environment"]["Variables"] == {
        "CA_CERTIFICATE_ID": {"Ref": "CaCertificateId"},
        "POLICY_NAME": {"Ref": "DevicePolicy"},
        "FLEET_PARAMETER_NAME": {"Ref": "FleetParameterName"},
    }
    for name in function["Environment"]["Variables"]:
        assert f'"{name}"' in (code / "app.py").read_text()  # the names the function reads


def test_the_function_is_self_contained():
    for module in FUNCTION_DIR.glob("*.py"):
        imports = re.findall(r"^\s*(?:from|import) ([\w.]+)", module.read_text(), re.MULTILINE)
        local = {path.stem for path in FUNCTION_DIR.glob("*.py")}
        stdlib = set(sys.stdlib_module_names) | {"__future__"}
        assert {name.split(".")[0] for name in imports} <= stdlib | local | {"boto3", "botocore"}, module.name


def test_iot_may_invoke_the_function_only_from_the_registration_rule():
    props = RESOURCES["ActivationInvokePermission"]["Properties"]
    assert props["Action"] == "lambda:InvokeFunction" and props["Principal"] == "iot.amazonaws.com"
    assert props["FunctionName"] == {"Fn::GetAtt": ["ActivationFunction", "Arn"]}
    assert props["SourceArn"] == {"Fn::GetAtt": ["RegistrationRule", "Arn"]}
    assert props["SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_the_archive_bucket_is_encrypted_and_private():
    props = RESOURCES["ArchiveBucket"]["Properties"]
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4


def substituted(node, stack: str):
    """``node`` with each Fn::Sub of ``AWS::StackName`` resolved, as CloudFormation does (``${!x}`` is ``${x}``)."""
    if isinstance(node, dict) and set(node) == {"Fn::Sub"}:
        return node["Fn::Sub"].replace("${AWS::StackName}", stack).replace("${!", "${")
    if isinstance(node, dict):
        return {key: substituted(value, stack) for key, value in node.items()}
    if isinstance(node, list):
        return [substituted(item, stack) for item in node]
    return node


def test_the_device_policy_is_the_kit_default_under_the_stacks_topic_root():
    document = substituted(RESOURCES["DevicePolicy"]["Properties"]["PolicyDocument"], "fleet-a")
    assert document == device_policy(stack_topic_root("fleet-a")) == device_policy("devices/fleet-a")
    assert substituted(TEMPLATE["Outputs"]["DeviceTopicRoot"]["Value"], "fleet-a") == "devices/fleet-a"


def test_a_stacks_archive_rule_hears_only_its_own_devices_topics():
    sql = substituted(RESOURCES["ArchiveRule"]["Properties"]["TopicRulePayload"]["Sql"], "fleet-a")
    assert sql == "SELECT * FROM 'devices/fleet-a/+/#'"


def test_the_provisioning_role_is_for_iot_with_things_registration():
    props = RESOURCES["ProvisioningRole"]["Properties"]
    [trust] = props["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "iot.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    [managed] = props["ManagedPolicyArns"]
    assert managed["Fn::Sub"].endswith(":iam::aws:policy/service-role/AWSIoTThingsRegistration")


# IoT actions that have no resource type in AWS's service authorization reference: Resource "*" is their only form
WITHOUT_RESOURCE_TYPE = {
    "iot:RegisterThing",
    "iot:CreateCertificateFromCsr",
    "iot:CreateKeysAndCertificate",
    "iot:DescribeEndpoint",
}


def test_no_allow_statement_grants_a_wildcard_action_or_resource(translated):
    found = list(statements(translated["Resources"]))
    assert len(found) >= 6
    for name, statement in found:
        if statement["Effect"] != "Allow":
            continue  # the bucket policy's Deny of s3:* without TLS only takes away
        assert not any("*" in action for action in as_list(statement["Action"])), name
        if "*" in as_list(statement["Resource"]):
            assert set(as_list(statement["Action"])) <= WITHOUT_RESOURCE_TYPE, name


def _allowed(translated: dict, resource: str) -> set[str]:
    return {
        action
        for name, statement in statements(translated["Resources"])
        if name == resource and statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
    }


def test_the_function_may_call_exactly_the_operations_its_code_calls(translated):
    code = "\n".join(path.read_text() for path in FUNCTION_DIR.glob("*.py"))
    calls = set(re.findall(r"\b(iot|ssm|dynamodb)\.([a-z]+(?:_[a-z]+)+)\b", code))  # iot.describe_certificate, ...
    actions = {f"{service}:{op.title().replace('_', '')}" for service, op in calls}
    assert actions == {
        "iot:DescribeCertificate",
        "iot:CreateThing",
        "iot:DescribeThing",  # whose thing it is, when CreateThing says it exists (another fleet's?)
        "iot:ListThingPrincipals",
        "iot:AttachPolicy",
        "iot:AttachThingPrincipal",
        "iot:UpdateCertificate",
        "ssm:GetParameter",
        "dynamodb:PutItem",  # the certificate's claim (functions/jitr_activation/claims.py)
        "dynamodb:DeleteItem",
    }
    assert _allowed(translated, "ActivationFunctionRole") == actions


# the users function's own modules beside the provisioning function's
USERS_MODULES = ("users.py", "bindings.py", "activity.py")


def test_the_provisioning_function_may_call_exactly_the_operations_its_code_calls(translated):
    code = "\n".join(
        path.read_text()
        for path in (FUNCTION_DIR.parent / "provisioning").glob("*.py")
        if path.name not in USERS_MODULES
    )
    calls = set(re.findall(r"\b(iot|ssm|dynamodb)\.([a-z]+(?:_[a-z]+)+)\b", code))
    actions = {f"{service}:{op.title().replace('_', '')}" for service, op in calls}
    # RegisterThing runs the template with the caller's rights: it creates things and certificates from CSRs
    actions |= {"iot:CreateThing", "iot:CreateCertificateFromCsr"}
    assert _allowed(translated, "ProvisioningFunctionRole") == actions


def test_the_users_function_may_call_exactly_the_operations_its_code_calls(translated):
    code = "\n".join((FUNCTION_DIR.parent / "provisioning" / name).read_text() for name in USERS_MODULES)
    calls = set(re.findall(r"\b(iot|dynamodb|sts|s3)\.([a-z]+(?:_[a-z0-9]+)*)\b", code))  # dynamodb.query too
    actions = {f"{service}:{op.title().replace('_', '')}" for service, op in calls}
    actions |= {"dynamodb:GetItem", "iot:DescribeEndpoint"}  # FleetTable.get (the binding code), data_endpoint
    actions = {"s3:ListBucket" if a == "s3:ListObjectsV2" else a for a in actions}  # IAM's name for the listing
    assert actions == {
        "iot:DescribeThing",
        "iot:ListThingPrincipals",
        "iot:DescribeCertificate",
        "iot:DescribeEndpoint",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "s3:ListBucket",
        "s3:GetObject",
        "sts:AssumeRole",
    }
    allowed = _allowed(translated, "UsersFunctionRole") | _allowed(translated, "UsersFunctionAssumesDeviceRole")
    assert allowed == actions


def test_the_users_api_is_off_unless_asked_for_and_needs_the_provisioning_api():
    assert TEMPLATE["Parameters"]["UsersApi"]["Default"] == "false"
    users = [name for name, resource in RESOURCES.items() if resource.get("Condition") == "HasUsersApi"]
    assert len(users) == 13
    condition = TEMPLATE["Conditions"]["HasUsersApi"]["Fn::And"]
    assert {"Condition": "HasProvisioningApi"} in condition
    for output in ("UsersApiUrl", "UserPoolId", "UserPoolClientId"):
        assert TEMPLATE["Outputs"][output]["Condition"] == "HasUsersApi"


def test_every_users_route_needs_a_token_of_the_stacks_user_pool():
    api = RESOURCES["UsersHttpApi"]["Properties"]
    assert api["Auth"]["DefaultAuthorizer"] == "UserPool"
    jwt = api["Auth"]["Authorizers"]["UserPool"]["JwtConfiguration"]
    assert jwt["audience"] == [{"Ref": "UserPoolClient"}]
    assert "${UserPool}" in jwt["issuer"]["Fn::Sub"]
    events = RESOURCES["UsersFunction"]["Properties"]["Events"].values()
    assert all("Auth" not in event["Properties"] for event in events)  # none opts out of the authorizer


def test_the_user_device_role_is_assumed_only_by_the_users_function_and_reaches_only_device_topics():
    role = RESOURCES["UserDeviceRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": {"Fn::GetAtt": ["UsersFunctionRole", "Arn"]}}
    assert role["MaxSessionDuration"] == 3600
    (policy,) = role["Policies"]
    granted = {
        s["Action"]: s["Resource"]["Fn::Sub"].split(":${AWS::AccountId}:")[1]
        for s in policy["PolicyDocument"]["Statement"]
    }
    assert granted == {
        "iot:Connect": "client/*",  # each user's session policy narrows it to <sub>-*
        "iot:Subscribe": "topicfilter/devices/${AWS::StackName}/*/telemetry",
        "iot:Receive": "topic/devices/${AWS::StackName}/*/telemetry",
        "iot:Publish": "topic/devices/${AWS::StackName}/*/commands/*",
    }


def test_the_rotation_functions_may_call_exactly_the_operations_their_handlers_call(translated):
    code = (FUNCTION_DIR.parent / "rotation" / "app.py").read_text()
    hook, retire = code.split("def hook_handler")[1].split("def retire_handler")
    helpers = code.split("def hook_handler")[0]

    def actions(handler: str) -> set[str]:
        used = {name for name in re.findall(r"\b(_certificate|_principals|_policies)\(", handler)}
        text = handler + "".join(helpers.split(f"def {name}(")[1].split("\ndef ")[0] for name in used)
        return {f"iot:{op.title().replace('_', '')}" for op in re.findall(r"\biot\.([a-z]+(?:_[a-z]+)+)\b", text)}

    assert actions(hook) == {"iot:DescribeCertificate", "iot:ListThingPrincipals", "iot:ListAttachedPolicies"}
    assert _allowed(translated, "RotationHookFunctionRole") == actions(hook)
    assert _allowed(translated, "RotationRetireFunctionRole") == actions(retire)
    assert actions(retire) == {
        "iot:DescribeCertificate",
        "iot:ListThingPrincipals",
        "iot:UpdateCertificate",
        "iot:DetachThingPrincipal",
    }


def test_the_function_may_write_claims_in_its_own_table_only():
    policies = RESOURCES["ActivationFunction"]["Properties"]["Policies"]
    claims = [s for p in policies if isinstance(p, dict) and "Statement" in p for s in p["Statement"]]
    claim = next(s for s in claims if s["Sid"] == "ClaimCertificates")
    assert claim["Resource"] == {"Fn::GetAtt": ["ActivationClaims", "Arn"]}
    assert RESOURCES["ActivationFunction"]["Properties"]["Environment"]["Variables"]["CLAIMS_TABLE"] == {
        "Ref": "ActivationClaims"
    }
    ttl = RESOURCES["ActivationClaims"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expiresAt", "Enabled": True}


def test_the_logging_role_may_only_write_aws_iots_own_log_group(translated):
    assert _allowed(translated, "IotLoggingRole") == {
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:PutMetricFilter",
        "logs:PutRetentionPolicy",
    }
    statement = RESOURCES["IotLoggingRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]
    assert statement["Resource"]["Fn::Sub"].endswith(":log-group:AWSIotLogsV2:*")


def test_the_rule_roles_may_only_write_where_the_rules_write(translated):
    assert _allowed(translated, "ArchiveRuleRole") == {"s3:PutObject"}
    assert _allowed(translated, "RuleErrorRole") == {
        "logs:CreateLogStream",
        "logs:DescribeLogStreams",
        "logs:PutLogEvents",
    }


def _offline_env(tmp_path: Path) -> dict[str, str]:
    """No credentials, no telemetry, no version check, and any connection attempt refused by a dead proxy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
    app_dir = tmp_path / "sam-app-dir"
    app_dir.mkdir()
    (app_dir / "metadata.json").write_text(json.dumps({"lastVersionCheck": time.time(), "telemetryEnabled": False}))
    dead = "http://127.0.0.1:9"
    return env | {
        "AWS_DEFAULT_REGION": "us-east-1",
        "SAM_CLI_TELEMETRY": "0",
        "__SAM_CLI_APP_DIR": str(app_dir),  # SAM CLI's own hook for its config dir (holds lastVersionCheck)
        "HTTPS_PROXY": dead,
        "HTTP_PROXY": dead,
        "NO_PROXY": "",
    }


@pytest.mark.skipif(not (BIN / "cfn-lint").exists(), reason="cfn-lint is not installed in the venv")
def test_cfn_lint_passes(tmp_path):
    run = subprocess.run(
        [str(BIN / "cfn-lint"), str(TEMPLATE_PATH)], env=_offline_env(tmp_path), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.skipif(not (BIN / "sam").exists(), reason="aws-sam-cli is not installed in the venv")
def test_sam_validate_lint_passes_offline(tmp_path):
    run = subprocess.run(
        [str(BIN / "sam"), "validate", "--lint", "-t", str(TEMPLATE_PATH)],
        env=_offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "is a valid SAM Template" in run.stdout + run.stderr
