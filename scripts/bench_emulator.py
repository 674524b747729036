#!/usr/bin/env python3
"""Benchmark the local AWS IoT Core emulator: a JITP fleet, JITR latency, the S3 archive, throttled JITR.

Each scenario of each round starts its own emulator with ``jitr local up --json`` in a separate process
(loopback, free ports, a fresh state), deploys the kit's stack with ``jitr local deploy`` and registers the
CA with ``jitr ca register`` (``--jitp`` for the JITP fleet), exactly as an operator would. The devices are
driven by ``device.simulate`` in ``--generators`` processes of their own, so the load generator shares
neither a process nor a GIL with the emulator. Nothing is taken on trust: S3 objects in the archive bucket
and ACTIVE certificates are counted through the AWS API at the end of every scenario.

    .venv/bin/python scripts/bench_emulator.py --devices 1000 --rounds 3

Scenarios and their targets (issue 3):

- ``jitp``: N devices first-connect concurrently, are provisioned by the CA's template and publish one
  message each: devices/s (target >= 100 on 2 cores), and N archived objects.
- ``jitr``: time from a device's first connect to its first accepted publish, p50 and p95 over
  ``--jitr-devices`` devices, ``--jitr-in-flight`` of them connecting at a time (target p50 <= 1 s), with
  the devices' default backoff (first retry within 1 s, full jitter).
- ``jitr-burst``: the same, all ``--jitr-devices`` connecting at once: the latency a device sees when a
  whole batch is switched on together, which queues behind the other devices' activations.
- ``jitr-floor``: the burst with activation free: the same devices all at once, under JITP with the first
  connection dropped (``jitr local up --jitp-drops-first-connect``), so every device is provisioned by the
  broker during its first connection and is accepted on its first reconnect: what the burst would measure
  if the activation function took no time; the floor under ``jitr-burst`` on this machine
  (``scripts/model_jitr_burst.py`` gives the activation rate the burst's target needs).
- ``archive``: ``--archive-devices`` provisioned devices publish ``--messages`` each: messages/s from the
  first publish until every message is an object in the archive bucket (target >= 1,000, none lost).
- ``throttled``: ``--throttled-devices`` JITR devices under ``--quota UpdateCertificate=10``: all end ACTIVE,
  none lost, at >= 90 % of the quota rate. The rate leaves out the token bucket's initial burst:
  (activations - burst) / seconds from the first connect to the last activation.
- ``throttled-aws``: the same devices under ``--quota aws-defaults`` (every API at its AWS default rate):
  JITR's ceiling is then 10 devices/s (DescribeCertificate and UpdateCertificate, one each a device), and
  AWS-FACTS.md asks the kit to reach it without losing a device. Reported against 90 % of that ceiling.

Prints a table of medians over ``--rounds`` and one JSON line (every round's figures) last.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from emulator_process import JITR, ROOT, EmulatorProcess, fresh_emulator  # scripts/, beside this file
from load_generator import run_devices, shard_manifest

sys.path.insert(0, str(ROOT))

TEMPLATE = ROOT / "sam" / "template.yaml"
STACK = "bench"
TOPIC_ROOT = f"devices/{STACK}"  # the stack's DeviceTopicRoot: its policy and archive rule agree on it
SCENARIOS = ("jitp", "jitr", "jitr-burst", "jitr-floor", "archive", "throttled", "throttled-aws")
TARGETS = {
    "jitp": 100.0,
    "jitr": 1.0,
    "jitr-burst": 1.0,
    "jitr-floor": 1.0,
    "archive": 1000.0,
    "throttled": 0.9,
    "throttled-aws": 0.9,
}
AWS_DEFAULT_JITR_CEILING = 10.0  # DescribeCertificate and UpdateCertificate TPS (AWS-FACTS.md), one call each a device
AT_MOST = {"jitr", "jitr-burst", "jitr-floor"}  # figures that meet their target from below
LATENCY = ("jitr", "jitr-burst", "jitr-floor")


# -- the emulator in a process of its own (scripts/emulator_process.py) ----------------------------------


def deploy(emu: EmulatorProcess, pki: Path, *, jitp: bool) -> dict:
    """The operators' order (deploy.sh): the stack with the CA's id, then the CA (JITP: with the stack's role)."""
    from base.certificates import certificate_id, load_certificates

    signer = pki / "certs" / "intermediate-ca.pem"
    ca_id = certificate_id(load_certificates(signer.read_bytes())[0])
    stack = emu.jitr(
        "local",
        "deploy",
        "--stack",
        STACK,
        "--template",
        str(TEMPLATE),
        "--parameter-overrides",
        f"CaCertificateId={ca_id}",
    )
    register = ["ca", "register", "--dir", str(pki)]
    if jitp:
        register += ["--jitp", "--role-arn", stack["outputs"]["ProvisioningRoleArn"], "--topic-root", TOPIC_ROOT]
    registered = emu.jitr(*register)["caCertificateId"]
    if registered != ca_id:
        raise RuntimeError(f"the emulator registered the CA as {registered}, not {ca_id}")
    return stack["outputs"]


def count_objects(emu: EmulatorProcess, bucket: str) -> int:
    pages = emu.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sum(page.get("KeyCount", 0) for page in pages)


def wait_for_objects(emu: EmulatorProcess, bucket: str, expected: int, timeout: float, interval: float = 0.5) -> tuple:
    """(count, monotonic time it was first seen) once ``expected`` objects are there or nothing changed for long."""
    deadline, last, changed = time.monotonic() + timeout, -1, time.monotonic()
    while True:
        count = count_objects(emu, bucket)
        now = time.monotonic()
        if count >= expected or now > deadline or (count == last and now - changed > 15):
            return count, now
        if count != last:
            last, changed = count, now
        time.sleep(interval)


def count_active(emu: EmulatorProcess) -> int:
    pages = emu.client("iot").get_paginator("list_certificates").paginate(pageSize=250)
    return sum(c["status"] == "ACTIVE" for page in pages for c in page["certificates"])


# -- the scenarios ------------------------------------------------------------------------------------------


def jitp_fleet(args, work: Path, manifest: Path, name: str) -> dict:
    with fresh_emulator(work, name) as emu:
        bucket = deploy(emu, work / "pki", jitp=True)["ArchiveBucketName"]
        shards = shard_manifest(manifest, args.devices, args.generators, work / name)
        run = run_devices(emu, shards, messages=1, concurrency=args.concurrency, topic_root=TOPIC_ROOT)
        objects, _ = wait_for_objects(emu, bucket, run["messages"], timeout=120)
        active = count_active(emu)
    return {
        "devices": run["devices"],
        "succeeded": run["succeeded"],
        "seconds": round(run["seconds"], 2),
        "devicesPerSecond": round(run["succeeded"] / run["seconds"], 1),
        "p50": round(run["p50"], 3) if run["p50"] is not None else None,
        "p95": round(run["p95"], 3) if run["p95"] is not None else None,
        "active": active,
        "archived": objects,
        "failures": run["failures"],
        "emulatorCpu": run["emulatorCpu"],
        "generatorCpu": run["generatorCpu"],
        "ok": run["succeeded"] == args.devices == active == objects,
        "figure": run["succeeded"] / run["seconds"],
    }


def jitr_latency(args, work: Path, manifest: Path, name: str, *, burst: bool = False, floor: bool = False) -> dict:
    """JITR devices' first connect to first accepted publish; with ``floor``, JITP with the first connect
    dropped stands in for a JITR whose activation takes no time."""
    options = ["--jitp-drops-first-connect"] if floor else []
    with fresh_emulator(work, name, options=options) as emu:
        deploy(emu, work / "pki", jitp=floor)
        shards = shard_manifest(manifest, args.jitr_devices, args.generators, work / name)
        in_flight = args.concurrency if burst else max(1, args.jitr_in_flight // len(shards))
        run = run_devices(emu, shards, messages=1, concurrency=in_flight, topic_root=TOPIC_ROOT)
        logged = emu.decisions()
        decisions = [line.get("decision") for _, line in logged]
        invocations = sum(1 for decision in decisions if decision in ("activated", "already-active"))
        # when the activations landed, from switch-on: the rate scripts/model_jitr_burst.py takes
        activated = sorted(at - run["goWall"] for at, line in logged if line.get("decision") == "activated")
    return {
        "devices": run["devices"],
        "succeeded": run["succeeded"],
        "p50": round(run["p50"], 3) if run["p50"] is not None else None,
        "p95": round(run["p95"], 3) if run["p95"] is not None else None,
        "inFlight": in_flight * len(shards),
        "attemptsPerDevice": round(run["attempts"] / max(1, run["devices"]), 2),
        "lambdaInvocations": invocations,
        "duplicateInvocations": decisions.count("duplicate"),  # a reconnect's event while another held the claim
        "activations": [round(activated[0], 2), round(activated[-1], 2)] if activated else None,  # first, last
        "activationsPerSecond": (
            round((len(activated) - 1) / (activated[-1] - activated[0]), 1) if len(activated) > 1 else None
        ),
        "failures": run["failures"],
        "emulatorCpu": run["emulatorCpu"],
        "workerCpu": run["workerCpu"],
        "ok": run["succeeded"] == args.jitr_devices,
        "figure": run["p50"] if run["p50"] is not None else math.inf,
        "p95s": run["p95"] if run["p95"] is not None else math.inf,
    }


def sentinel(emu: EmulatorProcess, shard: Path, bucket: str, timeout: float = 300) -> float:
    """Publish one more message after the fleet's and wait until it is archived; when it was (monotonic).

    The rules engine handles messages in the order the broker accepted them, so once this one is an object
    the fleet's are too (the count that follows checks it): no need to list a growing bucket again and again.
    """
    from base.manifest import read_manifest
    from device.client import Messages, run_device
    from device.endpoint import parse_endpoint
    from device.identity import identity_from_manifest

    identity = identity_from_manifest(next(iter(read_manifest(shard))))
    topic = f"{TOPIC_ROOT}/{identity.thing_name}/sentinel"
    messages = Messages(topic=topic)
    run_device(identity, parse_endpoint(emu.endpoint), root_ca=Path(emu.info["endpoint_ca"]), messages=messages)
    s3, deadline = emu.client("s3"), time.monotonic() + timeout
    while not s3.list_objects_v2(Bucket=bucket, Prefix=topic + "/").get("KeyCount") and time.monotonic() < deadline:
        time.sleep(0.02)
    return time.monotonic()


def archive(args, work: Path, manifest: Path, name: str) -> dict:
    with fresh_emulator(work, name) as emu:
        bucket = deploy(emu, work / "pki", jitp=True)["ArchiveBucketName"]
        shards = shard_manifest(manifest, args.archive_devices, args.generators, work / name)
        warm = run_devices(
            emu, shards, messages=1, concurrency=args.concurrency, topic_root=TOPIC_ROOT
        )  # provisioned, one object each
        before, _ = wait_for_objects(emu, bucket, warm["messages"], timeout=60)
        run = run_devices(emu, shards, messages=args.messages, concurrency=args.concurrency, topic_root=TOPIC_ROOT)
        archived = sentinel(emu, shards[0], bucket)
        expected = before + run["messages"] + 1
        objects, seen = wait_for_objects(emu, bucket, expected, timeout=300)
    done = archived if objects == expected else seen
    seconds = done - run["go"]
    return {
        "devices": run["devices"],
        "messages": run["messages"],
        "archived": objects - before - 1,
        "lost": expected - objects,
        "publishSeconds": round(run["seconds"], 2),
        "seconds": round(seconds, 2),
        "messagesPerSecond": round(run["messages"] / seconds, 1),
        "failures": run["failures"],
        "emulatorCpu": run["emulatorCpu"],
        "generatorCpu": run["generatorCpu"],
        "ok": objects == expected and run["messages"] == args.archive_devices * args.messages,
        "figure": run["messages"] / seconds,
    }


def throttled(args, work: Path, manifest: Path, name: str, *, aws_defaults: bool = False) -> dict:
    rate = AWS_DEFAULT_JITR_CEILING if aws_defaults else args.quota_rate
    with fresh_emulator(work, name, ["aws-defaults" if aws_defaults else f"UpdateCertificate={rate:g}"]) as emu:
        deploy(emu, work / "pki", jitp=False)
        shards = shard_manifest(manifest, args.throttled_devices, args.generators, work / name)
        run = run_devices(emu, shards, messages=1, concurrency=args.concurrency, topic_root=TOPIC_ROOT)
        active = count_active(emu)
        activated: dict[str, float] = {}
        throttles = activations = invocations = 0
        for at, line in emu.decisions():
            invocations += line.get("decision") in ("activated", "already-active", "failed", "ignored", "refused")
            if line.get("decision") == "activated":
                activated.setdefault(line.get("certificateId"), at)
                activations += 1
            throttles += line.get("decision") == "retry" and line.get("code") == "ThrottlingException"
    burst = max(1.0, rate)  # the token bucket starts full (emulator/api/quotas.py)
    last = max(activated.values(), default=run["goWall"])  # log times are wall-clock times
    steady = (len(activated) - burst) / (last - run["goWall"]) if last > run["goWall"] else 0.0
    return {
        "devices": run["devices"],
        "succeeded": run["succeeded"],
        "active": active,
        "lost": args.throttled_devices - active,
        "activationSeconds": round(last - run["goWall"], 2),
        "activationsPerSecond": round(steady, 2),
        "quota": rate,
        "ofQuota": round(steady / rate, 3),
        "throttledCalls": throttles,
        "invocations": invocations,
        "repeatedActivations": activations - len(activated),  # UpdateCertificate spent on an ACTIVE certificate
        "devicesSeconds": round(run["seconds"], 2),
        "failures": run["failures"],
        "ok": active == run["succeeded"] == args.throttled_devices,
        "figure": steady / rate,
    }


RUNNERS: dict[str, Callable[..., dict]] = {
    "jitp": jitp_fleet,
    "jitr": jitr_latency,
    "jitr-burst": functools.partial(jitr_latency, burst=True),
    "jitr-floor": functools.partial(jitr_latency, burst=True, floor=True),
    "archive": archive,
    "throttled": throttled,
    "throttled-aws": functools.partial(throttled, aws_defaults=True),
}


# -- the report ---------------------------------------------------------------------------------------------


def table(results: dict[str, list[dict]]) -> str:
    def med(scenario: str, key: str) -> float:
        return statistics.median(r[key] for r in results[scenario])

    rows: list[tuple[str, ...]] = [("scenario", "figure (median)", "target", "met", "all rounds ok")]
    if "jitp" in results:
        n = results["jitp"][0]["devices"]
        rows.append((f"JITP fleet, {n} devices", f"{med('jitp', 'devicesPerSecond'):.1f} devices/s", ">= 100"))
    for scenario in LATENCY:
        if scenario in results:
            n, at_once = results[scenario][0]["devices"], results[scenario][0]["inFlight"]
            figure = f"p50 {med(scenario, 'figure'):.3f} s, p95 {med(scenario, 'p95s'):.3f} s"
            what = "first connect dropped, activation free" if scenario == "jitr-floor" else "JITR connect to publish"
            rows.append((f"{what}, {n} devices, {at_once} at a time", figure, "p50 <= 1 s"))
    if "archive" in results:
        n = results["archive"][0]["messages"]
        figure = f"{med('archive', 'messagesPerSecond'):.0f} msgs/s, lost {max(r['lost'] for r in results['archive'])}"
        rows.append((f"Archive to S3, {n} messages", figure, ">= 1000, none lost"))
    if "throttled" in results:
        n = results["throttled"][0]["devices"]
        figure = f"{med('throttled', 'activationsPerSecond'):.2f}/s ({100 * med('throttled', 'ofQuota'):.0f}% of quota)"
        rows.append((f"Throttled JITR, {n} devices", figure, ">= 90% of quota, none lost"))
    if "throttled-aws" in results:
        n = results["throttled-aws"][0]["devices"]
        rate, share = med("throttled-aws", "activationsPerSecond"), 100 * med("throttled-aws", "ofQuota")
        figure = f"{rate:.2f}/s ({share:.0f}% of 10/s)"
        rows.append((f"JITR, {n} devices, AWS default quotas", figure, ">= 90%, none lost"))
    out = []
    for row, scenario in zip(rows, ["", *[s for s in SCENARIOS if s in results]], strict=False):
        if scenario:
            figures = [r["figure"] for r in results[scenario]]
            figure = statistics.median(figures)
            met = figure <= TARGETS[scenario] if scenario in AT_MOST else figure >= TARGETS[scenario]
            row = (*row, "yes" if met else "NO", "yes" if all(r["ok"] for r in results[scenario]) else "NO")
        out.append(row)
    widths = [max(len(str(row[i])) for row in out) for i in range(len(out[0]))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)) for row in out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, of " + ", ".join(SCENARIOS))
    parser.add_argument("--devices", type=int, default=1000, help="JITP fleet size")
    parser.add_argument("--jitr-devices", type=int, default=100)
    parser.add_argument("--jitr-in-flight", type=int, default=4, help="jitr: devices connecting at a time in all")
    parser.add_argument("--archive-devices", type=int, default=100)
    parser.add_argument("--messages", type=int, default=100, help="messages per device in the archive scenario")
    parser.add_argument("--throttled-devices", type=int, default=200)
    parser.add_argument("--quota-rate", type=float, default=10.0, help="UpdateCertificate TPS in the throttled run")
    parser.add_argument("--generators", type=int, default=2, help="load-generator processes")
    parser.add_argument("--concurrency", type=int, default=64, help="devices connecting at once per generator")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--work", type=Path, help="keep the CA, devices and emulator state here")
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {', '.join(sorted(unknown))}")

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-emulator-"))
    pki = work / "pki"
    if not (pki / "ca.json").exists():
        subprocess.run([JITR, "ca", "init", "--dir", str(pki), "--country", "DE", "--intermediate"], check=True)
    needed = max(args.devices, args.jitr_devices, args.archive_devices, args.throttled_devices)
    manifest = pki / "batches" / f"bench-{needed}" / "manifest.jsonl"
    if not manifest.exists():
        mint = [JITR, "device", "mint", "--dir", str(pki), "--count", str(needed), "--prefix", "bench-"]
        mint += ["--format", "jsonl", "--out", str(manifest.parent), "--workers", str(os.cpu_count() or 1)]
        subprocess.run(mint, check=True, stdout=subprocess.DEVNULL)

    results: dict[str, list[dict]] = {s: [] for s in scenarios}
    for round_number in range(1, args.rounds + 1):
        for scenario in scenarios:
            result = RUNNERS[scenario](args, work, manifest, f"{scenario}-{round_number}")
            results[scenario].append(result)
            shown = {k: v for k, v in result.items() if k not in ("figure", "p95s")}
            print(f"round {round_number} {scenario}: {json.dumps(shown)}", file=sys.stderr, flush=True)
    print(f"nproc {os.cpu_count()}, {args.rounds} round(s), {args.generators} generator processes")
    print(table(results))
    print(
        json.dumps(
            {
                "nproc": os.cpu_count(),
                "rounds": args.rounds,
                "args": vars(args) | {"work": str(work)},
                "results": results,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
