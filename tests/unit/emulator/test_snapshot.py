"""The snapshot file: what does not pickle as it is comes back working, and a file that is not whole,
not ours or not from this moto is refused with one sentence and left as it was."""

from __future__ import annotations

import collections
import datetime as dt
import os
import pickle
import threading
import weakref
from pathlib import Path

import moto
import pytest

from base.keys import generate_key
from ca.issue import issue_root, make_name
from emulator.store import snapshot
from emulator.store.records import FAILED, IN_PROGRESS, RegistrationTask
from emulator.store.state import INTERRUPTED, RegionState, StateStore


class Model:
    pass


def roundtrip(value):
    """``value`` saved in a snapshot and loaded from it."""
    payload = snapshot.capture({"value": value}).partition(b"\n")[2]
    return pickle.loads(payload).extra["value"]


def test_locks_weak_dictionaries_and_lambda_factories_come_back_working():
    held = Model()
    tracked = weakref.WeakValueDictionary({"a": held})
    nested = collections.defaultdict(lambda: collections.defaultdict(dict))
    nested["x"]["y"]["z"] = 1
    value = {
        "lock": threading.Lock(),
        "rlock": threading.RLock(),
        "event": threading.Event(),
        "held": held,
        "tracked": tracked,
        "nested": nested,
    }

    back = roundtrip(value)

    with back["lock"], back["rlock"]:
        pass
    assert back["event"].wait(0) is False
    assert back["tracked"]["a"] is back["held"]  # one object, still weakly tracked
    assert back["nested"]["x"]["y"] == {"z": 1}
    assert back["nested"]["new"]["deeper"] == {}  # the factory still makes nested defaultdicts
    assert roundtrip(back)["nested"]["x"]["y"] == {"z": 1}  # and what it rebuilt saves again


def test_keys_and_certificates_come_back_equal(now):
    key = generate_key("ec-p256")
    certificate = issue_root(key, make_name("Snapshot Root", country="DE"), now=now, days=30)

    back = roundtrip({"key": key, "public": key.public_key(), "certificate": certificate})

    assert back["certificate"] == certificate
    assert back["public"] == key.public_key()
    assert back["key"].private_numbers() == key.private_numbers()


def test_a_file_is_written_whole_with_mode_0600_and_read_back(tmp_path):
    path = tmp_path / "emulator.snapshot"
    snapshot.write(path, snapshot.capture({"answer": 42}))

    assert path.stat().st_mode & 0o777 == 0o600
    assert snapshot.read(path).extra == {"answer": 42}
    assert not list(tmp_path.glob("*.partial"))


def _written(tmp_path: Path) -> Path:
    path = tmp_path / "emulator.snapshot"
    snapshot.write(path, snapshot.capture({"answer": 42}))
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "is damaged: its checksum does not match"),
        (lambda data: data[:-10], "is damaged: its checksum does not match"),
        (lambda data: b"hello\n" + data, "is not an emulator snapshot"),
        (lambda data: b"", "is not an emulator snapshot"),
        (lambda data: data.replace(f"moto={moto.__version__}".encode(), b"moto=4.0.0", 1), "written with moto 4.0.0"),
        (lambda data: data.replace(b"snapshot 1 ", b"snapshot 9 ", 1), "of format 9, not 1"),
    ],
    ids=["flipped-bit", "truncated", "foreign-header", "empty", "other-moto", "other-format"],
)
def test_a_snapshot_that_is_not_whole_or_not_this_versions_is_refused_and_left_as_it_is(tmp_path, damage, message):
    path = _written(tmp_path)
    damaged = damage(path.read_bytes())
    path.write_bytes(damaged)

    with pytest.raises(snapshot.SnapshotError, match=message) as refused:
        snapshot.read(path)

    assert "left as it is" in str(refused.value) and "\n" not in str(refused.value)
    assert path.read_bytes() == damaged


def test_a_snapshot_others_can_write_is_not_loaded(tmp_path):
    path = _written(tmp_path)
    os.chmod(path, 0o666)

    with pytest.raises(snapshot.SnapshotError, match="writable by, or belongs to, another user"):
        snapshot.read(path)


def test_what_does_not_pickle_is_named_in_the_error():
    with pytest.raises(snapshot.SnapshotError, match="Cannot save the emulator's own socket state"):
        snapshot.capture({"socket": __import__("socket").socket()})


def test_a_registration_task_that_ran_at_the_stop_ends_failed_after_a_restore():
    now = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    task = RegistrationTask("t-1", "{}", "bucket", "key", "arn:aws:iam::123456789012:role/r", now, now)
    assert task.status == IN_PROGRESS
    state = RegionState(registration_tasks={"t-1": task})
    store = StateStore()

    store.restore({("123456789012", "us-east-1"): state})

    restored = store.region("123456789012", "us-east-1").registration_tasks["t-1"]
    assert (restored.status, restored.message) == (FAILED, INTERRUPTED)
