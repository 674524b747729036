"""S3 objects kept on disk: moto answers every listing exactly as it does from memory, what moto changes on
an object it has read is kept, a snapshot names a bucket's rows instead of holding them, and memory holds
only the recently used names however many objects the bucket has."""

from __future__ import annotations

import pickle
import random

import boto3
import pytest
from moto import mock_aws

from emulator.persistence import Persistence
from emulator.store import s3_objects, snapshot
from emulator.store.object_file import ObjectFile
from emulator.store.state import StateStore

REGION = "us-east-1"


@pytest.fixture
def objects(tmp_path, monkeypatch):
    monkeypatch.setattr(s3_objects, "HOT_NAMES", 16)  # a bucket keeps its 16 last used names in memory
    with mock_aws():
        s3_objects.activate(tmp_path / "emulator.objects")
        try:
            yield boto3.client("s3", region_name=REGION)
        finally:
            s3_objects.deactivate()


def _bucket(name):
    from emulator.store.backends import s3_backend

    return s3_backend("123456789012").buckets[name]


def _names(rng):
    folders = ["devices/", "devices/a/", "devices/b/telemetry/", "logs/", "", "z/", "devices/a-b/"]
    folders += [f"devices/c{index}/" for index in range(6)] + [f"f{index}/" for index in range(6)]
    return sorted({rng.choice(folders) + f"{rng.randrange(10_000):05d}.json" for _ in range(120)})


def _all_pages(client, call, **kwargs):
    pages = []
    token_field, next_field = (
        ("ContinuationToken", "NextContinuationToken") if call == "list_objects_v2" else ("Marker", "NextMarker")
    )
    while True:
        page = getattr(client, call)(**kwargs)
        page.pop("ResponseMetadata")
        pages.append(page)
        if not page.get("IsTruncated") or len(pages) > 100:
            return pages
        following = page.get(next_field) or (page["Contents"][-1]["Key"] if "Contents" in page else None)
        kwargs = kwargs | {token_field: following}


def _strip(pages):
    """Pages without what differs between two buckets (their names, the owner ids, the objects' times)."""
    for page in pages:
        page.pop("Name", None)
        for item in page.get("Contents", []):
            item.pop("LastModified", None)
            item.pop("Owner", None)
    return pages


def test_every_listing_is_the_one_moto_gives_from_memory(objects):
    rng = random.Random(7)
    names = _names(rng)
    objects.create_bucket(Bucket="on-disk")
    s3_objects.deactivate()
    objects.create_bucket(Bucket="in-memory")
    for name in names:
        for bucket in ("on-disk", "in-memory"):
            objects.put_object(Bucket=bucket, Key=name, Body=name.encode())
    for name in rng.sample(names, 20):  # deleted ones are not listed
        for bucket in ("on-disk", "in-memory"):
            objects.delete_object(Bucket=bucket, Key=name)
    assert isinstance(_bucket("on-disk").keys, s3_objects.DiskKeyStore)
    assert not isinstance(_bucket("in-memory").keys, s3_objects.DiskKeyStore)

    queries = []
    for prefix in ("", "devices/", "devices/a", "logs/", "nothing/"):
        for delimiter in (None, "/"):
            for max_keys in (2, 25, 1000):
                for start in (None, "devices/a/05000.json", "logs/"):
                    queries.append((prefix, delimiter, max_keys, start))
    for prefix, delimiter, max_keys, start in queries:
        for call in ("list_objects", "list_objects_v2"):
            kwargs = {"Prefix": prefix, "MaxKeys": max_keys} | ({"Delimiter": delimiter} if delimiter else {})
            if start:
                kwargs |= {"StartAfter": start} if call == "list_objects_v2" else {"Marker": start}
            on_disk = _strip(_all_pages(objects, call, Bucket="on-disk", **kwargs))
            in_memory = _strip(_all_pages(objects, call, Bucket="in-memory", **kwargs))
            assert on_disk == in_memory, (call, kwargs)


def test_objects_read_written_overwritten_and_deleted_through_the_api(objects):
    objects.create_bucket(Bucket="archive")
    objects.put_object(Bucket="archive", Key="a.json", Body=b"first", ContentType="application/json")
    objects.put_object(Bucket="archive", Key="a.json", Body=b"second")
    objects.copy_object(Bucket="archive", Key="b.json", CopySource={"Bucket": "archive", "Key": "a.json"})

    assert objects.get_object(Bucket="archive", Key="a.json")["Body"].read() == b"second"
    assert objects.get_object(Bucket="archive", Key="b.json")["Body"].read() == b"second"
    assert objects.head_object(Bucket="archive", Key="a.json")["ContentLength"] == 6
    objects.delete_objects(Bucket="archive", Delete={"Objects": [{"Key": "a.json"}, {"Key": "b.json"}]})
    with pytest.raises(objects.exceptions.NoSuchKey):
        objects.get_object(Bucket="archive", Key="a.json")
    objects.delete_bucket(Bucket="archive")  # empty now: moto asks the file
    assert "archive" not in [b["Name"] for b in objects.list_buckets()["Buckets"]]


