"""`jitr local up` as a real process: its exports, its state-directory lock, and `local env` once it stopped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

JITR = [sys.executable, "-c", "from cli import run; run()"]
pytestmark = pytest.mark.timeout(120)


def jitr(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*JITR, *map(str, args)], capture_output=True, text=True, timeout=60, **kwargs)


def start(state: Path, *args: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [*JITR, "local", "up", "--state-dir", str(state), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and recorded_pid(state) != process.pid:
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    assert recorded_pid(state) == process.pid, "the emulator never wrote its endpoint"
    return process


def recorded_pid(state: Path) -> int | None:
    try:
        return json.loads((state / "endpoint.json").read_text()).get("pid")
    except (OSError, ValueError):
        return None


def stop(process: subprocess.Popen) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=30)


def test_local_env_exports_what_the_banner_shows_and_fails_once_the_emulator_stopped(tmp_path):
    state = tmp_path / "state"
    process = start(state)
    try:
        env = jitr("local", "env", "--state-dir", state)
        assert env.returncode == 0, env.stderr
        exports = dict(line.removeprefix("export ").split("=", 1) for line in env.stdout.splitlines())
        info = json.loads((state / "endpoint.json").read_text())
        assert exports["JITR_MQTT_ENDPOINT"] == f"localhost:{info['mqtt_port']}"
        assert exports["JITR_ROOT_CA"] == info["endpoint_ca"] and Path(info["endpoint_ca"]).is_file()
        assert info["website_endpoint_url"].startswith("http://127.0.0.1:")  # S3 websites, on loopback
        assert len(info["endpoint_spki_sha256"]) == 44  # base64 of a SHA-256: what a browser is told to trust
    finally:
        banner, _ = stop(process)
    assert process.returncode == 0
    for name, value in exports.items():  # the banner has every export, so copying it works as eval does
        assert f"export {name}={value}" in banner
    assert f"Websites: {info['website_endpoint_url']}" in banner
    gone = jitr("local", "env", "--state-dir", state)
    assert gone.returncode == 3 and "No emulator is running" in gone.stderr and gone.stdout == ""


def test_a_second_local_up_on_a_state_directory_in_use_is_refused_and_changes_nothing(tmp_path):
    state = tmp_path / "state"
    first = start(state)
    try:
        before = (state / "endpoint.json").read_text()
        second = jitr("local", "up", "--state-dir", state)
        assert second.returncode == 4, second.stderr
        assert f"pid {first.pid}" in second.stderr and "another --state-dir" in second.stderr
        assert (state / "endpoint.json").read_text() == before
        assert jitr("local", "env", "--state-dir", state).returncode == 0  # the first still runs, still found
    finally:
        stop(first)


def test_an_emulator_killed_outright_leaves_exports_that_local_env_refuses(tmp_path):
    state = tmp_path / "state"
    process = start(state)
    process.kill()  # SIGKILL: endpoint.json stays, but the lock goes with the process
    process.communicate(timeout=30)
    assert (state / "endpoint.json").exists()
    stale = jitr("local", "env", "--state-dir", state)
    assert stale.returncode == 3 and "No emulator is running" in stale.stderr
    again = start(state)  # and a new emulator may take the state directory
    stop(again)
    assert again.returncode == 0
