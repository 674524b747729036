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
