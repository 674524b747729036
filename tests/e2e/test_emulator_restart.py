"""State that survives a restart: everything the emulator holds is there again after a clean stop or a
SIGKILL, ACTIVE devices connect without a step by the user, and a damaged snapshot is refused."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import boto3
import pytest

from emulator.cloudformation.deploy import StackDeployer
from tests.e2e.conftest import (
    Device,
    deploy_stack,
    mint,
    publish,
    register_ca,
    running_emulator,
    wait_for,
)
from tests.e2e.test_api_gateway import PLATFORM, curl, sign_in
from tests.e2e.test_local_up import jitr as run_jitr
from tests.e2e.test_local_up import start, stop

pytestmark = pytest.mark.timeout(180)


def _archived(session, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in session.client("s3").list_objects_v2(Bucket=bucket).get("Contents", []))


def _forget_everything(iot) -> None:
    """What a new process starts with: moto's backends and the emulator's own state empty."""
    iot.api.reset()


def test_a_restarted_emulator_has_the_stacks_devices_and_data_and_active_devices_just_connect(tmp_path, jitr):
    state = tmp_path / "state"
    pki = tmp_path / "pki"
    assert jitr("ca", "init", "--dir", pki, "--country", "DE", "--intermediate").exit_code == 0
    with running_emulator(state, persist=True) as iot:
        _forget_everything(iot)  # as a new process: not what earlier tests left in this one's moto backends
        session = boto3.Session(region_name=iot.info()["region"])
        ca_id = register_ca(jitr, pki)
        kit = deploy_stack(session, ca_id)
        platform = StackDeployer(session).deploy(PLATFORM, "platform", {})
        chain, key = mint(jitr, pki, "dev-1")
        device = Device(iot, chain, key, "dev-1")
        assert device.connect_once() == (None, None)  # JITR's first connect, then the function activates it
        client, _ = device.connect_until_accepted()
        publish(client, "devices/jitr-test/dev-1/telemetry", {"n": 1})
        client.disconnect()
        bucket = kit["outputs"]["ArchiveBucketName"]
        before = wait_for(lambda: _archived(session, bucket))
        assert curl(platform["outputs"]["HttpUrl"] + "/any/store")[0] == 201  # a table item, through the function
        tokens = sign_in({"session": session} | platform["outputs"], "ann")
        info = iot.info()
    _forget_everything(iot)  # the stop saved the snapshot; what follows starts from it alone

    with running_emulator(state, persist=True) as iot:
        again = iot.info()
        assert (again["aws_endpoint_url"], again["mqtt_port"], again["apigateway_url"]) == (
            info["aws_endpoint_url"],
            info["mqtt_port"],
            info["apigateway_url"],
        )  # the ports of the last run: devices, shells and stack outputs find the emulator where it was
        rc, client = Device(iot, chain, key, "dev-1").connect_once()
        assert rc == 0, "an ACTIVE device is accepted at its first connect after the restart"
        publish(client, "devices/jitr-test/dev-1/telemetry", {"n": 2})
        client.disconnect()
        assert len(wait_for(lambda: (keys := _archived(session, bucket)) and len(keys) == 2 and keys)) == 2
        assert set(before) < set(_archived(session, bucket))
        assert StackDeployer(session).record("platform")["outputs"] == platform["outputs"]
        table = next(r["physicalId"] for r in platform["resources"] if r["logicalId"] == "Table")
        item = session.client("dynamodb").get_item(TableName=table, Key={"thing": {"S": "t1"}})["Item"]
        assert item == {"thing": {"S": "t1"}, "owner": {"S": "ann"}}
        status, _, body = curl(
            platform["outputs"]["HttpUrl"] + "/closed", "-X", "POST", "-H", f"Authorization: {tokens['IdToken']}"
        )
        assert (
            status == 200
            and json.loads(body)["event"]["requestContext"]["authorizer"]["jwt"]["claims"]["cognito:username"] == "ann"
        )  # the user pool, its key and the signed-in user's token


def _client(state: Path, service: Any) -> Any:
    info = json.loads((state / "endpoint.json").read_text())
    return boto3.client(
        service,
        endpoint_url=info["aws_endpoint_url"],
        region_name=info["region"],
        aws_access_key_id="emulator",
        aws_secret_access_key="emulator",
    )


def _things(state: Path) -> list[str]:
    return [t["thingName"] for t in _client(state, "iot").list_things()["things"]]


def _saved_header(state: Path) -> bytes:
    try:
        return (state / "emulator.snapshot").read_bytes().partition(b"\n")[0]
    except OSError:
        return b""


def test_a_change_made_just_before_sigterm_is_there_after_the_restart(tmp_path):
    state = tmp_path / "state"
    process = start(state)
    try:
        _client(state, "iot").create_thing(thingName="last-second")
    finally:
        stop(process)
    assert process.returncode == 0
    again = start(state)
    try:
        assert _things(state) == ["last-second"]
    finally:
        stop(again)


def test_after_sigkill_the_emulator_starts_with_the_last_snapshot_taken(tmp_path):
    state = tmp_path / "state"
    process = start(state)
    try:
        empty = _saved_header(state)
        _client(state, "iot").create_thing(thingName="saved")
        wait_for(lambda: _saved_header(state) not in (b"", empty), timeout=10)  # the periodic save took it
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    again = start(state)
    try:
        assert _things(state) == ["saved"]
    finally:
        stop(again)


def test_a_damaged_snapshot_is_refused_in_one_sentence_and_kept_and_fresh_starts_empty(tmp_path):
    state = tmp_path / "state"
    process = start(state)
    try:
        _client(state, "iot").create_thing(thingName="before")
    finally:
        stop(process)
    path = state / "emulator.snapshot"
    damaged = bytearray(path.read_bytes())
    damaged[-5] ^= 0xFF
    path.write_bytes(bytes(damaged))

    refused = run_jitr("local", "up", "--state-dir", state)

    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"Error: The emulator's snapshot {path.resolve()} is damaged: its checksum does not match (it is left as it "
        "is; move it away, or start with --fresh)."
    ]
    assert path.read_bytes() == bytes(damaged)

    fresh = start(state, "--fresh")
    try:
        assert _things(state) == []
        assert (state / "emulator.snapshot.old").read_bytes() == bytes(damaged)  # set aside, not deleted
    finally:
        stop(fresh)


def test_an_s3_object_file_others_could_write_is_refused_in_one_sentence(tmp_path):
    state = tmp_path / "state"
    process = start(state)
    try:
        _client(state, "s3").create_bucket(Bucket="archive")
        _client(state, "s3").put_object(Bucket="archive", Key="a", Body=b"1")
    finally:
        stop(process)
    objects = state / "emulator.objects"
    objects.chmod(0o666)

    refused = run_jitr("local", "up", "--state-dir", state)

    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"Error: The emulator's S3 object file {objects.resolve()} is writable by, or belongs to, another user; it is "
        "not opened, since reading its objects runs what is in it (move it away, or start with --fresh)."
    ]
    objects.chmod(0o600)
    again = start(state)
    try:
        assert _client(state, "s3").get_object(Bucket="archive", Key="a")["Body"].read() == b"1"
    finally:
        stop(again)
