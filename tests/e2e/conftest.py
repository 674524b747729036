"""The emulator in-process on free loopback ports, and helpers to drive it like a user would."""

from __future__ import annotations

import contextlib
import io
import json
import queue
import ssl
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import paho.mqtt.client as mqtt
import pytest

from base.certificates import certificate_id, load_certificates, to_pem
from emulator.cloudformation.deploy import StackDeployer
from emulator.lambdas.log_groups import parse_event_line
from emulator.local import LocalIot, Options

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "sam" / "template.yaml"
JITP_ROLE = "arn:aws:iam::123456789012:role/JITPRole"
RULE_ROLE = "arn:aws:iam::123456789012:role/RuleRole"
NOT_AUTHORIZED = 135  # CONNACK 5 "not authorized", which paho 2 reports as reason code 135 for MQTT 3.1.1 too


@contextlib.contextmanager
def running_emulator(state: Path, **options) -> Iterator[LocalIot]:
    """A LocalIot on free ports with the environment pointing boto3 and ``jitr`` at it; one at a time."""
    with (
        pytest.MonkeyPatch.context() as patch,
        LocalIot(Options(state_dir=state, lambda_retry_delays=(0.2, 0.4), **options)) as iot,
    ):
        for name, value in iot.environment().items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        yield iot


@pytest.fixture(scope="module")
def local_iot(tmp_path_factory):
    """One emulator per test module (moto's state is process-wide); reset before each test."""
    with running_emulator(tmp_path_factory.mktemp("local-iot")) as iot:
        yield iot


@pytest.fixture
def emulator(local_iot):
    local_iot.api.reset()
    local_iot.rules.logs.clear()  # what cloudwatchLogs actions wrote for earlier tests
    local_iot.lambdas.invocations.clear()  # and which functions ran
    for old_log in local_iot.lambdas.logs.log_dir.glob("aws_lambda_*.log"):  # and what they printed
        old_log.unlink()
    return local_iot


@pytest.fixture
def aws(emulator):
    return boto3.Session(region_name=emulator.info()["region"])


def deploy_stack(session, ca_certificate_id: str, stack: str = "jitr-test") -> dict:
    return StackDeployer(session).deploy(TEMPLATE, stack, {"CaCertificateId": ca_certificate_id})


# -- the CA and its devices, as an operator and a manufacturer make them ---------------------------


def register_ca(jitr, pki: Path, *args) -> str:
    """``jitr ca register`` (JITR unless ``--jitp`` is among ``args``); the caCertificateId."""
    result = jitr("ca", "register", "--dir", pki, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["caCertificateId"]


def mint(jitr, pki: Path, thing: str) -> tuple[Path, Path]:
    """``jitr device mint``: the chain file (certificate then CA) and the key of one device."""
    result = jitr("device", "mint", "--dir", pki, "--thing", thing)
    assert result.exit_code == 0, result.output
    return pki / "devices/certs" / f"{thing}.chain.pem", pki / "devices/private" / f"{thing}.key"


def certificate_id_of(chain: Path) -> str:
    """The AWS IoT certificateId of the first certificate in a PEM file."""
    return certificate_id(load_certificates(chain.read_bytes())[0])


def enroll(session, chain: Path, thing: str, policy: str) -> str:
    """What the activation Lambda does, done directly: register ACTIVE, create the thing, attach both."""
    leaf, ca = load_certificates(chain.read_bytes())[:2]
    iot = session.client("iot")
    arn = iot.register_certificate(
        certificatePem=to_pem(leaf).decode(), caCertificatePem=to_pem(ca).decode(), status="ACTIVE"
    )["certificateArn"]
    iot.create_thing(thingName=thing)
    iot.attach_policy(policyName=policy, target=arn)
    iot.attach_thing_principal(thingName=thing, principal=arn)
    return arn


# -- topic rules and what they log ---------------------------------------------------------------


def create_rule(session, name: str, sql: str, actions: list[dict], error_action: dict | None = None) -> str:
    """CreateTopicRule with SQL version 2016-03-23; the rule's ARN."""
    payload = {"sql": sql, "actions": actions, "awsIotSqlVersion": "2016-03-23", "ruleDisabled": False}
    if error_action is not None:
        payload["errorAction"] = error_action
    iot = session.client("iot")
    iot.create_topic_rule(ruleName=name, topicRulePayload=payload)
    return iot.get_topic_rule(ruleName=name)["ruleArn"]


def log_action(group: str) -> dict:
    return {"cloudwatchLogs": {"logGroupName": group, "roleArn": RULE_ROLE}}


def logged(emulator: LocalIot, group: str) -> list[dict]:
    """The JSON messages cloudwatchLogs actions wrote to ``group``, oldest first."""
    assert emulator.rules is not None, "the emulator is not running"
    return [json.loads(message) for name, message in list(emulator.rules.logs) if name == group]


def function_decisions(emulator: LocalIot) -> list[dict]:
    """The JSON lines the Lambda functions printed, from their log groups (``STATE/logs/aws_lambda_*.log``)."""
    decisions = []
    logs = emulator.lambdas.logs if emulator.lambdas is not None else None
    assert logs is not None, "the emulator is not running, or its functions print to stdout"
    for path in sorted(logs.log_dir.glob("aws_lambda_*.log")):
        for line in path.read_text().splitlines():
            message = parse_event_line(line)[1]
            if message.startswith("{") and '"decision"' in message:
                decisions.append(json.loads(message))
    return decisions


class Device:
    """A paho client with a device chain: one connect attempt at a time, so tests see each outcome."""

    def __init__(self, emulator: LocalIot, chain: Path, key: Path, client_id: str, host: str | None = None) -> None:
        self.info = emulator.info()
        self.client_id = client_id
        self.chain, self.key = chain, key
        self.host = host or self.info["mqtt_host"]  # an IP address (127.0.0.1) sends no SNI

    def connect_once(self, timeout: float = 10.0):
        """``(rc, client)``: rc is the CONNACK reason code, or None when the server dropped us."""
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311)
        context = ssl.create_default_context(cafile=self.info["endpoint_ca"])
        context.load_cert_chain(self.chain, self.key)
        client.tls_set_context(context)
        client.reconnect_delay_set(60, 60)  # a connection the server closes later stays closed
        outcome: dict = {}
        done = threading.Event()

        def on_connect(_client, _userdata, _flags, rc, _props) -> None:
            outcome.setdefault("rc", rc.value)
            done.set()

        client.on_connect = on_connect
        client.on_disconnect = lambda c, u, flags, rc, props: done.set()
        try:
            client.connect(self.host, self.info["mqtt_port"], keepalive=30)
        except OSError:
            return None, None
        deadline = time.monotonic() + timeout
        while not done.is_set() and time.monotonic() < deadline:  # the network loop in this thread, until
            if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:  # the CONNACK or the dropped connection:
                break  # no background thread that would wait to reconnect a refused client
        if outcome.get("rc") != 0:
            client.disconnect()
            return outcome.get("rc"), None
        client.loop_start()
        return 0, client

    def connect_until_accepted(self, attempts: int = 40, delay: float = 0.25):
        history = []
        for _ in range(attempts):
            rc, client = self.connect_once()
            history.append(rc)
            if client is not None:
                return client, history
            time.sleep(delay)
        raise AssertionError(f"never accepted: {history}")

    def session(self) -> Session:
        """Connect until accepted; the connection with its callbacks in queues."""
        client, _ = self.connect_until_accepted()
        return Session(client)


