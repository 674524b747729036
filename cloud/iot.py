"""The one AWS seam: every AWS IoT call the kit makes goes through :class:`IotApi`.

It takes a boto3 IoT client (real AWS, moto, or the local emulator through
``AWS_ENDPOINT_URL``), turns AWS errors into :class:`base.errors.AwsError` sentences, and retries
throttled calls with exponential backoff and full jitter. For bulk work (``jitr fleet register``)
it takes a :class:`cloud.pacing.Pacer` instead: calls to a throttled operation are then paced for all
threads together and retried for ever, and botocore's own retries are off so that the pacer sees
every throttle. The few S3 calls the kit makes are in :mod:`cloud.s3`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Self

from base import config
from base.errors import AwsError
from cloud.pacing import Pacer
from cloud.session import MAX_ATTEMPTS, aws_error_code, aws_error_parts, failed_call, make_session

THROTTLED = {"ThrottlingException", "TooManyRequestsException"}
RETRYABLE = THROTTLED | {"ServiceUnavailableException", "InternalFailureException"}


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
        pacer: Pacer | None = None,
    ) -> None:
        self._iot = client
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self.pacer = pacer

    @classmethod
    def connect(
        cls,
        *,
        profile: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        pacer: Pacer | None = None,
        connections: int | None = None,
    ) -> Self:
        """A client for AWS, or for the endpoint in AWS_ENDPOINT_URL (the local emulator).

        With a ``pacer``, botocore does not retry (the pacer does); ``connections`` sizes the HTTP
        connection pool for that many threads.
        """
        options: dict[str, Any] = {}
        if connections:
            options["max_pool_connections"] = connections
        if pacer is not None:
            options["retries"] = {"total_max_attempts": 1}
        try:
            from botocore.config import Config

            session = make_session(profile=profile, region=region)
            client = session.client(
                "iot",
                endpoint_url=config.resolve(endpoint_url, config.ENV_AWS_ENDPOINT_URL),
                config=Config(**options) if options else None,
            )
        except Exception as exc:  # botocore's ProfileNotFound and friends
            raise AwsError(f"Cannot create an AWS IoT client: {str(exc).rstrip('.')}.") from exc
        return cls(client, pacer=pacer)

    @property
    def client(self):
        return self._iot

    def call(self, operation: str, **params: Any) -> dict:
        """Call ``operation`` (boto3's snake_case name), retrying throttling with full jitter.

        Every failure is an :class:`AwsError` (its ``code`` AWS's error code when AWS answered); no
        botocore exception leaves this seam.

        With a pacer, each call waits for its paced slot, a throttled call is retried until it goes
        through, and a dropped connection is retried like a transient error.
        """
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            ConnectTimeoutError,
            EndpointConnectionError,
            HTTPClientError,
            ReadTimeoutError,
        )

        method = getattr(self._iot, operation)
        attempt = 0
        while True:
            attempt += 1
            if self.pacer is not None:
                wait = self.pacer.before(operation)
                if wait > 0:
                    self._sleep(wait)
            try:
                answer = method(**params)
            except ClientError as exc:
                code = aws_error_code(exc)
                if self.pacer is not None and code in THROTTLED:
                    self.pacer.throttled(operation)  # the next attempt waits for its paced slot
                    attempt -= 1  # throttling costs no attempt: the call is retried for ever
                    continue
                if code in RETRYABLE and attempt < self.max_attempts:
                    self._sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))
                    continue
                raise _as_aws_error(operation, exc) from exc
            except (ConnectionError, HTTPClientError) as exc:  # refused, reset, closed, timed out
                # a dead endpoint (no answer, nothing listening) is tried MAX_ATTEMPTS times, as botocore
                # does without a pacer; a connection dropped under load is retried longer
                dead = isinstance(exc, (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError))
                limit = min(self.max_attempts, MAX_ATTEMPTS) if dead else self.max_attempts
                if self.pacer is not None and attempt < limit:
                    self._sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))
                    continue
                raise failed_call(exc, f"AWS IoT {operation}") from exc
            except BotoCoreError as exc:  # NoCredentialsError and the rest: one sentence each (aws_failure)
                raise failed_call(exc, f"AWS IoT {operation}") from exc
            if self.pacer is not None:
                self.pacer.succeeded(operation)
            return answer

    # -- CA registration ---------------------------------------------------------------------------

    def registration_code(self) -> str:
        return self._checked("get_registration_code")["registrationCode"]

    def describe_ca(self, ca_certificate_id: str) -> dict | None:
        """The CA's description and registration config, or None if AWS IoT does not know it."""
        return self.found("describe_ca_certificate", certificateId=ca_certificate_id)

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
        return self.pages(
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
        return self.pages(
            "list_principal_things", "things", "nextToken", "nextToken", missing_ok=True, principal=principal_arn
        )

    def thing_attributes(self, thing_name: str) -> dict[str, str] | None:
        """The thing's attributes, or None if there is no such thing."""
        answer = self.found("describe_thing", thingName=thing_name)
        return None if answer is None else dict(answer.get("attributes") or {})

    def certificate_ca(self, certificate_id: str) -> str | None:
        """The id of the CA a registered certificate was issued under (None: registered without a CA)."""
        return self._checked("describe_certificate", certificateId=certificate_id)["certificateDescription"].get(
            "caCertificateId"
        )

    def list_thing_principals(self, thing_name: str) -> list[str]:
        return self.pages(
            "list_thing_principals", "principals", "nextToken", "nextToken", missing_ok=True, thingName=thing_name
        )

    def detach_thing_principal(self, thing_name: str, principal_arn: str) -> bool:
        return self._unless_missing("detach_thing_principal", thingName=thing_name, principal=principal_arn)

    def delete_thing(self, thing_name: str) -> bool:
        """Delete a thing; detaching principals is eventually consistent, so 'still attached' is retried."""
        return self._unless_missing("delete_thing", settle=("InvalidRequestException",), thingName=thing_name)

    def list_attached_policies(self, target: str) -> list[str]:
        """The names of the policies attached directly to ``target`` (a certificate ARN)."""
        policies = self.pages(
            "list_attached_policies", "policies", "marker", "nextMarker", missing_ok=True, target=target
        )
        return [policy["policyName"] for policy in policies]

    def list_targets_for_policy(self, policy_name: str) -> list[str]:
        return self.pages(
            "list_targets_for_policy", "targets", "marker", "nextMarker", missing_ok=True, policyName=policy_name
        )

    def detach_policy(self, policy_name: str, target: str) -> bool:
        return self._unless_missing("detach_policy", policyName=policy_name, target=target)

    def delete_policy(self, policy_name: str) -> bool:
        return self._unless_missing("delete_policy", settle=("DeleteConflictException",), policyName=policy_name)

    # -- bulk registration (jitr fleet register) ------------------------------------------------------------

    def register_certificate(self, pem: str, *, ca_pem: str | None, status: str = "INACTIVE") -> tuple[str, str, bool]:
        """Register a device certificate under the CA whose PEM is ``ca_pem`` (without a CA when None).

        Returns ``(certificateId, certificateArn, created)``; a certificate AWS IoT already has is
        not an error (``created`` is False).
        """
        operation = "register_certificate" if ca_pem is not None else "register_certificate_without_ca"
        params: dict[str, Any] = {"certificatePem": pem, "status": status}
        if ca_pem is not None:
            params["caCertificatePem"] = ca_pem
        try:
            answer = self.call(operation, **params)
        except AwsError as exc:
            if exc.code != "ResourceAlreadyExistsException":
                raise
            cert_id, arn = exc.details.get("resourceId"), exc.details.get("resourceArn")
            if not cert_id or not arn:
                from base.certificates import certificate_id, load_certificate

                cert_id = cert_id or certificate_id(load_certificate(pem.encode()))
                arn = self._checked("describe_certificate", certificateId=cert_id)["certificateDescription"][
                    "certificateArn"
                ]
            return cert_id, arn, False
        return answer["certificateId"], answer["certificateArn"], True

    def create_thing(self, name: str, *, thing_type: str | None = None, attributes: dict | None = None) -> bool:
        """Create a thing; False if one of that name exists (AWS answers so when its configuration differs)."""
        params: dict[str, Any] = {"thingName": name}
        if thing_type:
            params["thingTypeName"] = thing_type
        if attributes:
            params["attributePayload"] = {"attributes": dict(attributes)}
        return self._unless_exists("create_thing", **params)

    def attach_policy(self, policy_name: str, target: str) -> None:
        self._checked("attach_policy", policyName=policy_name, target=target)

    def attach_thing_principal(self, thing_name: str, principal_arn: str) -> None:
        self._checked("attach_thing_principal", thingName=thing_name, principal=principal_arn)

    def add_thing_to_group(self, group: str, thing_name: str) -> None:
        self._checked("add_thing_to_thing_group", thingGroupName=group, thingName=thing_name)

    def ensure_thing_type(self, name: str) -> bool:
        """Create the thing type unless it exists; True if it was created."""
        if self._exists("describe_thing_type", thingTypeName=name):
            return False
        return self._unless_exists("create_thing_type", thingTypeName=name)

    def ensure_thing_group(self, name: str) -> bool:
        """Create the thing group unless it exists; True if it was created."""
        if self._exists("describe_thing_group", thingGroupName=name):
            return False
        return self._unless_exists("create_thing_group", thingGroupName=name)

    def ensure_policy(self, name: str, document: str) -> bool:
        """Create the policy with ``document`` (JSON) unless a policy of that name exists; True if created."""
        if self._exists("get_policy", policyName=name):
            return False
        return self._unless_exists("create_policy", policyName=name, policyDocument=document)

    def list_certificates(self) -> list[dict]:
        """Every certificate of the account (``certificateId``, ``certificateArn``, ``status``)."""
        return self.pages("list_certificates", "certificates", "marker", "nextMarker")

    def things_with(self, attribute: str, value: str) -> list[str]:
        """The names of the things whose ``attribute`` is ``value`` (ListThings filters on one attribute)."""
        things = self.pages(
            "list_things", "things", "nextToken", "nextToken", attributeName=attribute, attributeValue=value
        )
        return [thing["thingName"] for thing in things]

    def start_registration_task(self, *, template_body: str, bucket: str, key: str, role_arn: str) -> str:
        """StartThingRegistrationTask; the task id."""
        answer = self._checked(
            "start_thing_registration_task",
            templateBody=template_body,
            inputFileBucket=bucket,
            inputFileKey=key,
            roleArn=role_arn,
        )
        return answer["taskId"]

    def describe_registration_task(self, task_id: str) -> dict:
        return self._checked("describe_thing_registration_task", taskId=task_id)

    def registration_task_reports(self, task_id: str, report_type: str) -> list[str]:
        """The links to a task's RESULTS or ERRORS report files."""
        return self.pages(
            "list_thing_registration_task_reports",
            "resourceLinks",
            "nextToken",
            "nextToken",
            taskId=task_id,
            reportType=report_type,
        )

    def stop_registration_task(self, task_id: str) -> None:
        self._checked("stop_thing_registration_task", taskId=task_id)

    def found(self, operation: str, **params: Any) -> dict | None:
        """A describe or get ``operation``'s answer, or None when AWS answers that its resource does not exist."""
        try:
            return self.call(operation, **params)
        except AwsError as exc:
            if exc.code == "ResourceNotFoundException":
                return None
            raise

    def _exists(self, operation: str, **params: Any) -> bool:
        """True if a describe ``operation`` finds its resource."""
        return self._call_unless("ResourceNotFoundException", operation, **params)

    def _unless_exists(self, operation: str, **params: Any) -> bool:
        """Call a create ``operation``; False when AWS IoT answers that the resource exists."""
        return self._call_unless("ResourceAlreadyExistsException", operation, **params)

    def _call_unless(self, code: str, operation: str, **params: Any) -> bool:
        """Call ``operation``: True, or False when AWS answers the error ``code``; other errors raise AwsError."""
        try:
            self.call(operation, **params)
        except AwsError as exc:
            if exc.code == code:
                return False
            raise
        return True

    def data_endpoint(self) -> str:
        """The ATS data endpoint devices connect to: ``host`` on AWS, ``host:port`` on the local emulator."""
        answer = self._checked("describe_endpoint", endpointType="iot:Data-ATS")
        port = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-jitr-mqtt-port")
        return f"{answer['endpointAddress']}:{port}" if port else answer["endpointAddress"]

    def pages(
        self, operation: str, key: str, token_param: str, token_field: str, *, missing_ok: bool = False, **params: Any
    ) -> list:
        """Every item of a paginated list call (``[]`` for a missing resource when ``missing_ok``)."""
        items: list = []
        token = None
        while True:
            try:
                answer = self.call(operation, **params, **({token_param: token} if token else {}))
            except AwsError as exc:
                if missing_ok and exc.code == "ResourceNotFoundException":
                    return items
                raise
            items.extend(answer.get(key) or [])
            token = answer.get(token_field)
            if not token:
                return items

    def _unless_missing(self, operation: str, *, settle: tuple[str, ...] = (), **params: Any) -> bool:
        """Call ``operation``; False if its resource is already gone. Codes in ``settle`` are retried a few
        times with backoff: AWS IoT applies detachments eventually, so a delete right after may conflict."""
        attempts = 8
        for attempt in range(1, attempts + 1):
            try:
                self.call(operation, **params)
                return True
            except AwsError as exc:
                if exc.code == "ResourceNotFoundException":
                    return False
                if exc.code in settle and attempt < attempts:
                    self._sleep(min(self.max_delay, self.base_delay * 2**attempt))
                    continue
                raise
        raise AssertionError("unreachable")

    def _checked(self, operation: str, **params: Any) -> dict:
        return self.call(operation, **params)


def _as_aws_error(operation: str, exc: BaseException) -> AwsError:
    """AWS's answer as an AwsError sentence that keeps the error code and the answer's other members."""
    code, message = aws_error_parts(exc)
    response = getattr(exc, "response", None) or {}
    details = {k: v for k, v in response.items() if k not in ("Error", "ResponseMetadata")}
    return AwsError(f"AWS IoT refused {operation} ({code}): {message}.", code=aws_error_code(exc), details=details)
