#!/usr/bin/env python3
"""Benchmark the emulator's API Gateway: what a request through an HTTP or REST API costs over invoking
the same function directly, measured side by side.

Starts the emulator in this process (loopback, free ports), deploys the platform test stack
(``tests/e2e/platform/template.yaml``) and, in each of ``--rounds`` rounds, times ``--requests``
sequential requests of each kind, interleaved: ``aws lambda invoke`` of the function through the AWS
API endpoint (boto3), ``GET /open/{id}`` on the HTTP API (payload 2.0), ``GET /items/{id}`` on the REST
API (payload 1.0) and ``POST /closed`` on the HTTP API with a Cognito ID token (the JWT authorizer's
cost). Then ``--threads`` clients send ``--requests`` HTTP API requests each at once: requests/s.
Every answer's status is checked (200), so a failing route cannot pass for a fast one.

    .venv/bin/python scripts/bench_apigateway.py --requests 200 --rounds 3

Prints medians of the rounds (p50 and p95 in ms, ratio to the direct invoke) and one JSON line last.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TEMPLATE = ROOT / "tests" / "e2e" / "platform" / "template.yaml"
PASSWORD = "Bench-Passw0rd!"


def _get(connection: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    connection.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
    answer = connection.getresponse()
    answer.read()
    if answer.status != 200:
        raise SystemExit(f"{method} {path} answered {answer.status}, not 200")
    return time.perf_counter() - started


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests of each kind a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8, help="concurrent clients for the throughput figure")
    args = parser.parse_args()

    import boto3

    from emulator.cloudformation.deploy import StackDeployer
    from emulator.local import LocalIot, Options

    with LocalIot(Options(state_dir=Path(tempfile.mkdtemp(prefix="bench-apigw-")))) as iot:
        os.environ.update(iot.environment())
        session = boto3.Session(region_name=iot.info()["region"])
        record = StackDeployer(session).deploy(TEMPLATE, "bench", {})
        outputs = record["outputs"]
        function = next(r["physicalId"] for r in record["resources"] if r["logicalId"] == "Answer")
        idp = session.client("cognito-idp")
        idp.admin_create_user(UserPoolId=outputs["UserPoolId"], Username="bench", TemporaryPassword=PASSWORD)
        idp.admin_set_user_password(
            UserPoolId=outputs["UserPoolId"], Username="bench", Password=PASSWORD, Permanent=True
        )
        token = idp.initiate_auth(
            ClientId=outputs["AppClientId"],
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": "bench", "PASSWORD": PASSWORD},
        )["AuthenticationResult"]["IdToken"]
        http_url, rest_url = urlsplit(outputs["HttpUrl"]), urlsplit(outputs["RestUrl"])
        lam = session.client("lambda")
        connection = http.client.HTTPConnection(http_url.hostname, http_url.port, timeout=30)
        event = json.dumps({"rawPath": "/open/1"}).encode()

        def invoke() -> float:
            started = time.perf_counter()
            answer = lam.invoke(FunctionName=function, Payload=event)
            if "FunctionError" in answer:
                raise SystemExit(f"the direct invoke failed: {answer['Payload'].read()!r}")
            return time.perf_counter() - started

        kinds = {
            "lambda invoke (direct)": invoke,
            "HTTP API, payload 2.0": lambda: _get(connection, "GET", f"{http_url.path}/open/1", {}),
            "REST API, payload 1.0": lambda: _get(connection, "GET", f"{rest_url.path}/items/1", {}),
            "HTTP API + JWT authorizer": lambda: _get(
                connection, "POST", f"{http_url.path}/closed", {"Authorization": f"Bearer {token}"}
            ),
        }
        for run in kinds.values():  # warm workers and connections
            run()
        rounds = []
        for _ in range(args.rounds):
            times: dict[str, list[float]] = {name: [] for name in kinds}
            for _ in range(args.requests):
                for name, run in kinds.items():
                    times[name].append(run())
            figures = {
                name: {"p50_ms": statistics.median(v) * 1000, "p95_ms": _percentile(v, 0.95) * 1000}
                for name, v in times.items()
            }
            figures["throughput_rps"] = {"value": _throughput(http_url, args.threads, args.requests)}
            rounds.append(figures)
        StackDeployer(session).destroy("bench")

    direct = statistics.median(r["lambda invoke (direct)"]["p50_ms"] for r in rounds)
    print(f"{'request':28} {'p50 ms':>8} {'p95 ms':>8} {'p50 / direct':>13}")
    for name in kinds:
        p50 = statistics.median(r[name]["p50_ms"] for r in rounds)
        p95 = statistics.median(r[name]["p95_ms"] for r in rounds)
        print(f"{name:28} {p50:8.2f} {p95:8.2f} {p50 / direct:13.2f}")
    rps = statistics.median(r["throughput_rps"]["value"] for r in rounds)
    print(f"HTTP API, {args.threads} clients at once: {rps:.0f} requests/s (median of {args.rounds} rounds)")
    print(json.dumps({"rounds": rounds, "requests": args.requests, "threads": args.threads}))


def _throughput(url, threads: int, requests: int) -> float:
    failures: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        for _ in range(requests):
            try:
                _get(connection, "GET", f"{url.path}/open/1", {})
            except (SystemExit, OSError) as exc:
                failures.append(str(exc))
                return

    workers = [threading.Thread(target=client) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} clients failed: {failures[0]}")
    return threads * requests / elapsed


if __name__ == "__main__":  # the Lambda workers' forkserver imports this module again
    main()
