"""jitr local deploy tells a missing archive bucket from a failure to look at it."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from emulator.cloudformation.deploy import StackDeployer


class _S3:
    def __init__(self, code: str | None) -> None:
        self.code = code

    def head_bucket(self, Bucket: str) -> dict:
        if self.code is None:
            return {}
        raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, "HeadBucket")


class _Session:
    region_name = "us-east-1"

    def __init__(self, code: str | None) -> None:
        self.s3 = _S3(code)

    def client(self, service: str):
        assert service == "s3"
        return self.s3


@pytest.mark.parametrize(("code", "exists"), [(None, True), ("404", False), ("NoSuchBucket", False)])
def test_a_bucket_is_missing_only_when_s3_says_so(code, exists):
    assert StackDeployer(_Session(code))._bucket_exists("archive") is exists


@pytest.mark.parametrize("code", ["403", "AccessDenied", "InternalError"])
def test_any_other_failure_to_look_at_a_bucket_is_raised_not_taken_for_a_missing_bucket(code):
    with pytest.raises(ClientError):
        StackDeployer(_Session(code))._bucket_exists("archive")
