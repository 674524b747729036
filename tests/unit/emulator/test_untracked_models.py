"""moto keeps every model object it ever made in a class-wide list; the emulator's are not kept there, so
objects that are gone (an overwritten S3 object, a deleted thing) are freed."""

from __future__ import annotations

import gc
import weakref

import boto3
from moto import mock_aws
from moto.s3.models import FakeKey

from emulator.store.backends import s3_backend, untrack_model_instances


def test_an_overwritten_s3_object_is_freed_and_no_model_list_grows():
    untrack_model_instances()
    untrack_model_instances()  # idempotent
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="archive")
        s3.put_object(Bucket="archive", Key="k", Body=b"first")
        first = weakref.ref(s3_backend("123456789012").buckets["archive"].keys["k"])
        s3.put_object(Bucket="archive", Key="k", Body=b"second")
        gc.collect()

        assert first() is None
        assert FakeKey.instances_tracked == []
        assert s3.get_object(Bucket="archive", Key="k")["Body"].read() == b"second"
