"""Reaching AWS: a boto3 session from the kit's profile and region settings, and what a boto3 error says.

Shared by the IoT seam (:mod:`ca.aws`) and the S3 calls (:mod:`ca.s3`); neither makes a call here.
"""

from __future__ import annotations

from ca import config


def make_session(*, profile: str | None = None, region: str | None = None):
    import boto3

    return boto3.Session(
        profile_name=config.resolve(profile, config.ENV_AWS_PROFILE), region_name=config.region(region)
    )


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
