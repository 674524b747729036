"""The S3 calls the kit makes beside AWS IoT's: a bulk registration's input file and its report links,
whether a stack's archive bucket is still there, and emptying it. Errors are sentences
(:class:`base.errors.AwsError`).
"""

from __future__ import annotations

import urllib.request
from typing import Any

from base import config
from base.errors import AwsError
from cloud.session import aws_error_code, aws_error_parts, make_session

S3_DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys


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
            raise AwsError(f"Cannot create an S3 client: {str(exc).rstrip('.')}.") from exc

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


def empty_bucket(s3, bucket: str) -> int | None:
    """Delete every object version and delete marker in ``bucket``; the count, or None if there is no bucket.

    Listing repeats until a pass finds nothing, so objects written while it runs are deleted too.
    """
    from botocore.exceptions import ClientError

    total = 0
    try:
        while True:
            deleted = 0
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                entries = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
                keys = [{"Key": entry["Key"], "VersionId": entry["VersionId"]} for entry in entries]
                for start in range(0, len(keys), S3_DELETE_BATCH):
                    batch = keys[start : start + S3_DELETE_BATCH]
                    answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
                    if answer.get("Errors"):
                        first = answer["Errors"][0]
                        raise AwsError(
                            f"S3 did not delete {len(answer['Errors'])} objects of {bucket}, "
                            f"such as {first.get('Key')} ({first.get('Code')}: {first.get('Message')})."
                        )
                    deleted += len(batch)
            total += deleted
            if not deleted:
                return total
    except ClientError as exc:
        if aws_error_code(exc) == "NoSuchBucket":
            return None
        code, message = aws_error_parts(exc)
        raise AwsError(f"S3 refused to empty {bucket} ({code}): {message}.") from exc


def publish_site(s3, bucket: str, files: list[tuple[str, bytes, str]]) -> tuple[int, int]:
    """Put each ``(key, body, content type)`` in ``bucket`` in the order given, then delete every other key
    (a previous version's files); ``(uploaded, removed)``. Each object says ``Cache-Control: no-cache``, so a
    browser asks again (and gets 304 while it is unchanged)."""
    from botocore.exceptions import ClientError

    keep = {key for key, _, _ in files}
    try:
        for key, body, kind in files:
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=kind, CacheControl="no-cache")
        stale = [
            {"Key": item["Key"]}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])
            if item["Key"] not in keep
        ]
        for start in range(0, len(stale), S3_DELETE_BATCH):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": stale[start : start + S3_DELETE_BATCH], "Quiet": True})
    except ClientError as exc:
        raise _as_s3_error("the web page upload", bucket, exc) from exc
    return len(files), len(stale)


def fetch_url(url: str, *, timeout: float = 60.0) -> bytes:
    """GET a link AWS handed out, such as a registration task's report (a presigned S3 URL)."""
    if not url.startswith(("https://", "http://")):
        raise AwsError(f"AWS IoT answered a report link that is not an HTTP(S) URL: {url[:80]}.")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # the scheme is checked above
            return response.read()
    except OSError as exc:
        raise AwsError(f"Cannot download {url.split('?', 1)[0]}: {str(exc).rstrip('.')}.") from exc


def _as_s3_error(operation: str, bucket: str, exc: BaseException) -> AwsError:
    code, message = aws_error_parts(exc)
    return AwsError(f"S3 refused {operation} for bucket {bucket} ({code}): {message}.")
