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
import contextlib
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
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


class _Device:
    """One device of a generator: its paho client, driven by the generator's loop (paho's external-loop API:
    one epoll loop per process, not a thread and a socket pair per client, and no select() limit of 1024)."""

    def __init__(self, thing: str, client: Any) -> None:
        self.thing, self.client = thing, client
        self.pending: dict[int, int] = {}  # mid -> seq, waiting for its PUBACK
        self.acked: set[int] = set()
        self.connected = False
        self.ever = False
        self.busy = False  # a connect is under way in the pool
        self.retry_at = 0.0
        self.failures = 0
        self.sock: Any = None
        self.fd = -1  # registered with the loop's selector under this number


def _generator(shard: list[dict], endpoint: tuple[str, int], root_ca: str, plan: dict, go: float, results) -> None:
    import queue
    import selectors
    import ssl
    from concurrent.futures import ThreadPoolExecutor

    import paho.mqtt.client as mqtt

    rng = random.Random(plan["seed"])
    stats = {"published": 0, "acked": 0, "connects": 0, "drops": 0, "refused": 0, "closed": 0, "failedAttempts": 0}
    folder = tempfile.mkdtemp(prefix="soak-keys-")
    selector = selectors.DefaultSelector()
    opened: queue.SimpleQueue = queue.SimpleQueue()  # (device, error) from the connecting threads
    devices: dict[str, _Device] = {}

    def make(record: dict) -> _Device:
        thing = record["thing"]
        chain, key = Path(folder) / f"{thing}.pem", Path(folder) / f"{thing}.key"
        chain.write_text(record["chain"])
        key.write_text(record["key"])
        context = ssl.create_default_context(cafile=root_ca)
        context.load_cert_chain(str(chain), str(key))
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=thing, protocol=mqtt.MQTTv311)
        client.tls_set_context(context)
        client.connect_timeout = 10
        device = _Device(thing, client)

        def on_connect(_c, _u, _f, rc, _p) -> None:
            if rc.is_failure:
                stats["refused"] += 1
                return
            stats["connects"] += 1
            device.connected = device.ever = True
            device.failures = 0

        def on_publish(_c, _u, mid, _rc, _p) -> None:
            seq = device.pending.pop(mid, None)
            if seq is not None and seq not in device.acked:
                device.acked.add(seq)
                stats["acked"] += 1

        client.on_connect, client.on_publish = on_connect, on_publish
        return device

    def connect(device: _Device) -> None:  # in the pool: the TCP and TLS handshakes block
        try:
            if device.ever or device.failures:
                device.client.reconnect()  # paho sends what still waits for its PUBACK again (DUP)
            else:
                device.client.connect(endpoint[0], endpoint[1], keepalive=60)
            opened.put((device, None))
        except (OSError, ValueError) as exc:
            opened.put((device, exc))

    def lost(device: _Device, now: float) -> None:
        """The connection ended (JITR's first drop, a refusal, our drop): unregister, retry with backoff."""
        if device.sock is not None:
            with contextlib.suppress(KeyError):
                selector.unregister(device.fd)
            device.sock, device.fd = None, -1
        with contextlib.suppress(Exception):
            sock = device.client.socket()
            if sock is not None:
                sock.close()
        if device.connected:
            stats["closed"] += 1
        device.connected = False
        device.failures += 1
        device.retry_at = now + rng.uniform(0, min(16.0, 0.5 * 2 ** min(device.failures, 6)))

    for record in shard:
        devices[record["thing"]] = make(record)
    while time.time() < go:
        time.sleep(0.01)
    started = time.monotonic()
    ramp = plan["ramp"]
    order = list(devices)
    rng.shuffle(order)
    for index, thing in enumerate(order):  # switched on over the ramp, in a random order
        devices[thing].retry_at = started + ramp * index / len(order)
    drops = set(rng.sample(order, int(len(order) * plan["drop_share"])))
    drop_at = {thing: started + rng.uniform(ramp, plan["seconds"]) for thing in drops}
    next_at = {thing: started + ramp + rng.uniform(0, plan["interval"]) for thing in order}
    sequence = dict.fromkeys(order, 0)
    end = started + plan["seconds"]
    misc_at = started
    with ThreadPoolExecutor(plan["connectors"]) as pool:
        while True:
            now = time.monotonic()
            if now >= end:
                waiting = any(d.pending for d in devices.values() if d.connected)
                if not waiting or now >= end + plan["settle"]:
                    break
            while not opened.empty():  # connects that finished: hand their sockets to the loop
                device, error = opened.get()
                device.busy = False
                if error is not None:
                    stats["failedAttempts"] += 1
                    lost(device, now)
                    continue
                device.sock = device.client.socket()
                device.fd = device.sock.fileno()
                stale = selector.get_map().get(device.fd)
                if stale is not None:  # paho closed a socket and a connecting thread got its number before we saw
                    lost(stale.data, now)
                selector.register(device.fd, selectors.EVENT_READ, device)
            for device in devices.values():
                if device.sock is None and not device.busy and now >= device.retry_at and now < end:
                    device.busy = True
                    pool.submit(connect, device)
            for key, _events in selector.select(timeout=0.02):
                device = key.data
                if device.client.loop_read(max_packets=10) != mqtt.MQTT_ERR_SUCCESS:
                    lost(device, now)
            for device in devices.values():
                writing = device.sock is not None and device.client.want_write()
                if writing and device.client.loop_write() != mqtt.MQTT_ERR_SUCCESS:
                    lost(device, now)
            if now >= misc_at:  # keep-alive pings, and paho's own timeouts
                misc_at = now + 1.0
                for device in devices.values():
                    if device.sock is not None and device.client.loop_misc() != mqtt.MQTT_ERR_SUCCESS:
                        lost(device, now)
            if now >= end:
                continue
            for thing in order:
                device = devices[thing]
                if thing in drop_at and now >= drop_at[thing] and device.connected:
                    del drop_at[thing]
                    with contextlib.suppress(OSError):  # the network goes away: no DISCONNECT
                        device.sock.shutdown(socket.SHUT_RDWR)
                        stats["drops"] += 1
                if now < next_at[thing] or not device.connected:
                    continue
                next_at[thing] += plan["interval"]
                _send(device, sequence[thing])
                sequence[thing] += 1
                stats["published"] += 1
    connected_at_end = sum(d.connected for d in devices.values())
    for device in devices.values():
        if device.sock is not None:
            with contextlib.suppress(Exception):
                device.client.disconnect()
                device.client.loop_write()
                device.sock.close()
    results.put(
        {
            **stats,
            "sequences": sequence,
            "acked": {thing: sorted(d.acked) for thing, d in devices.items()},
            "connectedAtEnd": connected_at_end,
            "neverConnected": sorted(thing for thing, d in devices.items() if not d.ever),
        }
    )


def _send(device: _Device, seq: int) -> None:
    payload = json.dumps({"thing": device.thing, "seq": seq, "sent": time.time()})
    info = device.client.publish(f"{TOPIC_ROOT}/{device.thing}/telemetry", payload, qos=1)
    device.pending[info.mid] = seq


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
        print("counting the archive...", file=sys.stderr, flush=True)
        keys = _archived(emu, bucket)
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
