"""The web page in a real browser: Debian's headless Chromium, driven by selenium through chromium-driver,
against the emulator's stack (users API on) with the page built by scripts/build-web.sh and uploaded by
``jitr fleet website``, as deploy.sh does. Screenshots of each step go to build/screenshots/."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from emulator.cloudformation.deploy import StackDeployer
from emulator.local import LocalIot
from tests.conftest import Jitr
from tests.e2e.conftest import TEMPLATE, running_emulator

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "build" / "web"
SHOTS = ROOT / "build" / "screenshots"
STACK, REGION = "web-e2e", "us-east-1"
CA_ID = "c" * 64
PASSWORD = "correct-horse-42-battery"
DEVICES = ("demo-box-1", "bobs-box", "demo-box-2")
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@dataclass
class Stack:
    emulator: LocalIot
    outputs: dict
    url: str  # the page: http://<bucket>.s3-website-<region>.localhost:<port>
    codes: dict[str, str]
    devices: Path  # enrolled devices' certificates and keys
    endpoint_ca: str

    def device_files(self, thing: str) -> tuple[Path, Path]:
        return self.devices / "certs" / f"{thing}.pem", self.devices / "private" / f"{thing}.key"


def build_site() -> None:
    done = subprocess.run(["bash", str(ROOT / "scripts" / "build-web.sh")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="package")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    build_site()
    with running_emulator(tmp / "state") as iot:
        session = boto3.Session(region_name=REGION)
        overrides = {"CaCertificateId": CA_ID, "ProvisioningApi": "true", "UsersApi": "true"}
        outputs = StackDeployer(session).deploy(TEMPLATE, STACK, overrides)["outputs"]
        jitr = Jitr()
        serials = [arg for thing in DEVICES for arg in ("--serial", thing)]
        admitted = jitr("fleet", "admit", "--stack", STACK, *serials, "--out", tmp / "tokens.json", "--json")
        assert admitted.exit_code == 0, admitted.output
        rows = json.loads(admitted.stdout)["devices"]
        for row in rows:
            enrolled = jitr("device", "enroll", "--api", outputs["ProvisioningApiUrl"], "--serial", row["serial"],
                            "--token", row["token"], "--out", tmp / "devices")  # fmt: skip
            assert enrolled.exit_code == 0, enrolled.output
        uploaded = jitr("fleet", "website", "--stack", STACK, "--site", SITE, "--json")
        assert uploaded.exit_code == 0, uploaded.output
        yield Stack(
            emulator=iot,
            outputs=outputs,
            url=json.loads(uploaded.stdout)["url"],
            codes={row["serial"]: row["bindingCode"] for row in rows},
            devices=tmp / "devices",
            endpoint_ca=iot.info()["endpoint_ca"],
        )


def chromium(stack: Stack, tmp: Path, *, width: int = 1280, height: int = 900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    info = stack.emulator.info()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces it may not have
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        f"--user-data-dir={tmp}",
        # the emulator's broker certificate, which its own CA signs, is trusted by its key: that one only
        f"--ignore-certificate-errors-spki-list={info['endpoint_spki_sha256']}",
        "--no-first-run",
        "--disable-background-networking",  # nothing but the page's own requests: no updates, no metrics
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


@pytest.fixture
def browser(stack, tmp_path):
    if not (shutil.which(CHROMIUM) and shutil.which(DRIVER)):
        pytest.fail("Chromium and chromium-driver are missing: 'make deps' installs them (Debian packages).")
    driver = chromium(stack, tmp_path / "profile")
    try:
        yield driver
    finally:
        keep_console(driver, "browser")
        driver.quit()


@pytest.fixture
def phone(stack, tmp_path):
    driver = chromium(stack, tmp_path / "profile", width=390, height=844)
    try:
        yield driver
    finally:
        keep_console(driver, "phone")
        driver.quit()


def screenshot(driver, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def keep_console(driver, name: str) -> None:
    """The page's console (errors a person would not see) beside the screenshots, for whoever reads a failure."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    lines = [f"{entry['level']} {entry['message']}" for entry in driver.get_log("browser")]
    (SHOTS / f"console-{name}.log").write_text("\n".join(lines) + "\n")


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
