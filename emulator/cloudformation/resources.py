"""Creators and deleters of the kit's own resource types: IAM roles, Lambda functions and permissions,
log groups, IoT topic rules and policies, S3 buckets and bucket policies."""

from __future__ import annotations

import io
import json
import secrets
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from base.errors import AlreadyExistsError
from emulator.cloudformation.context import Creator, Deleter, Deployment, Updater, iam_document
from emulator.cloudformation.sam import LOCAL_CODE_BUCKET, TemplateError

MAX_POLICY_VERSIONS = 5  # AWS IoT keeps at most 5 versions of a policy

AWS_MANAGED = "arn:aws:iam::aws:policy/"
_CAMEL = {"Sql": "sql", "AwsIotSqlVersion": "awsIotSqlVersion"}


def _lower_first(node: Any) -> Any:
    """CloudFormation's TopicRulePayload keys as the IoT API spells them (FunctionArn -> functionArn)."""
    if isinstance(node, dict):
        return {_CAMEL.get(k, k[:1].lower() + k[1:]): _lower_first(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_lower_first(i) for i in node]
    return node


def _zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(folder))
    return buffer.getvalue()


# -- one creator and one deleter per resource type ------------------------------------------------------


def _role(d: Deployment, stack, logical, props, _code):
    iam = d.client("iam")
    name = props.get("RoleName") or d._name(stack, logical)
    params = {k: props[k] for k in ("Path", "Description", "MaxSessionDuration") if k in props}
    role = iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=iam_document(props["AssumeRolePolicyDocument"]), **params
    )["Role"]
    for policy in props.get("Policies") or []:
        iam.put_role_policy(
            RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=iam_document(policy["PolicyDocument"])
        )
    for arn in props.get("ManagedPolicyArns") or []:
        try:
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        except iam.exceptions.NoSuchEntityException:
            if not arn.startswith(AWS_MANAGED):
                raise
            # AWS's own managed policies (AWSLambdaBasicExecutionRole...): moto holds them only when told to
            # load all 1,500 for every account, which triples the emulator's reset time; they stay recorded
            # in the stack (attributes "managed"), as the emulator does not evaluate a function's role anyway
    managed = props.get("ManagedPolicyArns") or []
    return name, {"Arn": role["Arn"], "RoleId": role["RoleId"], "managed": managed}


def _delete_role(d: Deployment, item):
    iam = d.client("iam")
    for policy in iam.list_attached_role_policies(RoleName=item["physicalId"])["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=item["physicalId"], PolicyArn=policy["PolicyArn"])
    for policy in iam.list_role_policies(RoleName=item["physicalId"])["PolicyNames"]:
        iam.delete_role_policy(RoleName=item["physicalId"], PolicyName=policy)
    iam.delete_role(RoleName=item["physicalId"])


def _function(d: Deployment, stack, logical, props, code_dirs):
    code = dict(props["Code"])
    if code.get("S3Bucket") == LOCAL_CODE_BUCKET:
        code = {"ZipFile": _zip_folder(code_dirs[logical])}
    name = props.get("FunctionName") or d._name(stack, logical)
    spec = {
        k: v
        for k, v in props.items()
        if k in ("Handler", "Runtime", "Timeout", "MemorySize", "Environment", "Description")
    }
    answer = d.client("lambda").create_function(FunctionName=name, Role=props["Role"], Code=code, **spec)
    if "ReservedConcurrentExecutions" in props:
        d.client("lambda").put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=int(props["ReservedConcurrentExecutions"])
        )
    return name, {"Arn": answer["FunctionArn"]}


def _permission(d: Deployment, stack, logical, props, _code):
    params = {
        "FunctionName": props["FunctionName"],
        "StatementId": logical,
        "Action": props["Action"],
        "Principal": props["Principal"],
    }
    for key in ("SourceArn", "SourceAccount"):
        if key in props:
            params[key] = props[key]
    d.client("lambda").add_permission(**params)
    return f"{props['FunctionName']}|{logical}", {}


