#!/usr/bin/env python3
"""A fleet soak against the emulator (issue 17): many devices, JITR and JITP mixed, publishing for minutes.

The emulator runs as ``jitr local up`` does, in a process of its own. The stack is deployed for a JITR CA
(its activation Lambda activates those devices), and a second CA is registered for JITP with the stack's
template. ``--devices`` devices (half of each CA) are minted, then driven from ``--generators`` processes:
each device is a paho-mqtt client with its own network thread, reconnecting with backoff (the JITR first
connect is dropped), switched on over the first ``--ramp`` seconds, then publishing one QoS 1 message every
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
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emulator_process import JITR, EmulatorProcess  # noqa: E402  (scripts/, beside this file)

STACK = "soak"
TOPIC_ROOT = f"devices/{STACK}"
TEMPLATE = ROOT / "sam" / "template.yaml"


# -- the devices: one generator process drives a shard ----------------------------------------------------


def _generator(shard: list[dict], endpoint: tuple[str, int], root_ca: str, plan: dict, go: float, results) -> None:
    import ssl

    import paho.mqtt.client as mqtt

    rng = random.Random(plan["seed"])
    lock = threading.Lock()
    state: dict[str, dict] = {}
    stats = {"published": 0, "acked": 0, "connects": 0, "drops": 0}
    folder = tempfile.mkdtemp(prefix="soak-keys-")

    def make(device: dict) -> mqtt.Client:
        thing = device["thing"]
        chain, key = Path(folder) / f"{thing}.pem", Path(folder) / f"{thing}.key"
        chain.write_text(device["chain"])
        key.write_text(device["key"])
        context = ssl.create_default_context(cafile=root_ca)
        context.load_cert_chain(str(chain), str(key))
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=thing, protocol=mqtt.MQTTv311)
        client.tls_set_context(context)
        client.reconnect_delay_set(1, 16)
        record = state[thing] = {"pending": {}, "acked": set(), "connected": threading.Event()}

        def on_connect(_c, _u, _f, rc, _p) -> None:
            if not rc.is_failure:
                with lock:
                    stats["connects"] += 1
                record["connected"].set()

        def on_disconnect(*_args) -> None:
            record["connected"].clear()

        def on_publish(_c, _u, mid, _rc, _p) -> None:
            with lock:
                seq = record["pending"].pop(mid, None)
                if seq is not None and seq not in record["acked"]:
                    record["acked"].add(seq)
                    stats["acked"] += 1

        client.on_connect, client.on_disconnect, client.on_publish = on_connect, on_disconnect, on_publish
        return client

    clients = {device["thing"]: make(device) for device in shard}
    while time.time() < go:
        time.sleep(0.01)
    started = time.monotonic()
    ramp = plan["ramp"]
    order = list(clients)
    rng.shuffle(order)
    for index, thing in enumerate(order):  # switched on over the ramp, in a random order
        time.sleep(max(0.0, started + ramp * index / len(order) - time.monotonic()))
        clients[thing].connect_async(endpoint[0], endpoint[1], keepalive=60)
        clients[thing].loop_start()
    drops = set(rng.sample(order, int(len(order) * plan["drop_share"])))
    drop_at = {thing: started + rng.uniform(ramp, plan["seconds"]) for thing in drops}
    next_at = {thing: started + ramp + rng.uniform(0, plan["interval"]) for thing in order}
    sequence = dict.fromkeys(order, 0)
    end = started + plan["seconds"]
    while time.monotonic() < end:
        now = time.monotonic()
        for thing in order:
            if thing in drop_at and now >= drop_at[thing]:
                del drop_at[thing]
                sock: Any = clients[thing].socket()
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)  # the network goes away: no DISCONNECT, paho reconnects
                        stats["drops"] += 1
                    except OSError:
                        pass
            if now < next_at[thing] or not state[thing]["connected"].is_set():
                continue
            next_at[thing] += plan["interval"]
            _send(clients[thing], thing, sequence[thing], state[thing], lock)
            sequence[thing] += 1
            stats["published"] += 1
        time.sleep(0.05)
    deadline = time.monotonic() + plan["settle"]
    while time.monotonic() < deadline:  # the last PUBACKs
        with lock:
            if all(not r["pending"] for r in state.values()):
                break
        time.sleep(0.2)
    for client in clients.values():
        client.disconnect()
        client.loop_stop()
    results.put(
        {
            **stats,
            "sequences": sequence,
            "acked": {thing: sorted(record["acked"]) for thing, record in state.items()},
            "connectedAtEnd": sum(r["connected"].is_set() for r in state.values()),
        }
    )


def _send(client, thing: str, seq: int, record: dict, lock: threading.Lock) -> None:
    payload = json.dumps({"thing": thing, "seq": seq, "sent": time.time()})
    info = client.publish(f"{TOPIC_ROOT}/{thing}/telemetry", payload, qos=1)
    with lock:
        record["pending"][info.mid] = seq


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
    pages = emu.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _sampled(emu: EmulatorProcess, bucket: str, things: list[str]) -> tuple[list[float], dict[str, list[int]]]:
    """Publish-to-archive latencies (s) and each sampled device's archived sequence numbers."""
    s3 = emu.client("s3")
    latencies: list[float] = []
    seen: dict[str, list[int]] = {}
    for thing in things:
        seen[thing] = []
        for key in _archived(emu, bucket, f"{TOPIC_ROOT}/{thing}/telemetry/"):
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
                "drop_share": args.drop_share, "settle": 30.0}  # fmt: skip
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        go = time.time() + 5 + len(devices) / 2000  # every generator has made its clients by then
        workers = [
            context.Process(
                target=_generator,
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
        keys = _archived(emu, bucket)
        sample = sorted(d["thing"] for d in devices)[:: max(1, int(1 / args.sample))]
        latencies, seen = _sampled(emu, bucket, sample)
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
        "archivedMinusAcknowledged": len(keys) - total_acked,
        "drops": sum(p["drops"] for p in parts),
        "connects": sum(p["connects"] for p in parts),
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
