"""Several regions at once, as a regional deployment needs them: each region has its own MQTT endpoint,
functions and API Gateway; the same stack deployed into two regions onboards each region's devices
there, and a device is refused by the other region's broker, as on AWS."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from emulator.cloudformation.deploy import StackDeployer, StackError
from emulator.local import for_region
from tests.e2e.conftest import (
    NOT_AUTHORIZED,
    TEMPLATE,
    Device,
    function_decisions,
    mint,
    publish,
    register_ca,
    running_emulator,
    wait_for,
)
from tests.e2e.test_local_up import jitr as run_jitr
from tests.e2e.test_local_up import start, stop

pytestmark = pytest.mark.timeout(120)
US, EU = "us-east-1", "eu-central-1"


class InRegion:
    """The emulator as a device configured for one region sees it (that region's broker)."""

    def __init__(self, iot, region: str) -> None:
        self.iot, self.region = iot, region

    def info(self) -> dict:
        return for_region(self.iot.info(), self.region)


@pytest.fixture(scope="module")
def two_regions(tmp_path_factory):
    with running_emulator(tmp_path_factory.mktemp("regions"), region=US, more_regions=(EU,)) as iot:
        yield iot


@pytest.fixture
def regions(two_regions):
    two_regions.api.reset()
    return two_regions


def _mqtt_port(session) -> int:
    answer = session.client("iot").describe_endpoint(endpointType="iot:Data-ATS")
    return int(answer["ResponseMetadata"]["HTTPHeaders"]["x-jitr-mqtt-port"])


def test_each_region_has_its_own_mqtt_endpoint_and_describe_endpoint_answers_the_regions_own(regions):
    info = regions.info()
    us, eu = info["regions"][US], info["regions"][EU]
    assert us["mqtt_port"] != eu["mqtt_port"] and us["apigateway_url"] != eu["apigateway_url"]
    assert (info["region"], info["mqtt_port"]) == (US, us["mqtt_port"])  # the first region at the top level
    assert _mqtt_port(boto3.Session(region_name=US)) == us["mqtt_port"]
    assert _mqtt_port(boto3.Session(region_name=EU)) == eu["mqtt_port"]
    assert _mqtt_port(boto3.Session(region_name="ap-south-1")) == us["mqtt_port"]  # not served: the first's


def test_the_same_stack_in_two_regions_onboards_each_regions_devices_in_that_region_only(
    regions, jitr, tmp_path, monkeypatch
):
    eu = boto3.Session(region_name=EU)
    monkeypatch.setenv("AWS_REGION", EU)
    monkeypatch.setenv("AWS_DEFAULT_REGION", EU)
    pki = tmp_path / "pki"
    assert jitr("ca", "init", "--dir", pki, "--country", "DE", "--intermediate").exit_code == 0
    ca_id = register_ca(jitr, pki)  # in eu-central-1, from a shell set to it
    StackDeployer(boto3.Session(region_name=US)).deploy(TEMPLATE, "jitr-test", {"CaCertificateId": ca_id})
    stack = StackDeployer(eu).deploy(TEMPLATE, "jitr-test", {"CaCertificateId": ca_id})
    chain, key = mint(jitr, pki, "fra-1")

    rc, client = Device(InRegion(regions, US), chain, key, "fra-1").connect_once()
    assert (rc, client) == (NOT_AUTHORIZED, None)  # the us-east-1 endpoint does not know an eu-central-1 CA
    device = Device(InRegion(regions, EU), chain, key, "fra-1")
    assert device.connect_once() == (None, None)  # JITR in eu-central-1: dropped, the eu function activates
    client, _ = device.connect_until_accepted()
    publish(client, "devices/jitr-test/fra-1/telemetry", {"n": 1})
    client.disconnect()

    bucket = stack["outputs"]["ArchiveBucketName"]
    keys = wait_for(lambda: [o["Key"] for o in eu.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])])
    assert keys[0].startswith("devices/jitr-test/fra-1/telemetry/")
    assert regions.api.registry(region=EU).thing("fra-1") is not None
    assert regions.api.registry(region=US).thing("fra-1") is None
    eu_logs = Path(regions.info()["regions"][EU]["logs"])
    assert list(eu_logs.glob("aws_lambda_*.log"))  # the eu function ran and logged in eu's log groups
    assert not function_decisions(regions)  # and the us-east-1 one never ran


def test_a_stack_for_a_region_not_served_is_refused_before_anything_is_made(regions):
    tokyo = boto3.Session(region_name="ap-northeast-1")

    with pytest.raises(StackError, match=f"serves {US}, {EU}, not ap-northeast-1.*Nothing was created"):
        StackDeployer(tokyo).deploy(TEMPLATE, "jitr-test", {"CaCertificateId": "a" * 64})

    assert tokyo.client("lambda").list_functions()["Functions"] == []
    assert tokyo.client("iot").list_topic_rules()["rules"] == []


def test_invoke_and_http_publish_in_a_region_not_served_answer_that_it_is_not(regions):
    tokyo = boto3.Session(region_name="ap-northeast-1")
    once = Config(retries={"total_max_attempts": 1})  # the answer is what is tested, not botocore's retries of it
    lambdas = tokyo.client("lambda", config=once)
    with pytest.raises(lambdas.exceptions.ServiceException, match="start it with --region"):
        lambdas.invoke(FunctionName="anything", Payload=b"{}")
    with pytest.raises(Exception, match="serves us-east-1, eu-central-1, not ap-northeast-1"):
        tokyo.client("iot-data", config=once).publish(topic="t/1", payload=b"{}")


def test_local_env_exports_the_region_asked_for_and_refuses_one_not_served(tmp_path):
    state = tmp_path / "state"
    process = start(state, "--region", US, "--region", EU)
    try:
        info = json.loads((state / "endpoint.json").read_text())
        exported = run_jitr("local", "env", "--state-dir", state, "--region", EU)
        refused = run_jitr("local", "env", "--state-dir", state, "--region", "ap-south-1")
    finally:
        banner, _ = stop(process)
    exports = dict(line.removeprefix("export ").split("=", 1) for line in exported.stdout.splitlines())
    assert exports["AWS_REGION"] == EU and exports["AWS_DEFAULT_REGION"] == EU
    assert exports["JITR_MQTT_ENDPOINT"] == f"localhost:{info['regions'][EU]['mqtt_port']}"
    assert exports["AWS_ENDPOINT_URL"] == info["aws_endpoint_url"]  # one API endpoint for every region
    assert refused.returncode == 2 and "serves us-east-1, eu-central-1, not ap-south-1" in refused.stderr
    assert f"  {EU}:\n    MQTT/TLS:    localhost:{info['regions'][EU]['mqtt_port']}" in banner
