"""``jitr local deploy`` and ``destroy``: a SAM stack created in the emulator through its AWS API.

Resources are created in dependency order with the same boto3 calls CloudFormation would make,
so the emulator holds exactly what the template declares. The stack's record (each logical
id with its physical id) is kept in the emulator itself, as an SSM parameter, so a later
``destroy`` from another process removes precisely what ``deploy`` made. A failed deploy
removes what it had created: nothing is left half-made.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from base.errors import AlreadyExistsError, JitrError, NotFoundError
from base.names import check_stack_name
from cloud.session import aws_failure
from cloud.stacks import StackInfo
from emulator.cloudformation.sam import (
    LOCAL_CODE_BUCKET,
    Resolver,
    TemplateError,
    dependencies,
    load_sam,
    parameter_values,
)

RECORD_PREFIX = "/jitr/local/stacks/"
_CAMEL = {"Sql": "sql", "AwsIotSqlVersion": "awsIotSqlVersion"}
BUCKET = "AWS::S3::Bucket"
# Error codes meaning "already deleted": destroying it again is done, not a failure.
_GONE = {"ResourceNotFoundException", "NoSuchEntity", "NoSuchBucket", "NoSuchBucketPolicy", "NotFoundException"}


class StackError(JitrError):
    """A stack could not be deployed or destroyed in the emulator."""


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


def _order(resources: Mapping[str, Any]) -> list[str]:
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered or name not in resources:
            return
        if name in visiting:
            raise TemplateError(f"Resource {name} depends on itself.")
        visiting.add(name)
        resource = resources[name]
        depends = resource.get("DependsOn") or []
        for dep in sorted(dependencies(resource) | set([depends] if isinstance(depends, str) else depends)):
            visit(dep)
        visiting.discard(name)
        ordered.append(name)

    for name in resources:
        visit(name)
    return ordered


class StackDeployer:
    """Creates and deletes a stack's resources through boto3 clients pointed at the emulator."""

    def __init__(self, session, *, account_id: str = "123456789012") -> None:
        self.session = session
        self.region = session.region_name
        self.account_id = account_id
        self._clients: dict[str, Any] = {}

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    # -- records -----------------------------------------------------------------------------------

    def record(self, stack: str) -> dict | None:
        try:
            value = self.client("ssm").get_parameter(Name=RECORD_PREFIX + stack)["Parameter"]["Value"]
        except self.client("ssm").exceptions.ParameterNotFound:
            return None
        return json.loads(value)

    def _save(self, stack: str, record: dict) -> None:
        self.client("ssm").put_parameter(
            Name=RECORD_PREFIX + stack, Value=json.dumps(record), Type="String", Overwrite=True
        )

    # -- deploy ------------------------------------------------------------------------------------

    def deploy(self, template_path: Path, stack: str, overrides: Mapping[str, str]) -> dict:
        """Create the stack; an existing stack of that name is replaced (so re-running deploy is safe)."""
        check_stack_name(stack)
        template, code_dirs = load_sam(template_path, overrides)
        previous = self.record(stack)
        kept: dict[str, dict] = {}
        if previous is not None:  # an update: everything is replaced but the buckets, which keep their objects
            kept = {
                item["logicalId"]: item
                for item in previous["resources"]
                if item["type"] == BUCKET and self._bucket_exists(item["physicalId"])
            }
            self._delete_all([item for item in previous["resources"] if item["logicalId"] not in kept])
            self._save(stack, {**previous, "resources": list(kept.values())})
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::StackName": stack,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{stack}/local",
            "AWS::URLSuffix": "amazonaws.com",
        }
        values = parameter_values(template, overrides, pseudo)
        attributes: dict[str, dict[str, Any]] = {}
        resolver = Resolver(values, template.get("Conditions") or {}, lambda r, a: self._attribute(attributes, r, a))
        resources = template.get("Resources") or {}
        created: list[dict] = []
        try:
            for name in _order(resources):
                resource = resources[name]
                if "Condition" in resource and not resolver.conditions[resource["Condition"]]:
                    continue
                props = resolver.resolve(resource.get("Properties") or {})
                old = kept.pop(name, None) if resource["Type"] == BUCKET else None
                if old is not None and props.get("BucketName", old["physicalId"]) == old["physicalId"]:
                    props = {**props, "BucketName": old["physicalId"], "_keep": True}
                elif old is not None:  # renamed: the old bucket goes once the new stack stands
                    kept[name] = old
                physical, attrs = self._create(stack, name, resource["Type"], props, code_dirs)
                values[name] = physical
                attributes[name] = attrs
                created.append(
                    {"logicalId": name, "type": resource["Type"], "physicalId": physical, "attributes": attrs}
                )
            outputs = {k: resolver.resolve(v["Value"]) for k, v in (template.get("Outputs") or {}).items()}
        except Exception as exc:
            self._delete_all([item for item in created if not item["attributes"].get("kept")])
            if previous is not None:
                survivors = [i for i in created if i["attributes"].get("kept")] + list(kept.values())
                self._save(stack, {**previous, "resources": survivors})
            if isinstance(exc, JitrError):
                raise
            failure = aws_failure(exc)  # the emulator went away mid-deploy, say: exit 6 with one sentence
            if failure is not None:
                raise failure from exc
            raise StackError(f"Deploying stack {stack} failed: {str(exc).rstrip('.')}.") from exc
        record = {"stack": stack, "resources": created, "outputs": outputs, "parameters": dict(overrides)}
        self._save(stack, record)
        self._delete_all(list(kept.values()))  # buckets the new template no longer declares under that name
        return record

    def _bucket_exists(self, name: str) -> bool:
        """Whether the bucket is there: S3 answers HeadBucket 404 when it is not. Any other failure (the
        endpoint down, access denied) is raised, not taken for a missing bucket."""
        try:
            self.client("s3").head_bucket(Bucket=name)
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise
        return True

    @staticmethod
    def _attribute(attributes: Mapping[str, dict], resource: str, attribute: str) -> Any:
        try:
            return attributes[resource][attribute]
        except KeyError as exc:
            raise TemplateError(f"Fn::GetAtt {resource}.{attribute} is not available.") from exc

    def _name(self, stack: str, logical: str, *, lower: bool = False, separator: str = "-", limit: int = 64) -> str:
        name = f"{stack}{separator}{logical}{separator}{secrets.token_hex(4)}"
        if separator == "_":
            name = re.sub(r"[^A-Za-z0-9_]", "_", name)
        return (name.lower() if lower else name)[-limit:].lstrip("-_")

    def _create(self, stack: str, logical: str, kind: str, props: dict, code_dirs: Mapping[str, Path]) -> tuple:
        creator = _CREATORS.get(kind)
        if creator is None:
            raise TemplateError(f"The emulator cannot create {kind} ({logical}).")
        return creator(self, stack, logical, props, code_dirs)

    # -- destroy -----------------------------------------------------------------------------------

    def destroy(self, stack: str) -> dict:
        record = self.record(stack)
        if record is None:
            raise NotFoundError(f"There is no stack {stack} in the emulator.")
        self._delete_all(record["resources"])
        self.client("ssm").delete_parameter(Name=RECORD_PREFIX + stack)
        return record

    def _delete_all(self, created: list[dict]) -> None:
        errors = []
        for item in reversed(created):
            deleter = _DELETERS.get(item["type"])
            try:
                if deleter is not None:
                    deleter(self, item)
            except Exception as exc:  # keep deleting the rest; report at the end
                code = _error_code(exc)
                if code == "BucketNotEmpty":
                    errors.append(
                        f"{item['logicalId']}: bucket {item['physicalId']} is not empty (delete.sh empties it)"
                    )
                elif code not in _GONE:
                    errors.append(f"{item['logicalId']}: {exc}")
        if errors:
            raise StackError("Some resources could not be deleted: " + "; ".join(errors))


