"""The provisioning API in the emulator, tried as a factory and a device would: serials admitted with
``jitr fleet admit``, a key and CSR made with openssl, the request sent with curl, the certificate used by
mosquitto_pub, the message archived; ``jitr device enroll``; a second region chosen by GET /config; and
``jitr fleet reset`` taking it all away."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3
import pytest

from emulator.cloudformation.deploy import StackDeployer
from tests.e2e.conftest import TEMPLATE, running_emulator, wait_for
from tests.e2e.conftest import curl_json as curl

pytestmark = pytest.mark.timeout(180)
STACK = "prov-e2e"
CA_ID = "a" * 64  # the stack's JITR half needs a CA id; the API needs none
US, EU = "us-east-1", "eu-central-1"
NOT_A_REQUEST = "-----BEGIN CERTIFICATE REQUEST-----\\nAAAA\\n-----END CERTIFICATE REQUEST-----"


@pytest.fixture(scope="module")
def two_regions(tmp_path_factory):
    with running_emulator(tmp_path_factory.mktemp("provisioning"), region=US, more_regions=(EU,)) as iot:
        yield iot


@pytest.fixture
def emulator(two_regions):
    two_regions.api.reset()
    return two_regions


def deploy(region: str = US, **parameters: str) -> dict:
    overrides = {"CaCertificateId": CA_ID, "ProvisioningApi": "true", **parameters}
    return StackDeployer(boto3.Session(region_name=region)).deploy(TEMPLATE, STACK, overrides)["outputs"]


def admit(jitr, *serials: str, region: str = US, tmp: Path) -> dict[str, str]:
    args = [a for s in serials for a in ("--serial", s)]
    result = jitr("fleet", "admit", "--stack", STACK, *args, "--out", tmp / f"tokens-{region}.json", "--json",
                  env={"AWS_REGION": region, "AWS_DEFAULT_REGION": region})  # fmt: skip
    assert result.exit_code == 0, result.output
    return {d["serial"]: d["token"] for d in json.loads(result.stdout)["devices"]}


def openssl_csr(folder: Path, serial: str) -> tuple[Path, str]:
    key, csr = folder / f"{serial}.key", folder / f"{serial}.csr"
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-subj", f"/CN={serial}", "-out", str(csr)],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    return key, csr.read_text()


def test_a_device_with_a_serial_and_a_token_enrolls_with_curl_and_publishes_with_mosquitto(emulator, jitr, tmp_path):
    outputs = deploy()
    api = outputs["ProvisioningApiUrl"]
    token = admit(jitr, "sensor-1", tmp=tmp_path)["sensor-1"]
    key, csr = openssl_csr(tmp_path, "sensor-1")
    request = json.dumps({"token": token, "csr": csr})
    status, body = curl(f"{api}/devices/sensor-1/certificate", "-X", "POST", "-H", "content-type: application/json",
                        "-d", request)  # fmt: skip
    assert status == 201, body
    cert = tmp_path / "sensor-1.pem"
    cert.write_text(body["certificatePem"])
    host, port = body["iotEndpoint"].rsplit(":", 1)
    topic = f"{body['topicRoot']}/sensor-1/telemetry"
    subprocess.run(
        ["mosquitto_pub", "-h", host, "-p", port, "--cafile", emulator.info()["endpoint_ca"], "--cert", str(cert),
         "--key", str(key), "-i", "sensor-1", "-q", "1", "-t", topic, "-m", '{"temperature": 21}'],
        check=True, timeout=30, capture_output=True,
    )  # fmt: skip
    s3 = boto3.client("s3", region_name=US)
    keys = wait_for(lambda: s3.list_objects_v2(Bucket=outputs["ArchiveBucketName"]).get("Contents"))
    assert keys[0]["Key"].startswith(f"{topic}/")
    # the same request again: one certificate per serial
    assert curl(f"{api}/devices/sensor-1/certificate", "-X", "POST", "-d", request)[0] == 409


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ('{"token": "wrong-token-000000000000", "csr": CSR}', 403),  # a wrong token
        ("{broken", 400),  # not JSON
        ('{"token": "TOKEN"}', 400),  # no CSR
        # a PEM request whose contents are no certificate request
        ('{"token": "TOKEN", "csr": "' + NOT_A_REQUEST + '"}', 400),
    ],
)
def test_curl_gets_a_json_sentence_for_each_refusal(emulator, jitr, tmp_path, body, status):
    api = deploy()["ProvisioningApiUrl"]
    token = admit(jitr, "sensor-2", tmp=tmp_path)["sensor-2"]
    csr = json.dumps(openssl_csr(tmp_path, "sensor-2")[1])
    answer = curl(
        f"{api}/devices/sensor-2/certificate", "-X", "POST", "-d", body.replace("TOKEN", token).replace("CSR", csr)
    )
    assert answer[0] == status and answer[1]["message"]
    assert boto3.client("iot", region_name=US).list_certificates()["certificates"] == []


def test_jitr_device_enroll_then_connect_and_reset_removes_what_the_api_made(emulator, jitr, tmp_path):
    api = deploy()["ProvisioningApiUrl"]
    token = admit(jitr, "sensor-3", tmp=tmp_path)["sensor-3"]
    out = tmp_path / "device"
    enrolled = jitr("device", "enroll", "--api", api, "--serial", "sensor-3", "--token", token, "--out", out, "--json")
    assert enrolled.exit_code == 0, enrolled.output
    line = json.loads(enrolled.stdout)["connect"].split()
    assert line[:3] == ["jitr", "device", "connect"]
    connected = jitr(*line[1:], "--root-ca", emulator.info()["endpoint_ca"], "--json")
    assert connected.exit_code == 0, connected.output
    again = jitr("device", "enroll", "--api", api, "--serial", "sensor-3", "--token", token, "--out", tmp_path / "x")
    assert again.exit_code == 18 and "already registered" in again.output
    reset = jitr("fleet", "reset", "--stack", STACK, "--yes", "--json")
    assert reset.exit_code == 0, reset.output
    assert json.loads(reset.stdout)["provisioningApi"]["thingsDeleted"] == ["sensor-3"]
    iot = boto3.client("iot", region_name=US)
    assert iot.list_certificates()["certificates"] == [] and iot.list_things()["things"] == []


def test_the_region_map_sends_a_device_to_the_other_regions_api_and_endpoint(emulator, jitr, tmp_path):
    eu_outputs = deploy(EU)
    eu_endpoint = boto3.client("iot", region_name=EU).describe_endpoint(endpointType="iot:Data-ATS")
    eu_port = eu_endpoint["ResponseMetadata"]["HTTPHeaders"]["x-jitr-mqtt-port"]
    region_map = {
        "countries": {"DE": EU},
        "regions": {
            EU: {
                "iotEndpoint": f"{eu_endpoint['endpointAddress']}:{eu_port}",
                "provisioningUrl": eu_outputs["ProvisioningApiUrl"],
            }
        },
    }
    us_api = deploy(US, RegionMap=json.dumps(region_map))["ProvisioningApiUrl"]
    assert curl(f"{us_api}/config?country=US")[1]["region"] == US
    token = admit(jitr, "box-de", region=EU, tmp=tmp_path)["box-de"]
    out = tmp_path / "device"
    enrolled = jitr("device", "enroll", "--config-url", us_api, "--country", "de", "--serial", "box-de",
                    "--token", token, "--out", out, "--json")  # fmt: skip
    assert enrolled.exit_code == 0, enrolled.output
    answer = json.loads(enrolled.stdout)
    assert (answer["configRegion"], answer["region"]) == (EU, EU)
    assert answer["iotEndpoint"].endswith(f":{eu_port}")
    line = answer["connect"].split()
    assert jitr(*line[1:], "--root-ca", emulator.info()["endpoint_ca"], "--json").exit_code == 0
    assert boto3.client("iot", region_name=US).list_things()["things"] == []  # registered in EU only


def test_simulate_enrolls_an_admitted_batch_then_connects_it(emulator, jitr, tmp_path):
    api = deploy()["ProvisioningApiUrl"]
    tokens = tmp_path / "batch-tokens.json"
    admitted = jitr("fleet", "admit", "--stack", STACK, "--count", "12", "--prefix", "batch-", "--out", tokens)
    assert admitted.exit_code == 0, admitted.output
    info = emulator.info()
    result = jitr(
        "device", "simulate", "--enroll", tokens, "--api", api, "--out", tmp_path / "batch",
        "--endpoint", f"{info['mqtt_host']}:{info['mqtt_port']}", "--root-ca", info["endpoint_ca"],
        "--topic-root", f"devices/{STACK}", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["succeeded"] == 12
    assert len((tmp_path / "batch" / "manifest.jsonl").read_text().splitlines()) == 12


def test_simulate_refuses_a_file_that_is_not_a_tokens_file(emulator, jitr, tmp_path):
    bogus = tmp_path / "tokens.json"
    bogus.write_text('{"serials": []}')
    result = jitr("device", "simulate", "--enroll", bogus, "--api", "http://127.0.0.1:9/x", "--out", tmp_path / "o",
                  "--endpoint", "localhost:8883")  # fmt: skip
    assert result.exit_code == 2 and "not a tokens file" in result.output
