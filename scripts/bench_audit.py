#!/usr/bin/env python3
"""Benchmark ``jitr audit`` against the emulator: how long a fleet of N ACTIVE certificates (each attached to a
thing of its own) takes to audit, and how much memory the audit process needs as N grows (its VmHWM).

    .venv/bin/python scripts/bench_audit.py --sizes 10000,100000 --concurrency 8

For each size, a fresh emulator runs in this process with N AWS-issued certificates, N things and the
attachments put straight into its store (seeding through the API would take longer than the audit), and
logging configured, so that a correct audit finds nothing. ``jitr audit --json`` then runs as a process of
its own against it; its wall time, CPU time, peak RSS and report are recorded. The report must be
clean and must have scanned N certificates and N things, or the run fails: a fast wrong audit cannot pass.
Prints one line a size and one JSON line last.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
JITR = str(Path(sys.executable).with_name("jitr"))


def seed(iot, count: int) -> None:
    """``count`` ACTIVE AWS-issued certificates, each attached to its own thing, and logging configured."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from base.certificates import to_pem
    from emulator.iot.aws_issuer import aws_issuer
    from emulator.store import devices
    from emulator.store.device_certificates import store_certificate

    registry = iot.api.registry()
    backend, state = registry.backend, registry.state
    issuer, now = aws_issuer(), dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1()).public_key()  # one key: the audit reads certificates, not keys
    with state.lock:
        for number in range(count):
            cert = issuer.issue(key, now=now)
            record = store_certificate(backend, to_pem(cert).decode(), cert, status="ACTIVE")
            name = f"dev-{number:07d}"
            devices.create_thing(backend, name, None, {})
            devices.attach_thing_principal(backend, name, record.arn)
        role = "arn:aws:iam::123456789012:role/iot-logs"
        state.logging_options = {"defaultLogLevel": "ERROR", "disableAllLogs": False, "roleArn": role}


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM) so far, in MB, once it runs jitr (before its exec, the forked
    child still counts this process's pages). Not ``wait4``'s ru_maxrss, which counts them too, and this
    process holds the whole emulator."""
    try:
        if b"\x00audit\x00" not in Path(f"/proc/{pid}/cmdline").read_bytes():  # argv: jitr audit ...
            return None
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def audit_once(env: dict[str, str], concurrency: int, profile: str | None) -> tuple[float, float, dict]:
    """Seconds, peak RSS in MB (VmHWM, sampled every 0.1 s until the audit exits), and the report of one
    ``jitr audit --json`` (under cProfile with ``profile``)."""
    command = [JITR, "audit", "--json", "--concurrency", str(concurrency)]
    if profile:
        command = [sys.executable, "-m", "cProfile", "-o", profile, *command]
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out)
        peak = 0.0
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, peak_rss_mb(process.pid) or 0.0)
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        report = json.loads(out.read())
    if process.returncode != 0:
        raise SystemExit(f"the audit exited {process.returncode}: {report.get('summary')}")
    report["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return seconds, peak, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="fleet sizes, comma-separated")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--profile", help="write the audit's cProfile statistics to this file (the last size's)")
    args = parser.parse_args()

    from emulator.local import LocalIot, Options

    results = []
    for size in (int(text) for text in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as state:
            options = Options(state_dir=Path(state), snapshot_interval=86400.0)  # no snapshot while measuring
            with LocalIot(options) as iot:
                iot.api.reset()  # moto's backends are the process's: the last size's fleet goes
                began = time.perf_counter()
                seed(iot, size)
                seeded = time.perf_counter() - began
                env = {k: v for k, v in os.environ.items() if k != "AWS_PROFILE"} | iot.environment()
                serving = time.process_time()  # this process is the emulator while the audit runs
                seconds, rss, report = audit_once(env, args.concurrency, args.profile)
                serving = time.process_time() - serving
                scanned = report["scanned"]
                if not report["clean"] or scanned.get("certificates") != size or scanned.get("things") != size:
                    raise SystemExit(f"the audit of {size} is wrong: {scanned}, {report['summary']}")
        result = {
            "certificates": size,
            "seconds": round(seconds, 1),
            "certificates_per_second": round(size / seconds),
            "peak_rss_mb": round(rss, 1),
            "audit_cpu_seconds": round(report["cpu_seconds"], 1),
            "emulator_cpu_seconds": round(serving, 1),
            "seed_seconds": round(seeded, 1),
        }
        results.append(result)
        print(
            f"{size:>8} certificates: {seconds:7.1f} s ({size / seconds:6.0f}/s), audit peak RSS {rss:6.1f} MB, "
            f"audit CPU {report['cpu_seconds']:.1f} s, emulator CPU {serving:.1f} s"
        )
    print(json.dumps({"concurrency": args.concurrency, "results": results}))


if __name__ == "__main__":
    main()
