#!/usr/bin/env python3
"""Benchmark the emulator's snapshot: what saving and loading its state costs as the fleet grows.

Starts the emulator in this process (loopback, free ports, no periodic saving) and grows a fleet in
steps (``--devices 100,1000,5000``): each device is a thing with a registered ACTIVE certificate
attached, a policy attached to the certificate, and one archived S3 object, all made through the AWS
API as the kit makes them. At each step, ``--rounds`` times: a capture (pickling every moto backend
and the emulator's own state: what the periodic save does every 2 s while requests or devices keep
changing the state; an idle emulator takes none), a write (atomic replace with fsync), and a load
(read, checksum, unpickle, install into moto). After each load the fleet is counted through the API
(things and certificates), so a load that lost state cannot pass for a fast one.

    .venv/bin/python scripts/bench_snapshot.py --devices 100,1000,5000 --rounds 5

Prints medians per step, the capture's share of the 2-second save interval, and one JSON line last.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}


def _grow(session, issuer, start: int, stop: int) -> None:
    from base.certificates import to_pem
    from base.keys import generate_key

    iot, s3 = session.client("iot"), session.client("s3")
    now = dt.datetime.now(dt.UTC)
    for index in range(start, stop):
        thing = f"bench-{index:06d}"
        key = generate_key("ec-p256")
        certificate = issuer.issue_device(key.public_key(), thing, country="DE", now=now, days=30)
        arn = iot.register_certificate_without_ca(certificatePem=to_pem(certificate).decode(), status="ACTIVE")[
            "certificateArn"
        ]
        iot.create_thing(thingName=thing)
        iot.attach_thing_principal(thingName=thing, principal=arn)
        iot.attach_policy(policyName="bench-policy", target=arn)
        s3.put_object(Bucket="bench-archive", Key=f"devices/{thing}/telemetry/1", Body=b'{"temperature": 21.5}' * 4)


def _count(session) -> tuple[int, int]:
    iot = session.client("iot")
    things = sum(len(page["things"]) for page in iot.get_paginator("list_things").paginate())
    certificates = sum(len(page["certificates"]) for page in iot.get_paginator("list_certificates").paginate())
    return things, certificates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="100,1000,5000", help="fleet sizes, comma-separated, ascending")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    steps = [int(value) for value in args.devices.split(",")]

    import boto3

    from base.keys import generate_key
    from ca.issue import Issuer, issue_root, make_name
    from emulator.local import LocalIot, Options
    from emulator.persistence import DEFAULT_INTERVAL
    from emulator.store import snapshot

    root_key = generate_key("ec-p256")
    issuer = Issuer(
        issue_root(root_key, make_name("Bench Root", country="DE"), now=dt.datetime.now(dt.UTC), days=30), root_key
    )
    results = []
    with tempfile.TemporaryDirectory() as state, LocalIot(Options(state_dir=Path(state))) as iot:
        os.environ.update(iot.environment())
        session = boto3.Session(region_name=iot.info()["region"])
        session.client("iot").create_policy(policyName="bench-policy", policyDocument=json.dumps(POLICY))
        session.client("s3").create_bucket(Bucket="bench-archive")
        path = Path(state) / "emulator.snapshot"
        made = 0
        for devices in steps:
            _grow(session, issuer, made, devices)
            made = devices
            capture, write, load = [], [], []
            for _ in range(args.rounds):
                started = time.perf_counter()
                data = snapshot.capture({"iot": iot.api.store.regions()})
                capture.append(time.perf_counter() - started)
                started = time.perf_counter()
                snapshot.write(path, data)
                write.append(time.perf_counter() - started)
                started = time.perf_counter()
                snapshot.install(snapshot.read(path))
                load.append(time.perf_counter() - started)
                if _count(session) != (devices, devices):
                    raise SystemExit(f"the loaded snapshot does not hold the {devices} devices: {_count(session)}")
            row = {
                "devices": devices,
                "size_kb": round(len(data) / 1024),
                "capture_ms": round(statistics.median(capture) * 1000, 1),
                "write_ms": round(statistics.median(write) * 1000, 1),
                "load_ms": round(statistics.median(load) * 1000, 1),
            }
            row["capture_share_of_interval"] = round(row["capture_ms"] / (DEFAULT_INTERVAL * 1000), 4)
            results.append(row)
            print(
                f"{devices:>6} devices: {row['size_kb']:>6} KB  capture {row['capture_ms']:>7} ms  "
                f"write {row['write_ms']:>6} ms  load {row['load_ms']:>7} ms  "
                f"(capture = {row['capture_share_of_interval']:.1%} of the {DEFAULT_INTERVAL:g} s interval)",
                flush=True,
            )
    print(json.dumps({"rounds": args.rounds, "steps": results}))


if __name__ == "__main__":
    main()