def test_a_bucket_with_objects_is_not_deleted(objects):
    objects.create_bucket(Bucket="archive")
    objects.put_object(Bucket="archive", Key="a.json", Body=b"{}")

    with pytest.raises(objects.exceptions.ClientError, match="BucketNotEmpty"):
        objects.delete_bucket(Bucket="archive")


def test_versions_of_a_versioned_bucket_are_kept_and_listed(objects):
    objects.create_bucket(Bucket="versioned")
    objects.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    first = objects.put_object(Bucket="versioned", Key="k", Body=b"1")["VersionId"]
    objects.put_object(Bucket="versioned", Key="k", Body=b"2")
    objects.delete_object(Bucket="versioned", Key="k")

    versions = objects.list_object_versions(Bucket="versioned")
    assert len(versions["Versions"]) == 2 and len(versions["DeleteMarkers"]) == 1
    assert objects.list_objects_v2(Bucket="versioned")["KeyCount"] == 0
    assert objects.get_object(Bucket="versioned", Key="k", VersionId=first)["Body"].read() == b"1"


def test_what_moto_changes_on_an_object_it_read_is_kept_after_the_name_leaves_memory(objects):
    objects.create_bucket(Bucket="archive")
    objects.put_object(Bucket="archive", Key="k", Body=b"x")
    objects.put_object_acl(Bucket="archive", Key="k", ACL="public-read")
    for index in range(s3_objects.HOT_NAMES + 10):  # pushes "k" out of memory
        objects.put_object(Bucket="archive", Key=f"other-{index}", Body=b"y")

    assert "k" not in _bucket("archive").keys._hot
    grants = objects.get_object_acl(Bucket="archive", Key="k")["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in grants)


def test_memory_holds_only_the_recently_used_names(objects):
    objects.create_bucket(Bucket="archive")
    store = _bucket("archive").keys
    for index in range(3 * s3_objects.HOT_NAMES):
        objects.put_object(Bucket="archive", Key=f"devices/t/{index:05d}", Body=b"{}")

    assert len(store._hot) == s3_objects.HOT_NAMES
    assert dict.__len__(store) == 0  # moto's own dict stays empty
    assert len(store) == 3 * s3_objects.HOT_NAMES
    assert objects.list_objects_v2(Bucket="archive", Prefix="devices/t/")["KeyCount"] == 3 * s3_objects.HOT_NAMES


def test_a_snapshot_names_the_rows_and_a_restart_reads_them(objects, tmp_path):
    objects.create_bucket(Bucket="archive")
    for index in range(50):
        objects.put_object(Bucket="archive", Key=f"m/{index:03d}", Body=str(index).encode())

    data = snapshot.capture({})
    assert b"m/049" not in data and len(data) < 200_000  # names and bodies are in the file, not the snapshot
    contents = pickle.loads(data.partition(b"\n")[2])
    snapshot.install(contents)

    assert objects.get_object(Bucket="archive", Key="m/049")["Body"].read() == b"49"
    assert objects.list_objects_v2(Bucket="archive")["KeyCount"] == 50


def test_persistence_keeps_objects_across_a_restart_and_drops_rows_no_snapshot_names(tmp_path):
    with mock_aws():
        first = Persistence(tmp_path, StateStore())
        first.load()
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket="archive")
        client.put_object(Bucket="archive", Key="kept", Body=b"1")
        first.save()
        client.create_bucket(Bucket="after-the-snapshot")  # lost with a crash: its rows go too
        client.put_object(Bucket="after-the-snapshot", Key="orphan", Body=b"2")
        s3_objects.deactivate()  # the process dies here: no save at stop

    with mock_aws():
        second = Persistence(tmp_path, StateStore())
        second.load()
        try:
            client = boto3.client("s3", region_name=REGION)
            assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["archive"]
            assert client.get_object(Bucket="archive", Key="kept")["Body"].read() == b"1"
            assert ObjectFile(second.objects_path).stores() == {_bucket("archive").keys.store}
        finally:
            second.stop()
    assert (tmp_path / "emulator.objects").stat().st_mode & 0o777 == 0o600


def test_fresh_sets_the_objects_aside_with_the_snapshot(tmp_path):
    with mock_aws():
        first = Persistence(tmp_path, StateStore())
        first.load()
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="archive")
        first.stop()
    with mock_aws():
        second = Persistence(tmp_path, StateStore())
        second.load(fresh=True)
        try:
            assert boto3.client("s3", region_name=REGION).list_buckets()["Buckets"] == []
            assert (tmp_path / "emulator.objects.old").exists()
        finally:
            second.stop()


def test_a_snapshot_from_before_the_file_moves_its_objects_to_it(tmp_path):
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket="old")  # no file active: in memory, as older emulators kept them
        client.put_object(Bucket="old", Key="k", Body=b"v")
        s3_objects.activate(tmp_path / "emulator.objects")
        try:
            s3_objects.adopt([_s3()])
            assert isinstance(_bucket("old").keys, s3_objects.DiskKeyStore)
            assert client.get_object(Bucket="old", Key="k")["Body"].read() == b"v"
        finally:
            s3_objects.deactivate()


def _s3():
    from emulator.store.backends import s3_backend

    return s3_backend("123456789012")