def _log_group(d: Deployment, stack, logical, props, _code):
    name = props.get("LogGroupName") or f"/{stack}/{logical}-{secrets.token_hex(4)}"
    d.client("logs").create_log_group(logGroupName=name)
    return name, {"Arn": f"arn:aws:logs:{d.region}:{d.account_id}:log-group:{name}:*"}


def _topic_rule(d: Deployment, stack, logical, props, _code):
    name = props.get("RuleName") or d._name(stack, logical, separator="_", limit=128)
    d.client("iot").create_topic_rule(ruleName=name, topicRulePayload=_lower_first(props["TopicRulePayload"]))
    return name, {"Arn": f"arn:aws:iot:{d.region}:{d.account_id}:rule/{name}"}


def _bucket(d: Deployment, stack, logical, props, _code):
    s3 = d.client("s3")
    name = props.get("BucketName") or d._name(stack, logical, lower=True, limit=63)
    params = {"Bucket": name}
    if d.region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": d.region}
    if not props.get("_keep"):  # a bucket kept from the stack's previous deploy is only reconfigured
        try:
            s3.create_bucket(**params)
        except s3.exceptions.BucketAlreadyOwnedByYou as exc:
            raise AlreadyExistsError(f"Bucket {name} already exists; choose another ArchiveBucketName.") from exc
    if "BucketEncryption" in props:
        rules = [  # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault
            {("Apply" + k if k == "ServerSideEncryptionByDefault" else k): v for k, v in rule.items()}
            for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
    if "WebsiteConfiguration" in props:
        s3.put_bucket_website(Bucket=name, WebsiteConfiguration=_website(props["WebsiteConfiguration"]))
    if (props.get("VersioningConfiguration") or {}).get("Status"):
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
        )
    attributes = {
        "Arn": f"arn:aws:s3:::{name}",
        "DomainName": f"{name}.s3.amazonaws.com",
        "WebsiteURL": f"http://{name}.s3-website-{d.region}.amazonaws.com",  # the deployment localizes it
    }
    return name, {**attributes, "kept": True} if props.get("_keep") else attributes


def _website(declared: dict) -> dict:
    """CloudFormation's WebsiteConfiguration as PutBucketWebsite takes it (index and error documents, or a
    redirect of every request; routing rules are refused, as the emulator's website endpoint lacks them)."""
    if "RoutingRules" in declared:
        raise TemplateError("The emulator's website endpoint does not follow RoutingRules; remove them.")
    config: dict[str, Any] = {}
    if "IndexDocument" in declared:
        config["IndexDocument"] = {"Suffix": declared["IndexDocument"]}
    if "ErrorDocument" in declared:
        config["ErrorDocument"] = {"Key": declared["ErrorDocument"]}
    if "RedirectAllRequestsTo" in declared:
        config["RedirectAllRequestsTo"] = declared["RedirectAllRequestsTo"]
    return config


def _moto_enforceable(statement: dict) -> bool:
    """moto cannot see aws:SecureTransport and treats the condition as met, so a Deny of plain-HTTP
    requests would refuse every request to the emulator's (loopback, HTTP) endpoint; such statements
    are kept in the stack record but not handed to moto."""
    condition = statement.get("Condition") or {}
    return not any("aws:securetransport" in {k.lower() for k in keys} for keys in condition.values())


def _bucket_policy(d: Deployment, stack, logical, props, _code):
    document = dict(props["PolicyDocument"])
    document["Statement"] = [st for st in document.get("Statement", []) if _moto_enforceable(st)]
    if document["Statement"]:
        d.client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(document))
    return props["Bucket"], {"declared": props["PolicyDocument"]}


def _iot_policy(d: Deployment, stack, logical, props, _code):
    name = props.get("PolicyName") or d._name(stack, logical, separator="_", limit=128)
    answer = d.client("iot").create_policy(policyName=name, policyDocument=json.dumps(props["PolicyDocument"]))
    return name, {"Arn": answer["policyArn"], "Id": name}