def _error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    return (response or {}).get("Error", {}).get("Code") if isinstance(response, dict) else None


# -- one creator and one deleter per resource type ------------------------------------------------------


def _role(d: StackDeployer, stack, logical, props, _code):
    iam = d.client("iam")
    name = props.get("RoleName") or d._name(stack, logical)
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))
    for policy in props.get("Policies") or []:
        iam.put_role_policy(
            RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"])
        )
    return name, {"Arn": f"arn:aws:iam::{d.account_id}:role/{name}", "managed": props.get("ManagedPolicyArns") or []}


def _delete_role(d: StackDeployer, item):
    iam = d.client("iam")
    for policy in iam.list_role_policies(RoleName=item["physicalId"])["PolicyNames"]:
        iam.delete_role_policy(RoleName=item["physicalId"], PolicyName=policy)
    iam.delete_role(RoleName=item["physicalId"])


def _function(d: StackDeployer, stack, logical, props, code_dirs):
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
    return name, {"Arn": answer["FunctionArn"]}


def _permission(d: StackDeployer, stack, logical, props, _code):
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


def _log_group(d: StackDeployer, stack, logical, props, _code):
    name = props.get("LogGroupName") or f"/{stack}/{logical}-{secrets.token_hex(4)}"
    d.client("logs").create_log_group(logGroupName=name)
    return name, {"Arn": f"arn:aws:logs:{d.region}:{d.account_id}:log-group:{name}:*"}


