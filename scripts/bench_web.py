#!/usr/bin/env python3
"""Benchmark the web page in a real browser (issue 18): headless Chromium against the emulator.

Each round starts its own emulator (``jitr local up --json --fresh``, a process of its own), deploys
``sam/template.yaml`` with the users API, admits and enrolls one device, signs a user up (AdminConfirmSignUp)
and binds the device, builds and uploads the page (``jitr fleet website``), then drives Chromium through
selenium and times what a person waits for:

- page ready: from navigation to the sign-in form shown (config.json fetched and checked);
- signed in: from clicking "Sign in" (Cognito) to the device list shown (users API, with last seen);
- live: from clicking "Watch" to "Live: watching" (archive read, credentials, SigV4 WebSocket, SUBACK);
- delivery: the device publishes ``--messages`` messages (``--interval`` apart) over MQTT/TLS; each one's
  time from publish to its row appearing on the page (a MutationObserver stamps it; one clock, one machine).

    .venv/bin/python scripts/bench_web.py --messages 200 --interval 0.05 --rounds 3

Prints each round and one JSON line (every figure) last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emulator_process import EmulatorProcess  # noqa: E402  (scripts/, beside this file)

STACK, THING, EMAIL, PASSWORD = "bench-web", "bench-box", "bench@example.com", "bench-password-2026"
OBSERVE = """
window.__seen = {};
new MutationObserver((changes) => {
  for (const change of changes) for (const row of change.addedNodes) {
    const found = /"seq":\\s*(\\d+)/.exec(row.textContent || "");
    if (found && !(found[1] in window.__seen)) window.__seen[found[1]] = Date.now();
  }
}).observe(document.querySelector("#messages tbody"), { childList: true });
"""


def _percentile(values: list[int], share: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _setup(emulator: EmulatorProcess, folder: Path) -> dict:
    emulator.jitr(
        "local", "deploy", "--stack", STACK, "--template", str(ROOT / "sam" / "template.yaml"),
        "--parameter-overrides", f"CaCertificateId={'e' * 64}", "ProvisioningApi=true", "UsersApi=true",
    )  # fmt: skip
    outputs = emulator.jitr("fleet", "describe", "--stack", STACK)["outputs"]
    row = emulator.jitr("fleet", "admit", "--stack", STACK, "--serial", THING, "--out", str(folder / "t.json"))[
        "devices"
    ][0]
    emulator.jitr("device", "enroll", "--api", outputs["ProvisioningApiUrl"], "--serial", THING,
                  "--token", row["token"], "--out", str(folder / "devices"))  # fmt: skip
    idp = emulator.client("cognito-idp")
    idp.sign_up(ClientId=outputs["UserPoolClientId"], Username=EMAIL, Password=PASSWORD)
    idp.admin_confirm_sign_up(UserPoolId=outputs["UserPoolId"], Username=EMAIL)
    token = idp.initiate_auth(
        ClientId=outputs["UserPoolClientId"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": EMAIL, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]["IdToken"]
    from user.devices import UsersApi

    UsersApi(outputs["UsersApiUrl"], token).bind(THING, row["bindingCode"])
    site = emulator.jitr("fleet", "website", "--stack", STACK, "--site", str(ROOT / "build" / "web"))
    return {"outputs": outputs, "url": site["url"], "devices": folder / "devices"}


def _browser(info: dict, profile: Path):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", f"--user-data-dir={profile}", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--ignore-certificate-errors-spki-list={info['endpoint_spki_sha256']}"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))


def _device(info: dict, devices: Path) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=THING, protocol=mqtt.MQTTv311)
    client.tls_set(
        ca_certs=info["endpoint_ca"],
        certfile=str(devices / "certs" / f"{THING}.pem"),
        keyfile=str(devices / "private" / f"{THING}.key"),
    )
    client.connect(info["mqtt_host"], info["mqtt_port"], 30)
    client.loop_start()
    return client


def _round(messages: int, interval: float) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        emulator = EmulatorProcess(folder / "state")
        driver = None
        try:
            setup = _setup(emulator, folder)
            driver = _browser(emulator.info, folder / "profile")
            wait = WebDriverWait(driver, 30, poll_frequency=0.01)
            started = time.monotonic()
            driver.get(setup["url"])
            wait.until(seen.visibility_of_element_located((By.ID, "sign-in-form")))
            page_ready = time.monotonic() - started
            driver.find_element(By.ID, "email").send_keys(EMAIL)
            driver.find_element(By.ID, "password").send_keys(PASSWORD)
            started = time.monotonic()
            driver.find_element(By.ID, "sign-in-button").click()
            wait.until(seen.text_to_be_present_in_element((By.ID, "status"), "1 device."))
            signed_in = time.monotonic() - started
            started = time.monotonic()
            driver.find_element(By.CSS_SELECTOR, f"tr[data-thing='{THING}'] button").click()
            wait.until(seen.text_to_be_present_in_element((By.ID, "live-state"), "Live: watching"))
            live = time.monotonic() - started
            driver.execute_script(OBSERVE)
            device = _device(emulator.info, setup["devices"])
            sent: dict[str, int] = {}
            try:
                for seq in range(messages):
                    sent[str(seq)] = int(time.time() * 1000)
                    device.publish(f"devices/{STACK}/{THING}/telemetry", json.dumps({"seq": seq}), qos=1)
                    time.sleep(interval)
                deadline = time.monotonic() + 10
                arrived: dict[str, int] = {}
                while time.monotonic() < deadline and len(arrived) < messages:
                    arrived = driver.execute_script("return window.__seen")
                    time.sleep(0.1)
            finally:
                device.disconnect()
                device.loop_stop()
            latencies = [arrived[seq] - sent[seq] for seq in sent if seq in arrived]
            return {
                "pageReadyMs": round(page_ready * 1000, 1),
                "signedInMs": round(signed_in * 1000, 1),
                "liveMs": round(live * 1000, 1),
                "delivered": len(latencies),
                "sent": messages,
                "deliveryP50Ms": statistics.median(latencies) if latencies else None,
                "deliveryP95Ms": _percentile(latencies, 0.95) if latencies else None,
                "deliveryMaxMs": max(latencies) if latencies else None,
            }
        finally:
            if driver is not None:
                driver.quit()
            emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between the device's messages")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    subprocess.run(["bash", str(ROOT / "scripts" / "build-web.sh")], check=True, capture_output=True, timeout=300)
    rounds = []
    for number in range(1, args.rounds + 1):
        result = _round(args.messages, args.interval)
        rounds.append(result)
        print(f"round {number}: {json.dumps(result)}", flush=True)
    keys = ("pageReadyMs", "signedInMs", "liveMs", "deliveryP50Ms", "deliveryP95Ms", "deliveryMaxMs")
    medians = {key: statistics.median(r[key] for r in rounds if r[key] is not None) for key in keys}
    print(json.dumps({"rounds": rounds, "median": medians, "delivered": sum(r["delivered"] for r in rounds),
                      "sent": sum(r["sent"] for r in rounds)}))  # fmt: skip


if __name__ == "__main__":
    main()