class Session:
    """An accepted paho connection whose messages, SUBACKs and disconnection land where a test can wait."""

    def __init__(self, client) -> None:
        self.client = client
        self.messages: queue.Queue = queue.Queue()
        self.subacks: queue.Queue = queue.Queue()
        self.disconnected = threading.Event()
        client.on_message = lambda _c, _u, msg: self.messages.put((msg.topic, json.loads(msg.payload)))
        client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subacks.put([code.value for code in codes])
        client.on_disconnect = lambda *_args: self.disconnected.set()

    def subscribe(self, *filters: str, timeout: float = 10.0) -> list[int]:
        """SUBSCRIBE at QoS 1; the SUBACK's codes (1 granted, 0x80 refused) in the order asked."""
        self.client.subscribe([(topic_filter, 1) for topic_filter in filters])
        return self.subacks.get(timeout=timeout)

    def publish(self, topic: str, payload: dict) -> None:
        publish(self.client, topic, payload)

    def send(self, topic: str, payload: dict):
        """Publish without waiting for the PUBACK, for a publish the server answers by disconnecting; paho's info."""
        return self.client.publish(topic, json.dumps(payload), qos=1)

    def received(self, timeout: float = 10.0) -> tuple[str, dict]:
        return self.messages.get(timeout=timeout)

    def received_nothing(self, seconds: float = 0.5) -> bool:
        try:
            self.messages.get(timeout=seconds)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        """Disconnect; a connection the server already closed just lets its network thread end."""
        self.client.disconnect()
        if not self.disconnected.is_set():
            self.client.loop_stop()


class EnrolledDevice:
    """A device's own MQTT/TLS connection with its certificate (the emulator's ``info`` says where): it publishes
    telemetry under ``topic_root``, and with ``listen`` subscribes to its commands, which land in ``heard``."""

    def __init__(self, info: dict, cert: Path, key: Path, thing: str, topic_root: str, *, listen: bool = False) -> None:
        self.thing, self.root = thing, f"{topic_root}/{thing}"
        self.heard: list[tuple[str, str]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=thing, protocol=mqtt.MQTTv311)
        self.client.tls_set(ca_certs=info["endpoint_ca"], certfile=str(cert), keyfile=str(key))
        self.client.on_message = lambda _c, _u, m: self.heard.append((m.topic, m.payload.decode()))
        self.client.connect(info["mqtt_host"], info["mqtt_port"], 30)
        self.client.loop_start()
        if listen:
            result, _ = self.client.subscribe(f"{self.root}/commands/#", qos=1)
            assert result == mqtt.MQTT_ERR_SUCCESS

    def publish(self, payload: dict) -> None:
        publish(self.client, f"{self.root}/telemetry", payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(client, topic: str, payload: dict, timeout: float = 10.0) -> None:
    info = client.publish(topic, json.dumps(payload), qos=1)
    info.wait_for_publish(timeout)
    assert info.is_published()


def curl_json(url: str, *args: str) -> tuple[int, dict]:
    """The status and JSON body of one curl request (an empty body is {})."""
    done = subprocess.run(
        ["curl", "-s", "--max-time", "20", "-w", "\n%{http_code}", *args, url],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body) if body else {}


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


# -- Lambda functions -----------------------------------------------------------------------------


ECHO = "def lambda_handler(event, context):\n    return event\n"


def create_function(session, name: str, code: str = ECHO, **options) -> str:
    """A Python Lambda function whose app.py is ``code`` (by default it returns its event); its ARN.
    ``options`` go to CreateFunction as they are (``Timeout``, ``Environment``, ``MemorySize``...)."""
    role = session.client("iam").create_role(
        RoleName=f"{name}-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as files:
        files.writestr("app.py", code)
    return session.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="app.lambda_handler",
        Code={"ZipFile": archive.getvalue()},
        **options,
    )["FunctionArn"]
