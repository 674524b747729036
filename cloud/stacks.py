"""Deployed stacks, as far as the kit needs them: their parameters and outputs, wherever they live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from base.errors import AwsError
from cloud.session import aws_error_code


@dataclass(frozen=True)
class StackInfo:
    """A deployed stack as far as the fleet is concerned: its parameters and outputs."""

    name: str
    status: str = "DEPLOYED"
    parameters: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)

    @property
    def ca_certificate_id(self) -> str | None:
        return self.parameters.get("CaCertificateId") or None

    @property
    def device_policy(self) -> str | None:
        return self.outputs.get("DevicePolicyName") or None

    @property
    def archive_bucket(self) -> str | None:
        return self.outputs.get("ArchiveBucketName") or None

    @property
    def hosting_bucket(self) -> str | None:
        """The web page's bucket (stacks deployed with the users API)."""
        return self.outputs.get("HostingBucketName") or None

    def as_dict(self) -> dict:
        return {
            "stack": self.name,
            "exists": True,
            "status": self.status,
            "parameters": dict(self.parameters),
            "outputs": dict(self.outputs),
        }


class StackSource(Protocol):
    """Where ``jitr fleet describe`` and ``reset`` find a deployed stack: CloudFormation
    (:class:`CloudFormationStacks`), or the local emulator's record of ``jitr local deploy``
    (``emulator.cloudformation.deploy.EmulatorStacks``). The CLI's wiring picks one."""

    def stack(self, name: str) -> StackInfo | None:
        """The stack ``name``, or None if there is none."""
        ...


class CloudFormationStacks:
    """Stacks as CloudFormation has them (``DescribeStacks``)."""

    def __init__(self, session) -> None:
        self.client = session.client("cloudformation")

    def stack(self, name: str) -> StackInfo | None:
        return stack_from_cloudformation(self.client, name)


def stack_from_cloudformation(cloudformation, name: str) -> StackInfo | None:
    """The CloudFormation stack ``name`` (a boto3 client), or None if there is none."""
    from botocore.exceptions import ClientError  # botocore's exceptions cost every command 7 ms at start-up

    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        if aws_error_code(exc) == "ValidationError" and "does not exist" in message:
            return None
        raise AwsError(f"CloudFormation refused describe_stacks for {name}: {message.rstrip('.')}.") from exc
    if not stacks or stacks[0].get("StackStatus") == "DELETE_COMPLETE":
        return None
    stack = stacks[0]
    return StackInfo(
        name=name,
        status=stack.get("StackStatus", "UNKNOWN"),
        parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []},
        outputs={o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []},
    )
