#!/usr/bin/env python3
"""Benchmark `jitr fleet register` (issue 6) against the local emulator in a process of its own.

Each part starts its own emulator with ``jitr local up --json`` (loopback, free ports, fresh state), creates a
CA with an intermediate, registers it with ``jitr ca register`` and mints the batches with ``jitr device mint
--format jsonl``, as a manufacturer would. The registrations run in this process through the same code as
``jitr fleet register`` (:func:`fleet.register.register_fleet`, with the CLI's pacer and connection pool),
so the emulator and the kit share neither a process nor a GIL. Nothing is taken on trust: the ACTIVE
certificates and the things are counted through the AWS API after every run.

    .venv/bin/python scripts/bench_fleet_register.py --devices 10000 --quota-devices 300

Parts and their targets:

- ``unthrottled``: ``--devices`` devices, no quotas, by each method (``api``: the calls per device in
  ``--concurrency`` threads; ``task``: one StartThingRegistrationTask): devices/s (target >= 500).
- ``aws-defaults``: ``--quota-devices`` devices under ``jitr local up --quota aws-defaults`` (AWS's default
  quotas, AWS-FACTS.md): the kit's api and task methods against the ceiling those quotas allow (the slowest
  per-device call: RegisterCertificate and UpdateCertificate at 10/s, so 10 devices/s), target >= 90 % and
  no device lost; and, side by side, a serial loop of the same five calls per device with the SDK's default
  retries, the way the bulk kit works. The rate leaves out the token bucket's initial burst (a second's worth,
  10 devices): (registered - burst) / seconds; the plain rate is printed too.

``--latency-ms`` adds that much client-side delay to every AWS call (of the kit and of the serial loop), to
see how both fare with a network round trip like AWS's instead of loopback's.

Prints a results table and one JSON line (every figure) last.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from emulator_process import ROOT, EmulatorProcess  # scripts/, beside this file

sys.path.insert(0, str(ROOT))

from base.certificates import load_certificate  # noqa: E402
from cloud.iot import IotApi  # noqa: E402
from cloud.pacing import Pacer  # noqa: E402
from cloud.s3 import S3Api  # noqa: E402
from emulator.api.default_quotas import AWS_DEFAULT_QUOTAS  # noqa: E402
from fleet.register import register_fleet  # noqa: E402
from fleet.requests import RegisterRequest  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/BulkRegistration"
PER_DEVICE_CALLS = ("RegisterCertificate", "CreateThing", "AttachPolicy", "AttachThingPrincipal", "UpdateCertificate")


@contextmanager
def emulator(work: Path, name: str, quotas: Sequence[str] = ()):
    running = EmulatorProcess(work / f"state-{name}", list(quotas))
    saved = {k: os.environ.get(k) for k in (*running.env, "AWS_PROFILE")}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(running.env)  # boto3 in this process talks to it too
    try:
        yield running
    finally:
        running.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def setup_ca(emu: EmulatorProcess, work: Path) -> Path:
    pki = work / "pki"
    if not pki.exists():
        emu.jitr("ca", "init", "--dir", str(pki), "--country", "DE", "--org", "Acme", "--intermediate")
    emu.jitr("ca", "register", "--dir", str(pki))
    return pki


def mint(emu: EmulatorProcess, pki: Path, prefix: str, count: int) -> Path:
    minted = emu.jitr(
        "device", "mint", "--dir", str(pki), "--count", str(count), "--prefix", prefix, "--format", "jsonl"
    )
    return Path(minted["manifest"])


def with_latency(client, latency: float):
    """Delay every call of a boto3 client by ``latency`` seconds, like a network round trip."""
    if latency > 0:
        client.meta.events.register("before-send", lambda **kwargs: time.sleep(latency))
    return client


def count_registered(manifest: Path) -> tuple[int, int]:
    """(ACTIVE certificates of the manifest, things of the manifest) as AWS IoT lists them."""
    import boto3

    iot = boto3.client("iot")
    ids, things = set(), set()
    for line in manifest.read_text().splitlines():
        record = json.loads(line)
        ids.add(record["certificateId"])
        things.add(record["thingName"])
    active = 0
    for page in iot.get_paginator("list_certificates").paginate(pageSize=250):
        active += sum(1 for cert in page["certificates"] if cert["certificateId"] in ids and cert["status"] == "ACTIVE")
    listed = 0
    for page in iot.get_paginator("list_things").paginate():
        listed += sum(1 for thing in page["things"] if thing["thingName"] in things)
    return active, listed


def kit(manifest: Path, pki: Path, method: str, *, concurrency: int, latency: float) -> dict:
    """One run of the kit (what `jitr fleet register` does); its figures."""
    api = IotApi.connect(pacer=Pacer(), connections=concurrency)
    with_latency(api.client, latency)
    s3 = S3Api.connect() if method == "task" else None
    request = RegisterRequest(
        manifest=manifest,
        method=method,
        concurrency=concurrency,
        bucket="bench-bulk-input" if method == "task" else None,
        role_arn=ROLE if method == "task" else None,
        poll_interval=0.25,
    )
    ca = load_certificate((pki / "certs" / "intermediate-ca.pem").read_bytes())
    report = register_fleet(api, request, ca=ca, now=dt.datetime.now(dt.UTC), s3=s3)
    active, things = count_registered(manifest)
    return {
        "devices": len(report.outcomes),
        "registered": report.count("registered"),
        "failed": report.count("failed"),
        "seconds": round(report.seconds, 3),
        "throttles": sum(report.throttles.values()),
        "active": active,
        "things": things,
    }


def serial_loop(manifest: Path, pki: Path, *, latency: float) -> dict:
    """The bulk kit's way: one device after the other, the five calls in order, the SDK's default retries;
    a device whose call still fails after them is lost."""
    import boto3

    iot = with_latency(boto3.client("iot"), latency)
    ca_pem = (pki / "certs" / "intermediate-ca.pem").read_text()
    policy = "bench-serial-device"
    iot.create_policy(policyName=policy, policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    registered, lost = 0, 0
    errors: dict[str, int] = {}
    started = time.monotonic()
    for record in records:
        try:
            arn = iot.register_certificate(
                certificatePem=record["certificatePem"], caCertificatePem=ca_pem, status="INACTIVE"
            )["certificateArn"]
            iot.create_thing(thingName=record["thingName"])
            iot.attach_policy(policyName=policy, target=arn)
            iot.attach_thing_principal(thingName=record["thingName"], principal=arn)
            iot.update_certificate(certificateId=record["certificateId"], newStatus="ACTIVE")
            registered += 1
        except Exception as exc:  # what the SDK gave up on
            lost += 1
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            errors[code] = errors.get(code, 0) + 1
    seconds = time.monotonic() - started
    active, things = count_registered(manifest)
    return {
        "devices": len(records),
        "registered": registered,
        "failed": lost,
        "seconds": round(seconds, 3),
        "errors": errors,
        "active": active,
        "things": things,
    }


def rates(run: dict, *, ceiling: float | None = None, burst: int = 0) -> dict:
    rate = run["registered"] / run["seconds"] if run["seconds"] else 0.0
    figures = {**run, "devicesPerSecond": round(rate, 1)}
    if ceiling:
        steady = max(0, run["registered"] - burst) / run["seconds"] if run["seconds"] else 0.0
        figures |= {"steadyDevicesPerSecond": round(steady, 2), "ofCeiling": round(steady / ceiling, 3)}
    return figures


def quota_ceiling() -> tuple[float, int]:
    """Devices a second AWS's default quotas allow when each device makes PER_DEVICE_CALLS once, and the
    burst (devices) the slowest bucket lets through at the start."""
    slowest = min(AWS_DEFAULT_QUOTAS[name] for name in PER_DEVICE_CALLS)
    return float(slowest), int(slowest)


def table(results: dict) -> str:
    lines = [
        "| part | method | devices | registered | lost | seconds | devices/s | of ceiling | throttled calls |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for part, runs in results.items():
        for method, run in runs.items():
            ceiling = f"{run['ofCeiling']:.0%}" if "ofCeiling" in run else "-"
            lines.append(
                f"| {part} | {method} | {run['devices']:,} | {run['registered']:,} | {run['devices'] - run['active']:,}"
                f" | {run['seconds']:,.1f} | {run['devicesPerSecond']:,.1f} | {ceiling} | {run.get('throttles', '-')} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000, help="devices per unthrottled run")
    parser.add_argument("--quota-devices", type=int, default=300, help="devices per run under AWS's default quotas")
    parser.add_argument("--concurrency", type=int, default=16, help="the api method's threads")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="client-side delay added to every AWS call")
    parser.add_argument("--skip", action="append", default=[], help="leave out a part: unthrottled, aws-defaults")
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-register-") as tmp:
        work = Path(tmp)
        if "unthrottled" not in args.skip:
            with emulator(work, "unthrottled") as emu:
                pki = setup_ca(emu, work)
                part = results["unthrottled"] = {}
                for method in ("task", "api"):
                    manifest = mint(emu, pki, f"{method}-", args.devices)
                    part[method] = rates(kit(manifest, pki, method, concurrency=args.concurrency, latency=latency))
                    print(f"unthrottled {method}: {part[method]}", file=sys.stderr)
        if "aws-defaults" not in args.skip:
            ceiling, burst = quota_ceiling()
            with emulator(work, "aws-defaults", ["aws-defaults"]) as emu:
                pki = setup_ca(emu, work)
                part = results["aws-defaults"] = {}
                for method in ("api", "task", "serial-loop"):
                    manifest = mint(emu, pki, f"q{method}-", args.quota_devices)
                    time.sleep(1.5)  # every bucket full again, the same start for each
                    if method == "serial-loop":
                        run = serial_loop(manifest, pki, latency=latency)
                    else:
                        run = kit(manifest, pki, method, concurrency=args.concurrency, latency=latency)
                    part[method] = rates(run, ceiling=ceiling, burst=burst)
                    print(f"aws-defaults {method}: {part[method]}", file=sys.stderr)
    print(table(results))
    print(
        json.dumps(
            {
                "results": results,
                "ceilingDevicesPerSecond": quota_ceiling()[0],
                "latencyMs": args.latency_ms,
                "concurrency": args.concurrency,
                "cpuCount": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
