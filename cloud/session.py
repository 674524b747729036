"""Reaching AWS: a boto3 session from the kit's profile and region settings, and what a boto3 error says.

Shared by the IoT seam (:mod:`cloud.iot`), the S3 calls (:mod:`cloud.s3`) and the CLI's error edge
(:func:`aws_failure`); no call is made here. Every client of a session made here has connect and
read timeouts and a bounded number of attempts, so an endpoint that accepts TCP and never answers is
reported in about :data:`DEAD_ENDPOINT_SECONDS`, not waited on for minutes (botocore's defaults: 60 s
a read, retried).
"""

from __future__ import annotations

from typing import Any

from base import config
from base.errors import AwsError

CONNECT_TIMEOUT = 5.0  # seconds to open a connection
READ_TIMEOUT = 8.0  # seconds an answer may take; the kit's calls take milliseconds
MAX_ATTEMPTS = 3  # botocore's standard retry mode: a call and two retries
DEAD_ENDPOINT_SECONDS = MAX_ATTEMPTS * READ_TIMEOUT  # about 24 s, plus a second of backoff


def client_config(**options: Any):
    """The botocore ``Config`` of every kit client: timeouts, standard retries, and ``options``."""
    from botocore.config import Config

    settings: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "retries": {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    }
    return Config(**(settings | options))


def make_session(*, profile: str | None = None, region: str | None = None):
    """A boto3 session whose clients all have :func:`client_config` (a client's own config merges over it)."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    core.set_default_client_config(client_config())
    return boto3.Session(
        botocore_session=core,
        profile_name=config.resolve(profile, config.ENV_AWS_PROFILE),
        region_name=config.region(region),
    )


def _endpoint(exc: BaseException) -> str:
    url = getattr(exc, "kwargs", {}).get("endpoint_url") or config.resolve(None, config.ENV_AWS_ENDPOINT_URL)
    return url or "the AWS endpoint"


def aws_failure(exc: BaseException) -> AwsError | None:
    """What a botocore exception that escaped a command means, as one sentence; None for anything else."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    hint = " Is the endpoint right, and the emulator running ('jitr local up'; then eval \"$(jitr local env)\")?"
    if not config.resolve(None, config.ENV_AWS_ENDPOINT_URL):
        hint = " Check the network and the region."
    if isinstance(exc, ReadTimeoutError):
        return AwsError(
            f"{_endpoint(exc)} accepted the connection but did not answer within {READ_TIMEOUT:g} s "
            f"({MAX_ATTEMPTS} attempts).{hint}"
        )
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
        return AwsError(f"Cannot reach {_endpoint(exc)}.{hint}")
    if isinstance(exc, NoCredentialsError):
        return AwsError(
            "No AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID, or point AWS_ENDPOINT_URL at the "
            "local emulator ('jitr local up', then eval \"$(jitr local env)\")."
        )
    if isinstance(exc, ClientError):
        code, message = aws_error_parts(exc)
        operation = getattr(exc, "operation_name", None) or "the call"
        return AwsError(f"AWS refused {operation}: {code}: {message}.")
    if isinstance(exc, BotoCoreError):
        return AwsError(f"The AWS call failed: {str(exc).rstrip('.')}.")
    return None


def aws_error_code(exc: BaseException) -> str | None:
    """The ``Error.Code`` of a botocore ``ClientError``; None for other exceptions."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


def aws_error_parts(exc: BaseException) -> tuple[str, str]:
    """For an error sentence: the code (or the exception's type) and AWS's message without its full stop."""
    code = aws_error_code(exc) or type(exc).__name__
    response = getattr(exc, "response", None)
    message = (response.get("Error", {}).get("Message") if isinstance(response, dict) else None) or str(exc)
    return code, message.rstrip(".")


def failed_call(exc: BaseException, what: str) -> AwsError:
    """The sentence for a call (``what``: "AWS IoT describe_endpoint") that could not be made, and why."""
    found = aws_failure(exc)
    return AwsError(f"{what}: {found}") if found is not None else AwsError(f"{what} failed.")


def session_region() -> str:
    """The region boto3 would use here (AWS_REGION, AWS_DEFAULT_REGION, the profile's), else us-east-1."""
    import boto3  # only when asked: the CLI's start-up does not pay for boto3

    try:
        return boto3.session.Session().region_name or config.region()
    except Exception:  # a profile that does not exist, say: the environment alone then
        return config.region()
