"""The periodic snapshot looks only while something happens, and once more after, so an idle emulator
costs nothing however much it holds; a save with nothing changed writes nothing."""

from __future__ import annotations

import datetime as dt

from emulator.persistence import Persistence
from emulator.store.records import RegistrationTask
from emulator.store.state import StateStore


def test_an_idle_emulator_is_looked_at_once_more_then_left_alone_until_something_happens(tmp_path):
    store = StateStore()
    persistence = Persistence(tmp_path, store)

    looks = [persistence._maybe_changed() for _ in range(4)]
    store.touch()
    after_touch = [persistence._maybe_changed() for _ in range(3)]

    assert looks == [True, True, False, False]
    assert after_touch == [True, True, False]


def test_a_running_registration_task_keeps_the_snapshot_looking(tmp_path):
    store = StateStore()
    now = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    task = RegistrationTask("t-1", "{}", "bucket", "key", "arn:aws:iam::123456789012:role/r", now, now)
    store.region("123456789012", "us-east-1").registration_tasks["t-1"] = task
    persistence = Persistence(tmp_path, store)

    assert all(persistence._maybe_changed() for _ in range(5))


def test_a_save_writes_only_when_the_state_changed(tmp_path):
    store = StateStore()
    persistence = Persistence(tmp_path, store)

    assert persistence.save() is True
    written = persistence.path.stat().st_mtime_ns
    assert persistence.save() is False
    assert persistence.path.stat().st_mtime_ns == written
    store.region("123456789012", "eu-central-1").registration_code = "abc"
    assert persistence.save() is True
