"""The AWS IoT errors the emulator answers, as part of the kit's one error hierarchy (server side:
what the emulator answers, not :class:`base.errors.AwsError`, which is what the kit's calls get back).

Each class carries the AWS error code and HTTP status of the shape in botocore's IoT model, so a
boto3 client raises ``ClientError`` with the same ``Error.Code`` it would get from AWS.
The registry helpers raise them too, so the broker and rules engine see the same errors.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from base.errors import ExitStatus, JitrError


class IotServiceError(JitrError):
    """AWS IoT (here, the local emulator) refuses a call; ``code`` and ``status`` are AWS's."""

    exit_code = ExitStatus.AWS
    code = "InternalFailureException"
    status = 500

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields  # extra members of the error shape, such as resourceId

    def body(self) -> dict[str, Any]:
        return {"message": self.message, **self.fields}


class InvalidRequest(IotServiceError):
    """The request is not valid (a missing, malformed or contradictory parameter)."""

    code = "InvalidRequestException"
    status = 400


class ResourceNotFound(IotServiceError):
    """The CA, certificate, template or other resource named does not exist."""

    code = "ResourceNotFoundException"
    status = 404


class NotConfigured(IotServiceError):
    """The account has not configured it (GetV2LoggingOptions before any SetV2LoggingOptions)."""

    code = "NotConfiguredException"
    status = 404


class SqlParse(IotServiceError):
    """A topic rule's SQL statement does not parse (CreateTopicRule, ReplaceTopicRule)."""

    code = "SqlParseException"
    status = 400


class ResourceAlreadyExists(IotServiceError):
    """The resource already exists; the answer names it by ``resourceId`` and ``resourceArn``."""

    code = "ResourceAlreadyExistsException"
    status = 409

    def __init__(self, message: str, *, resource_id: str, resource_arn: str) -> None:
        super().__init__(message, resourceId=resource_id, resourceArn=resource_arn)


class CertificateValidation(IotServiceError):
    """A certificate is malformed, expired, not a CA, or not signed by the CA it claims."""

    code = "CertificateValidationException"
    status = 400


class RegistrationCodeValidation(IotServiceError):
    """The verification certificate's CN is not this account's registration code."""

    code = "RegistrationCodeValidationException"
    status = 400


class CertificateState(IotServiceError):
    """The certificate's status does not allow the operation (deleting an ACTIVE CA)."""

    code = "CertificateStateException"
    status = 406


class DeleteConflict(IotServiceError):
    """The resource is still in use (a template a CA's registrationConfig names)."""

    code = "DeleteConflictException"
    status = 409


class LimitExceeded(IotServiceError):
    """An AWS IoT limit is reached (ten CAs with the same subject)."""

    code = "LimitExceededException"
    status = 410


class Throttling(IotServiceError):
    """The operation's per-second quota is spent; retry with backoff."""

    code = "ThrottlingException"
    status = 400

    def __init__(self, message: str = "Rate exceeded") -> None:
        super().__init__(message)


class Forbidden(IotServiceError):
    """The data plane refuses the topic: one only AWS IoT itself publishes to (``$aws/events/...``)."""

    code = "ForbiddenException"
    status = 403


class RequestEntityTooLarge(IotServiceError):
    """A payload over AWS IoT's message size limit (128 KB)."""

    code = "RequestEntityTooLargeException"
    status = 413


class ServiceUnavailable(IotServiceError):
    """The service cannot take the request now (the emulator: its MQTT broker is not running)."""

    code = "ServiceUnavailableException"
    status = 503


def choice(value: str | None, allowed: Collection[str], name: str) -> str | None:
    """``value`` if it is one of ``allowed`` (or None), else InvalidRequestException."""
    if value is not None and value not in allowed:
        raise InvalidRequest(f"Value {value!r} at '{name}' failed to satisfy constraint: one of {', '.join(allowed)}.")
    return value


# -- Amazon Cognito Identity (JSON 1.1: every error is 400) ---------------------------------------------


class IdentityNotAuthorized(IotServiceError):
    """Cognito Identity refuses the logins (a bad or missing token, unauthenticated access not allowed)."""

    code = "NotAuthorizedException"
    status = 400


class IdentityResourceNotFound(IotServiceError):
    """The identity pool or identity does not exist."""

    code = "ResourceNotFoundException"
    status = 400


class IdentityInvalidParameter(IotServiceError):
    code = "InvalidParameterException"
    status = 400


class InvalidIdentityPoolConfiguration(IotServiceError):
    """The identity pool has no role for the kind of identity asking."""

    code = "InvalidIdentityPoolConfigurationException"
    status = 400