def _topic_rule(d: StackDeployer, stack, logical, props, _code):
    name = props.get("RuleName") or d._name(stack, logical, separator="_", limit=128)
    d.client("iot").create_topic_rule(ruleName=name, topicRulePayload=_lower_first(props["TopicRulePayload"]))
    return name, {"Arn": f"arn:aws:iot:{d.region}:{d.account_id}:rule/{name}"}


def _bucket(d: StackDeployer, stack, logical, props, _code):
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
    if (props.get("VersioningConfiguration") or {}).get("Status"):
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
        )
    attributes = {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
    return name, {**attributes, "kept": True} if props.get("_keep") else attributes


def _moto_enforceable(statement: dict) -> bool:
    """moto cannot see aws:SecureTransport and treats the condition as met, so a Deny of plain-HTTP
    requests would refuse every request to the emulator's (loopback, HTTP) endpoint; such statements
    are kept in the stack record but not handed to moto."""
    condition = statement.get("Condition") or {}
    return not any("aws:securetransport" in {k.lower() for k in keys} for keys in condition.values())


def _bucket_policy(d: StackDeployer, stack, logical, props, _code):
    document = dict(props["PolicyDocument"])
    document["Statement"] = [st for st in document.get("Statement", []) if _moto_enforceable(st)]
    if document["Statement"]:
        d.client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(document))
    return props["Bucket"], {"declared": props["PolicyDocument"]}


def _iot_policy(d: StackDeployer, stack, logical, props, _code):
    name = props.get("PolicyName") or d._name(stack, logical, separator="_", limit=128)
    answer = d.client("iot").create_policy(policyName=name, policyDocument=json.dumps(props["PolicyDocument"]))
    return name, {"Arn": answer["policyArn"], "Id": name}


_CREATORS: dict[str, Callable] = {
    "AWS::IAM::Role": _role,
    "AWS::Lambda::Function": _function,
    "AWS::Lambda::Permission": _permission,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::IoT::TopicRule": _topic_rule,
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::IoT::Policy": _iot_policy,
}

_DELETERS: dict[str, Callable] = {
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


class EmulatorStacks:
    """The stacks ``jitr local deploy`` made, as :class:`cloud.stacks.StackSource` finds them."""

    def __init__(self, session) -> None:
        self.deployer = StackDeployer(session)

    def stack(self, name: str) -> StackInfo | None:
        record = self.deployer.record(name)
        if record is None:
            return None
        return StackInfo(name, "DEPLOYED", record.get("parameters") or {}, record.get("outputs") or {})
