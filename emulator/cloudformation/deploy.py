"""``jitr local deploy`` and ``destroy``: a SAM stack created in the emulator through its AWS API.

Resources are created in dependency order with the same boto3 calls CloudFormation would make,
so the emulator holds exactly what the template declares. The stack's record (each logical
id with its physical id) is kept in the emulator itself, as an SSM parameter, so a later
``destroy`` from another process removes precisely what ``deploy`` made. A failed deploy
removes what it had created: nothing is left half-made.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from base.errors import JitrError, NotFoundError
from base.names import check_stack_name
from cloud.session import aws_failure
from cloud.stacks import StackInfo
from emulator.api.info import INFO_PATH
from emulator.cloudformation import gateway_resources, service_resources
from emulator.cloudformation import resources as kit_resources
from emulator.cloudformation.context import Creator, Deleter, Deployment, error_code
from emulator.cloudformation.sam import (
    Resolver,
    TemplateError,
    dependencies,
    load_sam,
    parameter_values,
)
from emulator.website.server import local_website_url

RECORD_PREFIX = "/jitr/local/stacks/"
INFO_TIMEOUT = 5.0
CREATORS: dict[str, Creator] = {**kit_resources.CREATORS, **gateway_resources.CREATORS, **service_resources.CREATORS}
UPDATERS = {**kit_resources.UPDATERS, **service_resources.UPDATERS}
DELETERS: dict[str, Deleter] = {**kit_resources.DELETERS, **gateway_resources.DELETERS, **service_resources.DELETERS}
BUCKET = "AWS::S3::Bucket"
# Error codes meaning "already deleted": destroying it again is done, not a failure.
_TAKEN = {  # the name is had already: a replacement whose name the template fixes
    "AlreadyExistsException",
    "ConflictException",
    "EntityAlreadyExists",
    "ParameterAlreadyExists",
    "ResourceAlreadyExistsException",
    "ResourceConflictException",
    "ResourceInUseException",
}
_GONE = {
    "ResourceNotFoundException",
    "NoSuchEntity",
    "NoSuchBucket",
    "NoSuchBucketPolicy",
    "NotFoundException",
    "ParameterNotFound",
}


class StackError(JitrError):
    """A stack could not be deployed or destroyed in the emulator."""


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


def check_supported(declared: Mapping[str, Any], conditions: Mapping[str, bool]) -> None:
    """Refuse, naming them, the resources the emulator cannot create or serve as declared."""
    refused = []
    for name, resource in declared.items():
        if "Condition" in resource and not conditions.get(resource["Condition"], True):
            continue
        kind = resource.get("Type", "")
        if kind not in CREATORS:
            refused.append(f"{name}: {kind}")
        else:
            reason = gateway_resources.unsupported(name, resource)
            if reason is not None:
                refused.append(reason)
    if refused:
        raise TemplateError("The emulator cannot create " + "; ".join(refused) + ". Nothing was created.")


def local_services(endpoint_url: str | None, region: str) -> dict[str, Any]:
    """Where the emulator at ``endpoint_url`` serves the API Gateway APIs of ``region`` (``apigateway_url``)
    and the S3 websites (``website_endpoint_url``); empty if it does not say, as the API endpoint alone does
    not; :class:`StackError` if it serves other regions only."""
    if not endpoint_url:
        return {}
    try:
        with urllib.request.urlopen(f"{endpoint_url.rstrip('/')}{INFO_PATH}", timeout=INFO_TIMEOUT) as answer:
            info = json.loads(answer.read())
    except (OSError, ValueError):
        return {}
    if not isinstance(info, dict):
        return {}
    website = info.get("website_endpoint_url")
    regions = info.get("regions")
    if isinstance(regions, dict) and regions:
        if region not in regions:
            raise StackError(
                f"The emulator serves {', '.join(regions)}, not {region}: its functions would not run and its APIs "
                f"would not be served; start it with --region {region} as well, or deploy into one of those. "
                "Nothing was created."
            )
        info = regions[region]
    found = {"apigateway_url": info.get("apigateway_url"), "website_endpoint_url": website}
    return {key: value for key, value in found.items() if isinstance(value, str)}


class StackDeployer(Deployment):
    """Creates and deletes a stack's resources through boto3 clients pointed at the emulator."""

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
        """Create the stack, or update an existing one of that name as CloudFormation does: unchanged resources
        stay, some change in place (:data:`UPDATERS`), others are replaced, removed ones deleted, and a failed
        update leaves the stack as it was (so re-running deploy is safe, with devices attached to its policy)."""
        check_stack_name(stack)
        template, code_dirs = load_sam(template_path, overrides)
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
        check_supported(resources, resolver.conditions)  # before anything is created or replaced
        localize = self._localizer()
        previous = self.record(stack)
        kept: dict[str, dict] = {}
        # An update, as CloudFormation makes it: a resource whose type and properties (and, for a function, code)
        # are unchanged stays as it is (a device policy attached to certificates, a table and its items, a user
        # pool and its users); a policy's document, a rule's payload and a parameter's value change in place
        # (UPDATERS), undone if the update fails; any other changed resource is replaced, the new one made first;
        # buckets keep their objects whatever changes; what was replaced or dropped goes once the stack stands.
        unchanged: dict[str, dict] = {}
        if previous is not None:
            kept = {
                item["logicalId"]: item
                for item in previous["resources"]
                if item["type"] == BUCKET and self._bucket_exists(item["physicalId"])
            }
            unchanged = {item["logicalId"]: item for item in previous["resources"] if item["type"] != BUCKET}
        created: list[dict] = []
        pending: dict | None = None  # the previous resource of the one being made, until it is accounted for
        reused: set[str] = set()  # logical ids of the previous resources left as they were, or updated in place
        undos: list[tuple[dict, Callable[[], None]]] = []  # the updates in place, and what undoes each
        replaced: list[dict] = []  # previous resources a new one replaces: deleted once the new stack stands
        try:
            for name in _order(resources):
                resource = resources[name]
                if "Condition" in resource and not resolver.conditions[resource["Condition"]]:
                    continue
                props = localize(resolver.resolve(resource.get("Properties") or {}))
                fingerprint = _fingerprint(resource["Type"], props, code_dirs.get(name))
                before = pending = unchanged.pop(name, None)  # pending: still standing, not yet accounted for
                replacing = _replacement_key(resource["Type"], props)
                if before is not None and before.get("fingerprint") == fingerprint:  # the type is in the fingerprint
                    values[name], attributes[name] = before["physicalId"], before["attributes"]
                    created.append(before)
                    reused.add(name)
                    pending = None
                    continue
                # a record from before keys were kept: its resource took the name the emulator gave it
                was = before.get("replacementKey", _replacement_key(resource["Type"], {})) if before else None
                if before is not None and replacing is not None and was == replacing:
                    _properties, update = UPDATERS[resource["Type"]]  # changed in place, as CloudFormation does
                    attrs, undo = update(self, before, props)
                    values[name], attributes[name] = before["physicalId"], attrs
                    created.append({**before, "attributes": attrs, "fingerprint": fingerprint})
                    reused.add(name)
                    undos.append((before, undo))
                    pending = None
                    continue
                old = kept.pop(name, None) if resource["Type"] == BUCKET else None
                if old is not None and props.get("BucketName", old["physicalId"]) == old["physicalId"]:
                    props = {**props, "BucketName": old["physicalId"], "_keep": True}
                elif old is not None:  # renamed: the old bucket goes once the new stack stands
                    kept[name] = old
                # A replacement is made first and the old resource deleted once the new stack stands, as
                # CloudFormation does, so a failed update leaves the old one working. A name the template
                # fixes cannot be had twice: then the old one goes first.
                try:
                    physical, attrs = self._create(stack, name, resource["Type"], props, code_dirs)
                except Exception as exc:
                    if before is None or error_code(exc) not in _TAKEN:
                        raise
                    self._delete_all([before])
                    before = pending = None
                    physical, attrs = self._create(stack, name, resource["Type"], props, code_dirs)
                if before is not None and before["physicalId"] != physical:  # the same id: made over in place
                    replaced.append(before)
                pending = None
                values[name] = physical
                attributes[name] = attrs
                created.append(
                    {
                        "logicalId": name,
                        "type": resource["Type"],
                        "physicalId": physical,
                        "attributes": attrs,
                        "fingerprint": fingerprint,
                    }
                    | ({"replacementKey": replacing} if replacing is not None else {})
                )
            outputs = {
                k: localize(resolver.resolve(v["Value"]))
                for k, v in (template.get("Outputs") or {}).items()
                if "Condition" not in v or resolver.conditions[v["Condition"]]
            }
        except Exception as exc:
            made = [item for item in created if item["logicalId"] not in reused]
            self._delete_all([item for item in made if not item["attributes"].get("kept")])
            undone = {}
            for before, undo in reversed(undos):  # an update in place rolls back, as CloudFormation's would
                with contextlib.suppress(Exception):
                    undo()
                    undone[before["logicalId"]] = before
            if previous is not None:  # what still stands: the resources left as they were, and those not reached
                survivors = [undone.get(item["logicalId"], item) for item in created if item["logicalId"] in reused]
                survivors += [item for item in made if item["attributes"].get("kept")]
                survivors += replaced + ([pending] if pending is not None else [])
                survivors += list(unchanged.values()) + list(kept.values())
                self._save(stack, {**previous, "resources": survivors})
            if isinstance(exc, JitrError):
                raise
            failure = aws_failure(exc)  # the emulator went away mid-deploy, say: exit 6 with one sentence
            if failure is not None:
                raise failure from exc
            raise StackError(f"Deploying stack {stack} failed: {str(exc).rstrip('.')}.") from exc
        record = {"stack": stack, "resources": created, "outputs": outputs, "parameters": dict(overrides)}
        self._save(stack, record)
        # CloudFormation's cleanup: what was replaced, what the template no longer declares, renamed buckets
        self._delete_all(list(reversed(replaced)) + list(unchanged.values()) + list(kept.values()))
        return record

    def _localizer(self) -> Callable[[Any], Any]:
        """What turns the AWS URL of an API deployed here (``https://{id}.execute-api.{region}.amazonaws.com``)
        into the emulator's gateway URL for it, and a bucket's website URL (``http://{bucket}.s3-website-{region}
        .amazonaws.com``) into the emulator's, everywhere a template builds one (outputs, variables, CORS)."""
        services = local_services(self.client("ssm").meta.endpoint_url, self.region)
        gateway, website = services.get("apigateway_url"), services.get("website_endpoint_url")
        region = re.escape(self.region)
        api = re.compile(rf"https://([a-z0-9]+)\.execute-api\.{region}\.amazonaws\.com")
        site = re.compile(rf"http://([a-z0-9.-]+)\.s3-website[.-]{region}\.amazonaws\.com")

        def local(text: str) -> str:
            if gateway is not None:
                text = api.sub(lambda m: f"{gateway}/{m.group(1)}", text)
            if website is not None:
                text = site.sub(lambda m: local_website_url(website, m.group(1), self.region), text)
            return text

        def localize(node: Any) -> Any:
            if isinstance(node, str):
                return local(node)
            if isinstance(node, dict):
                return {k: localize(v) for k, v in node.items()}
            if isinstance(node, list):
                return [localize(v) for v in node]
            return node

        return localize

    def _bucket_exists(self, name: str) -> bool:
        """Whether the bucket is there: S3 answers HeadBucket 404 when it is not. Any other failure (the
        endpoint down, access denied) is raised, not taken for a missing bucket."""
        try:
            self.client("s3").head_bucket(Bucket=name)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise
        return True

    @staticmethod
    def _attribute(attributes: Mapping[str, dict], resource: str, attribute: str) -> Any:
        try:
            return attributes[resource][attribute]
        except KeyError as exc:
            raise TemplateError(f"Fn::GetAtt {resource}.{attribute} is not available.") from exc

    def _create(self, stack: str, logical: str, kind: str, props: dict, code_dirs: Mapping[str, Path]) -> tuple:
        return CREATORS[kind](self, stack, logical, props, code_dirs)

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
            deleter = DELETERS.get(item["type"])
            try:
                if deleter is not None:
                    deleter(self, item)
            except Exception as exc:  # keep deleting the rest; report at the end
                code = error_code(exc)
                if code == "BucketNotEmpty":
                    errors.append(
                        f"{item['logicalId']}: bucket {item['physicalId']} is not empty (delete.sh empties it)"
                    )
                elif code == "DeleteConflictException" and item["type"] == "AWS::IoT::Policy":
                    errors.append(
                        f"{item['logicalId']}: policy {item['physicalId']} is still attached to certificates; detach"
                        " it first (delete.sh, or 'jitr fleet reset --stack STACK', does so for the devices under"
                        " the stack's CA)"
                    )
                elif code not in _GONE:
                    errors.append(f"{item['logicalId']}: {exc}")
        if errors:
            raise StackError("Some resources could not be deleted: " + "; ".join(errors))


