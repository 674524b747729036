"""The local emulator as the benchmarks run it: ``jitr local up --json`` in a process of its own.

Shared by ``bench_emulator.py`` and ``bench_fleet_register.py``, so that what is measured runs in
another process (and another GIL) than the load that measures it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
JITR = str(Path(sys.executable).with_name("jitr"))


class EmulatorProcess:
    """``jitr local up --json --fresh --state-dir STATE [--quota ...]``, running until :meth:`stop`."""

    def __init__(self, state: Path, quotas: Sequence[str] = (), options: Sequence[str] = ()) -> None:
        self.state = Path(state)
        command = [JITR, "local", "up", "--json", "--fresh", "--state-dir", str(self.state)]  # each run starts empty
        for quota in quotas:
            command += ["--quota", quota]
        command += options
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self._info: dict | None = None
        ready = threading.Event()

        def read() -> None:  # the indented JSON object `local up --json` prints first; the rest is drained
            buffered = ""
            assert self.process.stdout is not None  # stdout=PIPE
            for line in self.process.stdout:
                if self._info is None:
                    buffered += line
                    if line.startswith("}"):
                        self._info = json.loads(buffered)
                        ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(60) or self._info is None:
            self.stop()
            raise RuntimeError("the emulator did not start")
        self.info: dict[str, Any] = self._info
        self.env: dict[str, str] = {  # what points boto3, the AWS CLI and jitr at it
            "AWS_ENDPOINT_URL": self.info["aws_endpoint_url"],
            "AWS_REGION": self.info["region"],
            "AWS_DEFAULT_REGION": self.info["region"],
            "AWS_ACCESS_KEY_ID": "emulator",
            "AWS_SECRET_ACCESS_KEY": "emulator",
        }

    @property
    def endpoint(self) -> str:
        return f"{self.info['mqtt_host']}:{self.info['mqtt_port']}"

    def jitr(self, *args: str) -> dict:
        """Run ``jitr ARGS --json`` against the emulator; its JSON output."""
        env = {k: v for k, v in os.environ.items() if k != "AWS_PROFILE"} | self.env
        done = subprocess.run([JITR, *args, "--json"], env=env, cwd=ROOT, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"jitr {' '.join(args)} failed: {done.stderr.strip()}")
        return json.loads(done.stdout)

    def client(self, service: str) -> Any:
        import boto3

        session: Any = boto3.session.Session(
            aws_access_key_id="emulator", aws_secret_access_key="emulator", region_name=self.info["region"]
        )
        return session.client(service, endpoint_url=self.info["aws_endpoint_url"])

    def cpu_seconds(self) -> float:
        """User plus system CPU time the emulator process has used so far (Linux /proc)."""
        return _cpu_seconds(self.process.pid)

    def decisions(self) -> list[tuple[float, dict]]:
        """(time.time() it was logged, the line) for each decision a function logged (a JSON line with a
        ``decision``, as the activation function logs them), from the log groups' files."""
        from emulator.lambdas.log_groups import parse_event_line

        found = []
        for path in sorted((self.state / "logs").glob("aws_lambda_*.log")):
            for line in path.read_text().splitlines():
                at, message = parse_event_line(line)
                if message.startswith("{") and '"decision"' in message:
                    found.append((at.timestamp(), json.loads(message)))
        return found

    def children_cpu_seconds(self) -> float:
        """User plus system CPU time of the emulator's live descendants so far: its Lambda workers, the server
        they are forked from (and any other process it started)."""
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # ended meanwhile
                continue
            parents[int(stat.parent.name)] = int(fields[1])
        family, grew = {self.process.pid}, True
        while grew:
            children = {pid for pid, parent in parents.items() if parent in family} - family
            family |= children
            grew = bool(children)
        return sum(seconds for seconds in map(_cpu_seconds, family - {self.process.pid}) if not math.isnan(seconds))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def fresh_emulator(work: Path, name: str, quotas: Sequence[str] = (), options: Sequence[str] = ()):
    """An emulator on an empty state folder ``work/state-NAME`` (emptied if a run before left it), stopped after."""
    state = work / f"state-{name}"
    shutil.rmtree(state, ignore_errors=True)
    running = EmulatorProcess(state, list(quotas), list(options))
    try:
        yield running
    finally:
        running.stop()


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (Linux /proc); NaN once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
