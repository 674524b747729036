#!/usr/bin/env python3
"""Benchmark the provisioning API (issue 14): devices enrolling over HTTPS through the emulator's API
Gateway, the provisioning function and RegisterThing, as ``jitr device enroll`` does it.

Each round starts its own emulator (``jitr local up --json --fresh``, a process of its own), deploys
``sam/template.yaml`` with ``ProvisioningApi=true`` (``jitr local deploy``), and admits the serials with
``jitr fleet admit --count``. Every device's key and CSR are made before the clock starts; then
``--threads`` clients send the enrollments with the kit's own request code (:class:`base.http.Requests`:
429, 5xx and silence retried with backoff and full jitter). Nothing is taken on trust: afterwards the
certificates, the things and each thing's certificates are counted through the AWS API.

    .venv/bin/python scripts/bench_provisioning.py --devices 1000 --quota-devices 300 --rounds 3

Scenarios and their targets:

- ``unthrottled``: ``--devices`` devices, no quotas: devices/s (target >= 50), none lost, none with two
  certificates.
- ``aws-defaults``: ``--quota-devices`` devices under ``--quota aws-defaults`` (RegisterThing 10/s): the
  rate against that ceiling, leaving out the token bucket's first second (10 devices), target >= 90 %,
  none lost.

Prints medians of the rounds and one JSON line (every figure) last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emulator_process import EmulatorProcess  # noqa: E402  (scripts/, beside this file)

from base.backoff import Backoff  # noqa: E402
from base.keys import generate_key  # noqa: E402
from device.enroll import make_csr, provisioning_requests  # noqa: E402

CEILING = 10.0  # RegisterThing's default quota (transactions per second)
STACK = "bench-prov"


def _round(devices: int, threads: int, quotas: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-prov-") as folder:
        emulator = EmulatorProcess(Path(folder) / "state", quotas)
        try:
            emulator.jitr(
                "local", "deploy", "--stack", STACK, "--template", str(ROOT / "sam" / "template.yaml"),
                "--parameter-overrides", f"CaCertificateId={'a' * 64}", "ProvisioningApi=true",
            )  # fmt: skip
            api = emulator.jitr("fleet", "describe", "--stack", STACK)["outputs"]["ProvisioningApiUrl"]
            admitted = emulator.jitr(
                "fleet", "admit", "--stack", STACK, "--count", str(devices), "--prefix", "dev-",
                "--out", str(Path(folder) / "tokens.json"),
            )["devices"]  # fmt: skip
            csrs = {d["serial"]: make_csr(d["serial"], generate_key("ec-p256")).decode() for d in admitted}
            retries = {"count": 0}
            lock = threading.Lock()

            def counted(_why: str) -> None:
                with lock:
                    retries["count"] += 1

            requests = provisioning_requests(backoff=Backoff(base=0.2, cap=5.0, attempts=30), on_retry=counted)

            def enroll(device: dict) -> bool:
                serial = device["serial"]
                body = {"token": device["token"], "csr": csrs[serial]}
                answer = requests("POST", f"{api}/devices/{serial}/certificate", body)
                return answer.get("thingName") == serial

            cpu_before = emulator.cpu_seconds()
            started = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                enrolled = sum(pool.map(enroll, admitted))
            seconds = time.perf_counter() - started
            cpu = emulator.cpu_seconds() - cpu_before
            iot = emulator.client("iot")
            certificates = sum(len(page["certificates"]) for page in iot.get_paginator("list_certificates").paginate())
            things = [t["thingName"] for page in iot.get_paginator("list_things").paginate() for t in page["things"]]
            doubled = sum(len(iot.list_thing_principals(thingName=t)["principals"]) != 1 for t in things)
        finally:
            emulator.stop()
    return {
        "devices": devices,
        "enrolled": enrolled,
        "lost": devices - len(things),
        "certificates": certificates,
        "thingsWithoutExactlyOneCertificate": doubled,
        "seconds": round(seconds, 2),
        "rate": round(enrolled / seconds, 1),
        "rateAfterBurst": round((enrolled - CEILING) / seconds, 2),
        "clientRetries": retries["count"],
        "emulatorCpuSeconds": round(cpu, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000, help="devices of the unthrottled scenario")
    parser.add_argument("--quota-devices", type=int, default=300, help="devices under --quota aws-defaults")
    parser.add_argument("--threads", type=int, default=16, help="concurrent enrolling clients")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", default="unthrottled,aws-defaults")
    args = parser.parse_args()
    scenarios = {"unthrottled": (args.devices, []), "aws-defaults": (args.quota_devices, ["aws-defaults"])}
    results: dict[str, list[dict]] = {}
    for index in range(args.rounds):
        for name in args.scenarios.split(","):
            devices, quotas = scenarios[name]
            result = _round(devices, args.threads, quotas)
            results.setdefault(name, []).append(result)
            print(f"round {index + 1} {name}: {json.dumps(result)}", flush=True)
    summary = {}
    for name, rounds in results.items():
        key = "rateAfterBurst" if name == "aws-defaults" else "rate"
        median = statistics.median(r[key] for r in rounds)
        summary[name] = {
            "median devices/s": median,
            "rounds": [r[key] for r in rounds],
            "lost": sum(r["lost"] for r in rounds),
            "extra certificates": sum(r["certificates"] - r["enrolled"] for r in rounds),
            "things without exactly one certificate": sum(r["thingsWithoutExactlyOneCertificate"] for r in rounds),
            "median emulator CPU s": statistics.median(r["emulatorCpuSeconds"] for r in rounds),
            "median client retries": statistics.median(r["clientRetries"] for r in rounds),
        }
        if name == "aws-defaults":
            summary[name]["share of the 10/s ceiling"] = f"{median / CEILING:.0%}"
        print(f"{name}: {json.dumps(summary[name])}")
    print(json.dumps({"summary": summary, "rounds": results}))


if __name__ == "__main__":
    main()
