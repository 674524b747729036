"""The S3 calls the kit makes beside AWS IoT's: a bulk registration's input file and its report links,
and whether a stack's archive bucket is still there. Errors are sentences (:class:`ca.errors.AwsError`).
"""

from __future__ import annotations

import urllib.request
from typing import Any

from ca import config
from ca.aws import aws_error_code, make_session
from ca.errors import AwsError


def bucket_exists(client, bucket: str) -> bool:
    """Whether ``bucket`` exists (HeadBucket), with a boto3 S3 client."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if aws_error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise _as_s3_error("head_bucket", bucket, exc) from exc
    return True


class S3Api:
    """The S3 calls bulk registration makes: a bucket for the task's input file, and the upload."""

    def __init__(self, client, region: str) -> None:
        self._s3 = client
        self.region = region

    @classmethod
    def connect(cls, *, profile: str | None = None, region: str | None = None) -> S3Api:
        try:
            session = make_session(profile=profile, region=region)
            return cls(session.client("s3"), session.region_name or config.region(region))
        except Exception as exc:  # botocore's ProfileNotFound and friends
            raise AwsError(f"Cannot create an S3 client: {exc}.") from exc

    def ensure_bucket(self, bucket: str) -> bool:
        """Create ``bucket`` in the session's region unless it exists; True if it was created."""
        from botocore.exceptions import ClientError

        if bucket_exists(self._s3, bucket):
            return False
        params: dict[str, Any] = {"Bucket": bucket}
        if self.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._s3.create_bucket(**params)
        except ClientError as exc:
            if aws_error_code(exc) == "BucketAlreadyOwnedByYou":
                return False
            raise _as_s3_error("create_bucket", bucket, exc) from exc
        return True

    def put_object(self, bucket: str, key: str, body: bytes) -> None:
        from botocore.exceptions import ClientError

        try:
            self._s3.put_object(Bucket=bucket, Key=key, Body=body)
        except ClientError as exc:
            raise _as_s3_error("put_object", bucket, exc) from exc


def fetch_url(url: str, *, timeout: float = 60.0) -> bytes:
    """GET a link AWS handed out, such as a registration task's report (a presigned S3 URL)."""
    if not url.startswith(("https://", "http://")):
        raise AwsError(f"AWS IoT answered a report link that is not an HTTP(S) URL: {url[:80]}.")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # the scheme is checked above
            return response.read()
    except OSError as exc:
        raise AwsError(f"Cannot download {url.split('?', 1)[0]}: {exc}.") from exc


def _as_s3_error(operation: str, bucket: str, exc: BaseException) -> AwsError:
    code = aws_error_code(exc) or type(exc).__name__
    message = getattr(exc, "response", {}).get("Error", {}).get("Message") or str(exc)
    return AwsError(f"S3 refused {operation} for bucket {bucket} ({code}): {message.rstrip('.')}.")
