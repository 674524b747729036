#!/usr/bin/env python3
"""Benchmark the users API and MQTT over WebSocket with SigV4 (issue 15).

Each round starts its own emulator (``jitr local up --json --fresh``, a process of its own), deploys
``sam/template.yaml`` with the provisioning and users APIs, admits and enrolls ``--users`` devices (one per
user), signs each user up and in (Cognito), and binds each to its device through the users API. Then:

- ``/credentials``: ``--credential-requests`` requests from ``--threads`` clients, each user asking for
  credentials for its device: requests/s (target >= 50), every answer 200.
- watching: each user connects over WebSocket with its credentials (the kit's own ``user.live``, paho with
  a SigV4-signed URL) and subscribes to its device's telemetry; the devices (paho over TLS with their
  certificates) publish ``--rate`` messages a second in all, round robin, for ``--seconds``. Each payload
  carries its send time: delivery latency p50/p95, messages delivered to their owner, lost, and delivered to
  anybody else (must be 0; each user is also refused a subscription to another user's device first).

    .venv/bin/python scripts/bench_users.py --users 100 --seconds 60 --rate 10 --rounds 1

Prints each round and one JSON line (every figure) last.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emulator_process import EmulatorProcess  # noqa: E402  (scripts/, beside this file)

from base.http import Requests  # noqa: E402
from user.devices import UsersApi  # noqa: E402
from user.live import LiveConnection, LiveConnectionError  # noqa: E402

STACK = "bench-users"
PASSWORD = "bench-password-2026"


def _sub(token: str) -> str:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["sub"]


def _setup(emulator: EmulatorProcess, folder: Path, users: int, threads: int) -> dict:
    emulator.jitr(
        "local", "deploy", "--stack", STACK, "--template", str(ROOT / "sam" / "template.yaml"),
        "--parameter-overrides", f"CaCertificateId={'a' * 64}", "ProvisioningApi=true", "UsersApi=true",
    )  # fmt: skip
    outputs = emulator.jitr("fleet", "describe", "--stack", STACK)["outputs"]
    admitted = emulator.jitr(
        "fleet", "admit", "--stack", STACK, "--count", str(users), "--prefix", "dev-", "--out", str(folder / "t.json")
    )["devices"]  # fmt: skip
    devices = folder / "devices"
    idp = emulator.client("cognito-idp")

    def prepare(index_row: tuple[int, dict]) -> tuple[str, str]:
        index, row = index_row
        emulator.jitr("device", "enroll", "--api", outputs["ProvisioningApiUrl"], "--serial", row["serial"],
                      "--token", row["token"], "--out", str(devices))  # fmt: skip
        email = f"user{index}@example.com"
        idp.sign_up(ClientId=outputs["UserPoolClientId"], Username=email, Password=PASSWORD)
        idp.admin_confirm_sign_up(UserPoolId=outputs["UserPoolId"], Username=email)
        token = idp.initiate_auth(
            ClientId=outputs["UserPoolClientId"],
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD},
        )["AuthenticationResult"]["IdToken"]
        UsersApi(outputs["UsersApiUrl"], token).bind(row["serial"], row["bindingCode"])
        return row["serial"], token

    with ThreadPoolExecutor(threads) as pool:
        tokens = dict(pool.map(prepare, enumerate(admitted)))
    return {"outputs": outputs, "tokens": tokens, "devices": devices}


def _credentials_rate(api_url: str, tokens: dict[str, str], requests: int, threads: int) -> dict:
    plain = Requests()
    pairs = list(tokens.items())

    def ask(index: int) -> bool:
        thing, token = pairs[index % len(pairs)]
        answer = UsersApi(api_url, token, plain).credentials([thing])
        return answer.things == (thing,)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        good = sum(pool.map(ask, range(requests)))
    seconds = time.perf_counter() - started
    return {"requests": requests, "ok": good, "seconds": round(seconds, 2), "rate": round(requests / seconds, 1)}


def _watch(emulator: EmulatorProcess, setup: dict, seconds: float, rate: float, threads: int) -> dict:
    api_url, tokens = setup["outputs"]["UsersApiUrl"], setup["tokens"]
    things = sorted(tokens)
    root_ca = Path(emulator.info["endpoint_ca"])
    latencies: list[float] = []
    misdelivered: list[tuple[str, str]] = []
    refused_elsewhere: list[bool] = []
    lock = threading.Lock()

    def watcher(index: int) -> LiveConnection:
        thing = things[index]
        credentials = UsersApi(api_url, tokens[thing]).credentials([thing])
        live = LiveConnection(credentials, root_ca=root_ca, timeout=30)
        live.connect()
        try:
            live.subscribe(credentials.telemetry_topic(things[(index + 1) % len(things)]))
            refused = False
        except LiveConnectionError:
            refused = True
        live.subscribe(credentials.telemetry_topic(thing))

        def heard(_client, _userdata, message) -> None:
            arrived = time.time()
            body = json.loads(message.payload)
            with lock:
                if body["thing"] != thing:
                    misdelivered.append((thing, body["thing"]))
                else:
                    latencies.append(arrived - body["sent"])

        live._client.on_message = heard  # noqa: SLF001 (the benchmark times each delivery as it lands)
        with lock:
            refused_elsewhere.append(refused)
        return live

    with ThreadPoolExecutor(threads) as pool:
        watchers = list(pool.map(watcher, range(len(things))))
    host, port = emulator.info["mqtt_host"], emulator.info["mqtt_port"]
    devices: list[mqtt.Client] = []
    for thing in things:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=thing, protocol=mqtt.MQTTv311)
        client.tls_set(
            ca_certs=str(root_ca),
            certfile=str(setup["devices"] / "certs" / f"{thing}.pem"),
            keyfile=str(setup["devices"] / "private" / f"{thing}.key"),
        )
        client.connect(host, port, 60)
        client.loop_start()
        devices.append(client)
    time.sleep(1.0)
    published = 0
    started = time.perf_counter()
    interval = 1.0 / rate
    while time.perf_counter() - started < seconds:
        thing = things[published % len(things)]
        payload = json.dumps({"thing": thing, "seq": published, "sent": time.time()})
        devices[published % len(things)].publish(f"devices/{STACK}/{thing}/telemetry", payload, qos=1)
        published += 1
        time.sleep(max(0.0, started + published * interval - time.perf_counter()))
    time.sleep(3.0)  # the last messages' way through
    for client in devices:
        client.disconnect()
        client.loop_stop()
    for live in watchers:
        live.close()
    ordered = sorted(latencies)
    return {
        "watchers": len(watchers),
        "refusedAnotherUsersDevice": sum(refused_elsewhere),
        "published": published,
        "delivered": len(latencies),
        "lost": published - len(latencies),
        "deliveredToSomebodyElse": len(misdelivered),
        "p50Ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
        "p95Ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1) if ordered else None,
        "maxMs": round(ordered[-1] * 1000, 1) if ordered else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the devices publish")
    parser.add_argument("--rate", type=float, default=10.0, help="messages a second, all devices together")
    parser.add_argument("--credential-requests", type=int, default=300)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    rounds: list[dict] = []
    for index in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-users-") as folder:
            emulator = EmulatorProcess(Path(folder) / "state")
            try:
                began = time.perf_counter()
                setup = _setup(emulator, Path(folder), args.users, args.threads)
                setup_seconds = round(time.perf_counter() - began, 1)
                api_url = setup["outputs"]["UsersApiUrl"]
                credentials = _credentials_rate(api_url, setup["tokens"], args.credential_requests, args.threads)
                cpu_before = emulator.cpu_seconds()
                watching = _watch(emulator, setup, args.seconds, args.rate, args.threads)
                watching["emulatorCpuSeconds"] = round(emulator.cpu_seconds() - cpu_before, 1)
            finally:
                emulator.stop()
        result: dict = {"setupSeconds": setup_seconds, "credentials": credentials, "watching": watching}
        rounds.append(result)
        print(f"round {index + 1}: {json.dumps(result)}", flush=True)
    summary = {
        "median /credentials per second": statistics.median(r["credentials"]["rate"] for r in rounds),
        "median p95 ms": statistics.median(r["watching"]["p95Ms"] for r in rounds),
        "lost": sum(r["watching"]["lost"] for r in rounds),
        "delivered to somebody else": sum(r["watching"]["deliveredToSomebodyElse"] for r in rounds),
    }
    print(json.dumps({"summary": summary, "rounds": rounds}))


if __name__ == "__main__":
    main()
