"""``jitr demo`` (what ``make demo`` runs): the whole loop against an in-process emulator, step by step."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from cli.demo_web import get_from_loopback

VENV_JITR = Path(sys.executable).with_name("jitr")
JITR = VENV_JITR if VENV_JITR.exists() else Path(__file__).resolve().parents[2] / ".venv/bin/jitr"
STEP = re.compile(r"^\[(\d+)\] (.+?)\s+(\d+\.\d{3}) s  (.*)$")


def _steps(stdout: str) -> dict[str, str]:
    """Each step's title -> its detail; the step numbers must run 1, 2, 3, ... with a timing each."""
    matches = [STEP.match(line) for line in stdout.splitlines() if line.startswith("[")]
    found = [m for m in matches if m is not None]
    assert len(found) == len(matches), stdout
    assert [int(m.group(1)) for m in found] == list(range(1, len(found) + 1))
    return {m.group(2): m.group(4) for m in found}


def test_the_demo_runs_the_whole_loop_with_a_timing_per_step_and_can_run_again_serving_the_web_page(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    for serve in (False, True):  # the second run replaces what the first made, and serves the page until SIGTERM
        command = [str(JITR), "demo", "--dir", str(tmp_path / "demo"), "--devices", "20", *(["--serve"] * serve)]
        done = _serve_until_sigterm(command, env, tmp_path) if serve else subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        steps = _steps(done.stdout)
        assert steps["First connect: JITR drops it"].startswith("dropped before CONNACK")
        assert "PENDING_ACTIVATION" in steps["First connect: JITR drops it"]
        assert steps["The activation Lambda activates it"].startswith("ACTIVE; thing demo-device-1")
        assert steps["Reconnect and publish"].startswith("accepted on attempt 1")
        assert re.match(
            r"s3://\S+/devices/jitr-demo/demo-device-1/telemetry/\d{13}_", steps["The archive rule wrote it to S3"]
        )
        assert "certificate" in steps["demo-box-1 enrolls through the API (key made on it)"]
        assert re.match(
            r"accepted on attempt 1; archived as s3://\S+/devices/jitr-demo/demo-box-1/telemetry/\d{13}_",
            steps["demo-box-1 connects and publishes"],
        )
        assert re.match(
            r"13 files in jitr-demo-hostingbucket-\S+; open http://jitr-demo-hostingbucket-\S+\.s3-website-us-east-1"
            r"\.localhost:\d+/$",
            steps["The web page is hosted in S3 (website endpoint)"],
        )
        assert steps["Verify every device chain (RFC 5280)"] == "20 chains verify up to the root"
    assert len((tmp_path / "demo/fleet/manifest.jsonl").read_text().splitlines()) == 20


def test_the_demo_refuses_to_wipe_a_folder_it_did_not_make(jitr, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/keep.txt").write_text("precious")
    result = jitr("demo", "--dir", tmp_path / "mine")
    assert result.exit_code == 4
    assert (tmp_path / "mine/keep.txt").read_text() == "precious"


def _serve_until_sigterm(command: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``jitr demo --serve``; once it serves, fetch the page as a browser would, then SIGTERM it."""
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        assert process.stdout is not None
        for line in process.stdout:  # bounded: the demo ends, or says it serves, within the test's timeout
            lines.append(line)
            if "Ctrl-C stops it" in line:
                break
        said = "".join(lines)
        url = next(line.split("The web page: ", 1)[1].split("/ ", 1)[0] for line in lines if "The web page: " in line)
        assert "--ignore-certificate-errors-spki-list=" in said
        assert b'<script type="module" src="src/main.js">' in get_from_loopback(f"{url}/")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(command, process.returncode, said + out, err)
