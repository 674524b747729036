"""A batch mint stopped by a real signal, or started with an impossible size, leaves no key behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

JITR = [sys.executable, "-c", "from cli import run; run()"]


def children_of(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def pki(tmp_path, jitr):
    directory = tmp_path / "pki"
    assert jitr("ca", "init", "--dir", directory, "--country", "DE").exit_code == 0
    return directory


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads worker processes from /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])  # Ctrl-C (SIGINT) was already handled
def test_a_signal_during_a_batch_mint_removes_the_staging_folder_and_ends_the_workers(pki, signum):
    cmd = [*JITR, "device", "mint", "--dir", str(pki), "--count", "1000000", "--prefix", "h-", "--workers", "2"]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    batch = pki / "batches" / "h"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(batch.glob(".mint-*/private/*.key")):
        time.sleep(0.05)
    assert any(batch.glob(".mint-*/private/*.key")), "the mint never started writing keys"
    workers = children_of(process.pid)
    assert workers, "the batch runs in worker processes"
    process.send_signal(signum)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert signal.Signals(signum).name in err and "Traceback" not in err
    assert not batch.exists() or list(batch.iterdir()) == []  # no staging folder, no key
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.05)
    assert not any(alive(pid) for pid in workers), "worker processes outlived the mint"


def test_a_staging_folder_left_by_a_killed_run_is_removed_by_the_next_run(pki, jitr):
    stale = pki / "batches" / "s" / ".mint-999999999"  # above Linux's pid_max: no such process
    (stale / "private").mkdir(parents=True)
    (stale / "private" / "s-1.key").write_text("left by a run killed with SIGKILL")
    result = jitr("device", "mint", "--dir", pki, "--count", 2, "--prefix", "s-", "--workers", 1)
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert sorted(p.name for p in (pki / "batches" / "s" / "private").iterdir()) == ["s-1.key", "s-2.key"]


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (1_000_000_000_000, "A batch holds 1 to 100,000,000 devices"),  # the timeout 120 run that wrote 6.3 GB
        (100_000_000, "GiB free"),  # allowed, but more than any test machine's disk holds as files
    ],
)
def test_an_impossible_batch_size_is_refused_before_anything_is_written(pki, jitr, count, message):
    result = jitr("device", "mint", "--dir", pki, "--count", count, "--prefix", "big-")
    assert result.exit_code == 2 and message in result.output
    assert not (pki / "batches" / "big").exists()