class EmulatorStacks:
    """The stacks ``jitr local deploy`` made, as :class:`cloud.stacks.StackSource` finds them."""

    def __init__(self, session) -> None:
        self.deployer = StackDeployer(session)

    def stack(self, name: str) -> StackInfo | None:
        record = self.deployer.record(name)
        if record is None:
            return None
        return StackInfo(name, "DEPLOYED", record.get("parameters") or {}, record.get("outputs") or {})


def _replacement_key(kind: str, props: Mapping[str, Any]) -> str | None:
    """For a resource CloudFormation can update in place (:data:`UPDATERS`): what must be unchanged for it to be
    updated rather than replaced (a policy's PolicyName, absent or given); None for the other resources."""
    if kind not in UPDATERS:
        return None
    replacing, _update = UPDATERS[kind]
    return json.dumps([kind, {name: props.get(name) for name in replacing}], sort_keys=True, default=str)


def _fingerprint(kind: str, props: Mapping[str, Any], code: Path | None) -> str:
    """What decides whether a re-deploy leaves a resource as it is: its type, its resolved properties and,
    for a function, the content of its code folder (a changed handler must be deployed again)."""
    digest = hashlib.sha256(json.dumps([kind, props], sort_keys=True, default=str).encode())
    if code is not None:
        for path in sorted(p for p in Path(code).rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(str(path.relative_to(code)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
