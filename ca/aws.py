"""The one AWS seam: every AWS IoT call the kit makes goes through :class:`IotApi`.

It takes a boto3 IoT client (real AWS, moto, or the local emulator through
``AWS_ENDPOINT_URL``), turns AWS errors into :class:`ca.errors.AwsError` sentences, and retries
throttled calls with exponential backoff and full jitter.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from ca import config
from ca.errors import AwsError

RETRYABLE = {
    "ThrottlingException",
    "TooManyRequestsException",
    "ServiceUnavailableException",
    "InternalFailureException",
}


def aws_error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


def make_session(*, profile: str | None = None, region: str | None = None):
    import boto3

    return boto3.Session(
        profile_name=config.resolve(profile, config.ENV_AWS_PROFILE), region_name=config.region(region)
    )


class IotApi:
    """The IoT control-plane calls the kit uses, with errors as sentences and throttling retried."""

    def __init__(
        self,
        client,
        *,
        max_attempts: int = 8,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._iot = client
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep

    @classmethod
    def connect(
        cls, *, profile: str | None = None, region: str | None = None, endpoint_url: str | None = None
    ) -> IotApi:
        """A client for AWS, or for the endpoint in AWS_ENDPOINT_URL (the local emulator)."""
        try:
            session = make_session(profile=profile, region=region)
            client = session.client("iot", endpoint_url=config.resolve(endpoint_url, config.ENV_AWS_ENDPOINT_URL))
        except Exception as exc:  # botocore's ProfileNotFound and friends
            raise AwsError(f"Cannot create an AWS IoT client: {exc}.") from exc
        return cls(client)

    @property
    def client(self):
        return self._iot

    def call(self, operation: str, **params: Any) -> dict:
        """Call ``operation`` (boto3's snake_case name), retrying throttling with full jitter."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        method = getattr(self._iot, operation)
        for attempt in range(1, self.max_attempts + 1):
            try:
                return method(**params)
            except ClientError as exc:
                code = aws_error_code(exc)
                if code in RETRYABLE and attempt < self.max_attempts:
                    self._sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))
                    continue
                raise
            except NoCredentialsError as exc:
                raise AwsError(
                    "No AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID, or point AWS_ENDPOINT_URL "
                    "at the local emulator ('jitr local up')."
                ) from exc
            except BotoCoreError as exc:
                raise AwsError(f"AWS IoT {operation} failed: {exc}.") from exc
        raise AssertionError("unreachable")

    # -- CA registration ---------------------------------------------------------------------------

    def registration_code(self) -> str:
        return self._checked("get_registration_code")["registrationCode"]

    def describe_ca(self, ca_certificate_id: str) -> dict | None:
        """The CA's description and registration config, or None if AWS IoT does not know it."""
        from botocore.exceptions import ClientError

        try:
            return self.call("describe_ca_certificate", certificateId=ca_certificate_id)
        except ClientError as exc:
            if aws_error_code(exc) == "ResourceNotFoundException":
                return None
            raise _as_aws_error("describe_ca_certificate", exc) from exc

    def register_ca(self, **params: Any) -> dict:
        return self._checked("register_ca_certificate", **params)

    def update_ca(self, **params: Any) -> None:
        self._checked("update_ca_certificate", **params)

    def delete_ca_certificate(self, ca_certificate_id: str) -> bool:
        """Delete an INACTIVE CA registration; False if AWS IoT no longer knows it."""
        return self._unless_missing("delete_ca_certificate", certificateId=ca_certificate_id)

    # -- device certificates, things and policies (fleet reset) -----------------------------------------

    def list_certificates_by_ca(self, ca_certificate_id: str) -> list[dict]:
        """Every certificate registered under the CA (``certificateId``, ``certificateArn``, ``status``)."""
        return self._pages(
            "list_certificates_by_ca", "certificates", "marker", "nextMarker", caCertificateId=ca_certificate_id
        )

    def update_certificate(self, certificate_id: str, status: str) -> bool:
        return self._unless_missing("update_certificate", certificateId=certificate_id, newStatus=status)

    def delete_certificate(self, certificate_id: str) -> bool:
        """Delete an inactive certificate with no thing attached (attached policies do not stop it)."""
        return self._unless_missing(
            "delete_certificate", settle=("DeleteConflictException",), certificateId=certificate_id, forceDelete=True
        )

    def list_principal_things(self, principal_arn: str) -> list[str]:
        return self._pages(
            "list_principal_things", "things", "nextToken", "nextToken", missing_ok=True, principal=principal_arn
        )

    def list_thing_principals(self, thing_name: str) -> list[str]:
        return self._pages(
            "list_thing_principals", "principals", "nextToken", "nextToken", missing_ok=True, thingName=thing_name
        )

    def detach_thing_principal(self, thing_name: str, principal_arn: str) -> bool:
        return self._unless_missing("detach_thing_principal", thingName=thing_name, principal=principal_arn)

    def delete_thing(self, thing_name: str) -> bool:
        """Delete a thing; detaching principals is eventually consistent, so 'still attached' is retried."""
        return self._unless_missing("delete_thing", settle=("InvalidRequestException",), thingName=thing_name)

    def list_attached_policies(self, target: str) -> list[str]:
        """The names of the policies attached directly to ``target`` (a certificate ARN)."""
        policies = self._pages(
            "list_attached_policies", "policies", "marker", "nextMarker", missing_ok=True, target=target
        )
        return [policy["policyName"] for policy in policies]

    def list_targets_for_policy(self, policy_name: str) -> list[str]:
        return self._pages(
            "list_targets_for_policy", "targets", "marker", "nextMarker", missing_ok=True, policyName=policy_name
        )

    def detach_policy(self, policy_name: str, target: str) -> bool:
        return self._unless_missing("detach_policy", policyName=policy_name, target=target)

    def delete_policy(self, policy_name: str) -> bool:
        return self._unless_missing("delete_policy", settle=("DeleteConflictException",), policyName=policy_name)

    def data_endpoint(self) -> str:
        """The ATS data endpoint devices connect to: ``host`` on AWS, ``host:port`` on the local emulator."""
        answer = self._checked("describe_endpoint", endpointType="iot:Data-ATS")
        port = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-jitr-mqtt-port")
        return f"{answer['endpointAddress']}:{port}" if port else answer["endpointAddress"]

    def _pages(
        self, operation: str, key: str, token_param: str, token_field: str, *, missing_ok: bool = False, **params: Any
    ) -> list:
        """Every item of a paginated list call (``[]`` for a missing resource when ``missing_ok``)."""
        from botocore.exceptions import ClientError

        items: list = []
        token = None
        while True:
            try:
                answer = self.call(operation, **params, **({token_param: token} if token else {}))
            except ClientError as exc:
                if missing_ok and aws_error_code(exc) == "ResourceNotFoundException":
                    return items
                raise _as_aws_error(operation, exc) from exc
            items.extend(answer.get(key) or [])
            token = answer.get(token_field)
            if not token:
                return items

    def _unless_missing(self, operation: str, *, settle: tuple[str, ...] = (), **params: Any) -> bool:
        """Call ``operation``; False if its resource is already gone. Codes in ``settle`` are retried a few
        times with backoff: AWS IoT applies detachments eventually, so a delete right after may conflict."""
        from botocore.exceptions import ClientError

        attempts = 8
        for attempt in range(1, attempts + 1):
            try:
                self.call(operation, **params)
                return True
            except ClientError as exc:
                code = aws_error_code(exc)
                if code == "ResourceNotFoundException":
                    return False
                if code in settle and attempt < attempts:
                    self._sleep(min(self.max_delay, self.base_delay * 2**attempt))
                    continue
                raise _as_aws_error(operation, exc) from exc
        raise AssertionError("unreachable")

    def _checked(self, operation: str, **params: Any) -> dict:
        from botocore.exceptions import ClientError

        try:
            return self.call(operation, **params)
        except ClientError as exc:
            raise _as_aws_error(operation, exc) from exc


def _as_aws_error(operation: str, exc: BaseException) -> AwsError:
    code = aws_error_code(exc) or type(exc).__name__
    message = getattr(exc, "response", {}).get("Error", {}).get("Message") or str(exc)
    return AwsError(f"AWS IoT refused {operation} ({code}): {message.rstrip('.')}.")
