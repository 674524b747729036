#!/usr/bin/env python3
"""A fleet soak against the emulator (issue 17): many devices, JITR and JITP mixed, publishing for minutes.

The emulator runs as ``jitr local up`` does, in a process of its own. The stack is deployed for a JITR CA
(its activation Lambda activates those devices), and a second CA is registered for JITP with the stack's
template. ``--devices`` devices (half of each CA) are minted, then driven from ``--generators`` processes:
each device is a paho-mqtt client, reconnecting with backoff and full jitter (the JITR first
connect is dropped; one epoll loop a process drives its devices' sockets, a small pool does their TLS
handshakes), switched on over the first ``--ramp`` seconds, then publishing one QoS 1 message every
``--interval`` seconds until ``--seconds`` have passed; ``--drop-share`` of them lose their connection once
at a random moment (the socket shut, no DISCONNECT) and reconnect. paho sends a QoS 1 message whose PUBACK
did not come again after the reconnect (DUP), as the AWS IoT SDKs do: at least once, so it may be archived
twice.

Reported: messages published (distinct), acknowledged, archived (S3 objects of the archive bucket counted
through the API), lost (acknowledged but never archived; must be 0) and duplicates; for ``--sample`` of the
devices every archived object is read: lost and duplicated messages exactly, and the publish-to-archive
latency (the archive key's ``${timestamp()}``, when the rule wrote it, minus the payload's send time); the
emulator's resident memory every ``--rss-every`` seconds.

    .venv/bin/python scripts/bench_soak.py --devices 5000 --seconds 600 --generators 4

Prints progress, then one JSON line (every figure) last.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emulator_process import JITR, EmulatorProcess  # noqa: E402  (scripts/, beside this file)
from soak_devices import TOPIC_ROOT, generator  # noqa: E402

STACK = "soak"  # soak_devices.TOPIC_ROOT is its DeviceTopicRoot
TEMPLATE = ROOT / "sam" / "template.yaml"


# -- the emulator side --------------------------------------------------------------------------------------


def _pki(jitr: list[str], folder: Path, name: str, count: int, prefix: str) -> tuple[Path, list[dict]]:
    pki = folder / name
    subprocess.run([*jitr, "ca", "init", "--dir", str(pki), "--country", "DE", "--intermediate"], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    out = folder / f"{name}-devices"
    subprocess.run(
        [*jitr, "device", "mint", "--dir", str(pki), "--count", str(count), "--prefix", prefix, "--format", "jsonl",
         "--out", str(out), "--workers", str(os.cpu_count() or 1)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    from base.manifest import read_manifest

    devices = [
        {"thing": e.thing_name, "chain": e.chain_pem().decode(), "key": e.private_key_pem().decode()}
        for e in read_manifest(out / "manifest.jsonl")
    ]
    return pki, devices


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _archived(emu: EmulatorProcess, bucket: str, prefix: str = "") -> list[str]:
    client = emu.client("s3")
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000}
    )
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _sampled(emu: EmulatorProcess, bucket: str, keys: list[str], things: list[str]) -> tuple[list[float], dict]:
    """Publish-to-archive latencies (s) and each sampled device's archived sequence numbers, from the keys
    listed once (moto scans the whole bucket for every listing, prefix or not)."""
    s3 = emu.client("s3")
    wanted = {f"{TOPIC_ROOT}/{thing}/telemetry/": thing for thing in things}
    latencies: list[float] = []
    seen: dict[str, list[int]] = {thing: [] for thing in things}
    for key in keys:
        thing = wanted.get(key.rsplit("/", 1)[0] + "/")
        if thing is None:
            continue
        body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        seen[thing].append(body["seq"])
        archived_ms = int(key.rsplit("/", 1)[1].split("_", 1)[0])
        latencies.append(archived_ms / 1000 - body["sent"])
    return latencies, seen


def run(args) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    jitr = [JITR]
    half = args.devices // 2
    jitr_pki, jitr_devices = _pki(jitr, folder, "jitr-ca", half, "jitr-")
    jitp_pki, jitp_devices = _pki(jitr, folder, "jitp-ca", args.devices - half, "jitp-")
    emu = EmulatorProcess(folder / "state")
    try:
        from base.certificates import certificate_id, load_certificates

        ca_id = certificate_id(load_certificates((jitr_pki / "certs" / "intermediate-ca.pem").read_bytes())[0])
        outputs = emu.jitr("local", "deploy", "--stack", STACK, "--template", str(TEMPLATE),
                           "--parameter-overrides", f"CaCertificateId={ca_id}")["outputs"]  # fmt: skip
        emu.jitr("ca", "register", "--dir", str(jitr_pki))
        emu.jitr("ca", "register", "--dir", str(jitp_pki), "--jitp", "--role-arn", outputs["ProvisioningRoleArn"],
                 "--topic-root", TOPIC_ROOT)  # fmt: skip
        bucket = outputs["ArchiveBucketName"]
        devices = jitr_devices + jitp_devices
        random.Random(1).shuffle(devices)
        shards = [devices[i :: args.generators] for i in range(args.generators)]
        plan = {"ramp": args.ramp, "seconds": args.seconds, "interval": args.interval,
                "drop_share": args.drop_share, "settle": 30.0, "connectors": args.connectors}  # fmt: skip
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        go = time.time() + 5 + len(devices) / 2000  # every generator has made its clients by then
        workers = [
            context.Process(
                target=generator,
                args=(
                    shard,
                    (emu.info["mqtt_host"], emu.info["mqtt_port"]),
                    emu.info["endpoint_ca"],
                    plan | {"seed": index},
                    go,
                    results,
                ),
            )  # fmt: skip
            for index, shard in enumerate(shards)
        ]
        for worker in workers:
            worker.start()
        rss: list[tuple[float, int]] = []
        cpu_before = emu.cpu_seconds()
        while time.time() < go + args.seconds + plan["settle"] and any(w.is_alive() for w in workers):
            rss.append((round(time.time() - go, 1), _rss_kb(emu.process.pid)))
            print(f"t={rss[-1][0]:6.0f}s emulator RSS {rss[-1][1] / 1024:7.1f} MB", file=sys.stderr, flush=True)
            time.sleep(args.rss_every)
        parts = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join(30)
        cpu = emu.cpu_seconds() - cpu_before
        time.sleep(args.archive_wait)  # the rules' last S3 writes
        print("counting the archive...", file=sys.stderr, flush=True)
        started = time.monotonic()
        keys = _archived(emu, bucket)
        count_seconds = time.monotonic() - started
        sample = sorted(d["thing"] for d in devices)[:: max(1, int(1 / args.sample))]
        print(f"{len(keys)} objects; reading the sample's...", file=sys.stderr, flush=True)
        latencies, seen = _sampled(emu, bucket, keys, sample)
        active = sum(
            c["status"] == "ACTIVE"
            for page in emu.client("iot").get_paginator("list_certificates").paginate(pageSize=250)
            for c in page["certificates"]
        )
    finally:
        emu.stop()
    acked = {thing: set(seqs) for part in parts for thing, seqs in part["acked"].items()}
    sampled_lost = sum(len(acked[t] - set(seen[t])) for t in sample)
    sampled_duplicates = sum(len(seen[t]) - len(set(seen[t])) for t in sample)
    ordered = sorted(latencies)
    total_acked = sum(len(s) for s in acked.values())
    half_way = [kb for at, kb in rss if at >= args.seconds / 2]
    return {
        "devices": args.devices,
        "seconds": args.seconds,
        "activeCertificates": active,
        "connectedAtEnd": sum(p["connectedAtEnd"] for p in parts),
        "published": sum(p["published"] for p in parts),
        "acknowledged": total_acked,
        "archivedObjects": len(keys),
        "countSeconds": round(count_seconds, 1),  # listing the whole archive through the API
        "archivedMinusAcknowledged": len(keys) - total_acked,
        "drops": sum(p["drops"] for p in parts),
        "connects": sum(p["connects"] for p in parts),
        "connectAttemptsFailed": sum(p["failedAttempts"] for p in parts),
        "connacksRefused": sum(p["refused"] for p in parts),
        "connectionsClosed": sum(p["closed"] for p in parts),
        "neverConnected": {
            kind: sum(thing.startswith(kind) for p in parts for thing in p["neverConnected"])
            for kind in ("jitr", "jitp")
        },
        "sampledDevices": len(sample),
        "sampledLost": sampled_lost,
        "sampledDuplicates": sampled_duplicates,
        "p50LatencyMs": round(statistics.median(ordered) * 1000, 1) if ordered else None,
        "p95LatencyMs": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1) if ordered else None,
        "emulatorCpuSeconds": round(cpu, 1),
        "peakRssMb": round(max(kb for _at, kb in rss) / 1024, 1) if rss else None,
        "rssMbSecondHalf": [round(min(half_way) / 1024, 1), round(max(half_way) / 1024, 1)] if half_way else None,
        "rssMb": [(at, round(kb / 1024, 1)) for at, kb in rss],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=600.0, help="from the go, how long devices publish")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between a device's messages")
    parser.add_argument("--ramp", type=float, default=60.0, help="seconds over which the devices are switched on")
    parser.add_argument("--drop-share", type=float, default=0.05, help="devices that lose their connection once")
    parser.add_argument("--generators", type=int, default=4, help="load-generator processes")
    parser.add_argument("--connectors", type=int, default=16, help="TLS handshakes at once per generator")
    parser.add_argument("--sample", type=float, default=0.05, help="share of devices whose archive is read whole")
    parser.add_argument("--rss-every", type=float, default=10.0)
    parser.add_argument("--archive-wait", type=float, default=10.0)
    args = parser.parse_args()
    result = run(args)
    shown = {k: v for k, v in result.items() if k != "rssMb"}
    print(json.dumps(shown), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
