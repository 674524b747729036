#!/usr/bin/env python3
"""Benchmark device minting: the kit, an openssl command-line loop, and the bare crypto rate.

All three run in one process tree, interleaved round by round, so a noisy machine hurts them
alike; the report gives medians and the ratios between them.

    .venv/bin/python scripts/bench_mint.py --devices 100000 --openssl-devices 100 --rounds 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from base.certificates import to_pem  # noqa: E402
from base.keys import generate_key, private_key_pem  # noqa: E402
from ca.batch import BatchRequest, mint_batch, numbered_names  # noqa: E402
from ca.issue import Issuer, issue_root, make_name  # noqa: E402

TBS_SIZE = 420  # about the size of a device TBSCertificate


def bare_chunk(count: int) -> int:
    """Key generation plus one ECDSA signature per device, nothing else."""
    signer = ec.generate_private_key(ec.SECP256R1())
    curve, algorithm, data = ec.SECP256R1(), ec.ECDSA(hashes.SHA256()), os.urandom(TBS_SIZE)
    for _ in range(count):
        ec.generate_private_key(curve)
        signer.sign(data, algorithm)
    return count


def bare_rate(devices: int, workers: int) -> float:
    chunk = 2000
    sizes = [chunk] * (devices // chunk) + ([devices % chunk] if devices % chunk else [])
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        total = sum(pool.map(bare_chunk, sizes))
    return total / (time.perf_counter() - started)


def kit_rate(issuer: Issuer, devices: int, workers: int, fmt: str, work: Path) -> float:
    out = work / f"kit-{fmt}"
    started = time.perf_counter()
    result = mint_batch(
        numbered_names("bench-", devices),
        ca_cert_pem=to_pem(issuer.certificate),
        ca_key_pem=private_key_pem(issuer.key),
        passphrase=None,
        request=BatchRequest(out=out, fmt=fmt, workers=workers),
        now=dt.datetime.now(dt.UTC),
    )
    rate = result.count / (time.perf_counter() - started)
    shutil.rmtree(out)
    return rate


def openssl_rate(issuer: Issuer, devices: int, work: Path) -> float:
    """The way shell kits mint: genpkey, req and x509 -req per device."""
    folder = work / "openssl"
    folder.mkdir()
    (folder / "ca.pem").write_bytes(to_pem(issuer.certificate))
    (folder / "ca.key").write_bytes(private_key_pem(issuer.key))
    (folder / "ca.key").chmod(0o600)
    started = time.perf_counter()
    for i in range(devices):
        name = f"dev-{i}"
        run = lambda *args: subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)  # noqa: E731
        run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key")
        run("req", "-new", "-key", f"{name}.key", "-subj", f"/C=DE/CN={name}", "-out", f"{name}.csr")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-sha256",
            "-out",
            f"{name}.pem",
        )
    rate = devices / (time.perf_counter() - started)
    shutil.rmtree(folder)
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100_000, help="devices per kit run")
    parser.add_argument("--files-devices", type=int, default=20_000, help="devices per kit run in files format")
    parser.add_argument("--openssl-devices", type=int, default=100, help="devices per openssl-loop run")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if shutil.which("openssl") is None:
        parser.error("the openssl command line is needed for the comparison")

    key = generate_key("ec-p256")
    now = dt.datetime.now(dt.UTC)
    issuer = Issuer(issue_root(key, make_name("Bench CA", country="DE"), now=now, days=3650), key)
    rates: dict[str, list[float]] = {"kit_jsonl": [], "kit_files": [], "bare_crypto": [], "openssl_loop": []}
    with tempfile.TemporaryDirectory(prefix="bench-mint-") as tmp:
        work = Path(tmp)
        for round_ in range(1, args.rounds + 1):
            rates["kit_jsonl"].append(kit_rate(issuer, args.devices, args.workers, "jsonl", work))
            rates["bare_crypto"].append(bare_rate(args.devices, args.workers))
            rates["kit_files"].append(kit_rate(issuer, args.files_devices, args.workers, "files", work))
            rates["openssl_loop"].append(openssl_rate(issuer, args.openssl_devices, work))
            print(f"round {round_}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()), file=sys.stderr)
    median = {name: statistics.median(values) for name, values in rates.items()}
    report = {
        "devices": args.devices,
        "workers": args.workers,
        "rounds": args.rounds,
        "median_per_second": {k: round(v, 1) for k, v in median.items()},
        "kit_jsonl_vs_openssl_loop": round(median["kit_jsonl"] / median["openssl_loop"], 1),
        "kit_jsonl_vs_bare_crypto": round(median["kit_jsonl"] / median["bare_crypto"], 3),
        "kit_files_vs_bare_crypto": round(median["kit_files"] / median["bare_crypto"], 3),
        "cpu_count": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("| measure | median devices/s |\n|---|---:|")
        for name, value in median.items():
            print(f"| {name} | {value:,.0f} |")
        print(f"\nkit (jsonl) / openssl loop: {report['kit_jsonl_vs_openssl_loop']}x")
        print(f"kit (jsonl) / bare crypto: {report['kit_jsonl_vs_bare_crypto']:.0%}")
        print(f"kit (files) / bare crypto: {report['kit_files_vs_bare_crypto']:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