def _update_iot_policy(d: Deployment, item: dict, props: dict) -> tuple[dict, Callable[[], None]]:
    """CloudFormation's in-place update of a policy's document (only a new PolicyName replaces it): a new
    default version; at AWS IoT's 5 versions the oldest version that is not the default goes first. The
    policy keeps its name, so the certificates it is attached to keep it. Undone (the update failed further
    on) by making the version before the default again and deleting the new one."""
    iot, name = d.client("iot"), item["physicalId"]
    versions = iot.list_policy_versions(policyName=name)["policyVersions"]
    default = next(v["versionId"] for v in versions if v["isDefaultVersion"])
    if len(versions) >= MAX_POLICY_VERSIONS:
        oldest = min((v for v in versions if not v["isDefaultVersion"]), key=lambda v: int(v["versionId"]))
        iot.delete_policy_version(policyName=name, policyVersionId=oldest["versionId"])
    document = json.dumps(props["PolicyDocument"])
    new = iot.create_policy_version(policyName=name, policyDocument=document, setAsDefault=True)["policyVersionId"]

    def undo() -> None:
        iot.set_default_policy_version(policyName=name, policyVersionId=default)
        iot.delete_policy_version(policyName=name, policyVersionId=new)

    return item["attributes"], undo


_RULE_PAYLOAD = ("sql", "description", "actions", "errorAction", "ruleDisabled", "awsIotSqlVersion")


def _update_topic_rule(d: Deployment, item: dict, props: dict) -> tuple[dict, Callable[[], None]]:
    """CloudFormation's in-place update of a rule's TopicRulePayload (only a new RuleName replaces it):
    ReplaceTopicRule; undone by replacing it with the payload it had."""
    iot, name = d.client("iot"), item["physicalId"]
    rule = iot.get_topic_rule(ruleName=name)["rule"]
    before = {key: rule[key] for key in _RULE_PAYLOAD if rule.get(key) is not None}
    iot.replace_topic_rule(ruleName=name, topicRulePayload=_lower_first(props["TopicRulePayload"]))
    return item["attributes"], lambda: iot.replace_topic_rule(ruleName=name, topicRulePayload=before)


CREATORS: dict[str, Creator] = {
    "AWS::IAM::Role": _role,
    "AWS::Lambda::Function": _function,
    "AWS::Lambda::Permission": _permission,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::IoT::TopicRule": _topic_rule,
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::IoT::Policy": _iot_policy,
}

# Resources CloudFormation updates in place when only some properties change: the properties whose change
# still means a replacement, and the updater, ``(deployment, previous record item, properties)``, which answers the
# attributes and what undoes the update should a later resource of the stack fail.
UPDATERS: dict[str, tuple[tuple[str, ...], Updater]] = {
    "AWS::IoT::Policy": (("PolicyName",), _update_iot_policy),
    "AWS::IoT::TopicRule": (("RuleName",), _update_topic_rule),
}

DELETERS: dict[str, Deleter] = {
    "AWS::IAM::Role": _delete_role,
    "AWS::Lambda::Function": lambda d, i: d.client("lambda").delete_function(FunctionName=i["physicalId"]),
    "AWS::Lambda::Permission": lambda d, i: d.client("lambda").remove_permission(
        FunctionName=i["physicalId"].split("|")[0], StatementId=i["logicalId"]
    ),
    "AWS::Logs::LogGroup": lambda d, i: d.client("logs").delete_log_group(logGroupName=i["physicalId"]),
    "AWS::IoT::TopicRule": lambda d, i: d.client("iot").delete_topic_rule(ruleName=i["physicalId"]),
    "AWS::S3::Bucket": lambda d, i: d.client("s3").delete_bucket(Bucket=i["physicalId"]),
    "AWS::S3::BucketPolicy": lambda d, i: d.client("s3").delete_bucket_policy(Bucket=i["physicalId"]),  # idempotent
    "AWS::IoT::Policy": lambda d, i: d.client("iot").delete_policy(policyName=i["physicalId"]),
}
