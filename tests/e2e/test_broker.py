"""The emulator's MQTT/TLS endpoint, driven by paho-mqtt and mosquitto clients over loopback."""

from __future__ import annotations

import datetime as dt
import queue
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from base.keys import KeyType, generate_key, private_key_pem
from ca.issue import Issuer, issue_root, make_name
from emulator.mqtt.broker import Broker, BrokerHooks, ConnectDecision, DisconnectReason, SessionInfo

pytestmark = pytest.mark.timeout(60)
WAIT = 5.0


@dataclass(frozen=True)
class DeviceFiles:
    ca_der: bytes
    cert_der: bytes
    cert: Path  # the device certificate alone
    chain: Path  # device certificate + CA certificate
    key: Path


def mint_device(folder: Path, thing_name: str) -> DeviceFiles:
    """A throwaway CA the broker has never seen, and one device certificate it signed."""
    now = dt.datetime.now(dt.UTC)
    ca_key = generate_key(KeyType.EC_P256)
    issuer = Issuer(issue_root(ca_key, make_name(f"Test CA {thing_name}"), now=now, days=2), ca_key)
    key = generate_key(KeyType.EC_P256)
    cert = issuer.issue_device(key.public_key(), thing_name, country="DE", now=now, days=1)
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / f"{thing_name}.pem", folder / f"{thing_name}-chain.pem", folder / f"{thing_name}.key"
    paths[0].write_bytes(cert.public_bytes(Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(Encoding.PEM) + issuer.certificate.public_bytes(Encoding.PEM))
    paths[2].write_bytes(private_key_pem(key))
    return DeviceFiles(
        issuer.certificate.public_bytes(Encoding.DER), cert.public_bytes(Encoding.DER), paths[0], paths[1], paths[2]
    )


class Device:
    """A paho-mqtt 2.x client whose callbacks land in queues the test can wait on."""

    def __init__(self, broker: Broker, files: DeviceFiles, client_id: str, *, chain: bool = True) -> None:
        self.broker = broker
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.tls_set(
            ca_certs=str(broker.ca_file), certfile=str(files.chain if chain else files.cert), keyfile=str(files.key)
        )
        self.client.reconnect_delay_set(60, 60)  # a dropped connection stays dropped during the test
        self.connacks: queue.Queue = queue.Queue()
        self.subacks: queue.Queue = queue.Queue()
        self.messages: queue.Queue = queue.Queue()
        self.disconnected = threading.Event()
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connacks.put(rc)
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subacks.put(codes)
        self.client.on_message = lambda _c, _u, msg: self.messages.put((msg.topic, msg.payload, msg.qos))
        self.client.on_disconnect = lambda *_args: self.disconnected.set()

    def connect(self, host: str = "localhost") -> Device:
        port = self.broker.port
        assert port is not None, "the broker is not running"
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        return self

    def connected(self, host: str = "localhost") -> Device:
        self.connect(host)
        code = self.connacks.get(timeout=WAIT)
        assert not code.is_failure, code
        return self

    def subscribe(self, *filters: str, qos: int = 1) -> list:
        self.client.subscribe([(f, qos) for f in filters])
        return self.subacks.get(timeout=WAIT)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def device_files(tmp_path: Path) -> DeviceFiles:
    return mint_device(tmp_path / "devices", "thing-1")


@pytest.fixture
def start_broker(tmp_path: Path):
    brokers: list[Broker] = []
    devices: list[Device] = []

    class Start:
        """Starts a broker with the given hooks; ``devices`` are closed at the end of the test."""

        def __init__(self) -> None:
            self.devices = devices

        def __call__(self, **hooks) -> Broker:
            broker = Broker(BrokerHooks(**hooks), state_dir=tmp_path / "state")
            broker.start()
            brokers.append(broker)
            return broker

    yield Start()
    for device in devices:
        device.close()
    for broker in brokers:
        broker.stop()


def device(start_broker, broker: Broker, files: DeviceFiles, client_id: str, **kwargs) -> Device:
    made = Device(broker, files, client_id, **kwargs)
    start_broker.devices.append(made)
    return made


def wait_until(predicate, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def nothing_in(messages: queue.Queue, seconds: float = 0.5) -> bool:
    try:
        messages.get(timeout=seconds)
    except queue.Empty:
        return True
    return False


# --- TLS and connect ------------------------------------------------------------------------


def test_endpoint_ca_is_written_and_server_certificate_names_localhost_and_loopback(start_broker, tmp_path):
    broker = start_broker()
    assert broker.ca_file == tmp_path / "state" / "endpoint-ca.pem"
    ca = x509.load_pem_x509_certificate(broker.ca_file.read_bytes())
    context = ssl.create_default_context(cafile=str(broker.ca_file))
    with context.wrap_socket(
        socket.create_connection(("127.0.0.1", broker.port), WAIT), server_hostname="localhost"
    ) as sock:
        server = x509.load_der_x509_certificate(sock.getpeercert(binary_form=True))
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert server.issuer == ca.subject


def test_connect_hook_sees_client_id_certificate_chain_and_sni(start_broker, device_files):
    seen: list[SessionInfo] = []
    broker = start_broker(on_connect=lambda info: seen.append(info) or ConnectDecision.ACCEPT)
    device(start_broker, broker, device_files, "thing-1").connected()
    (info,) = seen
    assert info.client_id == "thing-1"
    assert info.certificate == device_files.cert_der
    assert info.certificate_chain == (device_files.cert_der, device_files.ca_der)
    assert info.sni == "localhost"
    assert info.remote_address[0] == "127.0.0.1"
    assert broker.connected_clients() == ["thing-1"]


def test_a_client_sending_only_its_certificate_gives_a_chain_of_one_and_no_sni_for_an_ip(start_broker, device_files):
    seen: list[SessionInfo] = []
    broker = start_broker(on_connect=lambda info: seen.append(info) or ConnectDecision.ACCEPT)
    device(start_broker, broker, device_files, "thing-1", chain=False).connected(host="127.0.0.1")
    assert seen[0].certificate_chain == (device_files.cert_der,)
    assert seen[0].sni is None  # clients send no SNI for an IP address


def raw_connect(broker: Broker, files: DeviceFiles, client_id: str, *, keepalive: int = 30, sni: str = "localhost"):
    """A bare TLS socket that sends one MQTT 3.1.1 CONNECT: for what paho cannot do (custom SNI, no PINGREQ)."""
    context = ssl.create_default_context(cafile=str(broker.ca_file))
    context.check_hostname = False  # an AWS endpoint name is not in the local server certificate
    context.load_cert_chain(files.chain, files.key)
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", broker.port), WAIT), server_hostname=sni)
    sock.settimeout(WAIT)
    body = (
        b"\x00\x04MQTT\x04\x02" + keepalive.to_bytes(2, "big") + len(client_id).to_bytes(2, "big") + client_id.encode()
    )
    sock.sendall(bytes([0x10, len(body)]) + body)
    return sock


def test_the_sni_a_device_sends_for_its_aws_endpoint_reaches_the_hook(start_broker, device_files):
    seen: list[SessionInfo] = []
    broker = start_broker(on_connect=lambda info: seen.append(info) or ConnectDecision.ACCEPT)
    endpoint = "abc123example-ats.iot.eu-west-1.amazonaws.com"
    with raw_connect(broker, device_files, "sni1", sni=endpoint) as sock:
        assert sock.recv(4) == b"\x20\x02\x00\x00"  # CONNACK accepted
    assert seen[0].sni == endpoint and seen[0].client_id == "sni1"


def test_a_client_silent_for_one_and_a_half_keep_alives_is_disconnected(start_broker, device_files):
    gone: list[SessionInfo] = []
    broker = start_broker(on_disconnect=gone.append)
    with raw_connect(broker, device_files, "quiet", keepalive=1) as sock:
        assert sock.recv(4) == b"\x20\x02\x00\x00"
        started = time.monotonic()
        assert sock.recv(4) == b""  # no PINGREQ from us: the broker closes after ceil(1.5 x 1) s
        assert 1.5 <= time.monotonic() - started < WAIT
    assert wait_until(lambda: gone) and gone[0].disconnect_reason == DisconnectReason.MQTT_KEEP_ALIVE_TIMEOUT


def test_a_slow_connect_hook_does_not_hold_up_other_clients(start_broker, device_files):
    def decide(info):
        if info.client_id == "slow":
            time.sleep(2)
        return ConnectDecision.ACCEPT

    broker = start_broker(on_connect=decide)
    slow = device(start_broker, broker, device_files, "slow").connect()
    started = time.monotonic()
    device(start_broker, broker, device_files, "quick").connected()
    assert time.monotonic() - started < 1.5
    assert slow.connacks.get(timeout=WAIT) == "Success"


def test_refuse_answers_connack_not_authorized(start_broker, device_files):
    broker = start_broker(on_connect=lambda info: ConnectDecision.REFUSE)
    client = device(start_broker, broker, device_files, "thing-1").connect()
    code = client.connacks.get(timeout=WAIT)
    assert code.is_failure and code == "Not authorized"
    assert client.disconnected.wait(WAIT)
    assert broker.connected_clients() == []


def test_drop_closes_the_connection_without_connack(start_broker, device_files):
    calls = []
    broker = start_broker(on_connect=lambda info: calls.append(info.client_id) or ConnectDecision.DROP)
    client = device(start_broker, broker, device_files, "thing-1").connect()
    assert client.disconnected.wait(WAIT)
    assert client.connacks.empty()
    assert calls == ["thing-1"]


def test_an_mqtt5_client_is_told_the_protocol_version_is_unsupported(start_broker, device_files):
    calls = []
    broker = start_broker(on_connect=lambda info: calls.append(info) or ConnectDecision.ACCEPT)
    client = Device(broker, device_files, "v5")
    client.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="v5", protocol=mqtt.MQTTv5)
    client.client.tls_set(ca_certs=str(broker.ca_file), certfile=str(device_files.chain), keyfile=str(device_files.key))
    client.client.on_connect = lambda _c, _u, _f, rc, _p: client.connacks.put(rc)
    start_broker.devices.append(client)
    client.connect()
    assert client.connacks.get(timeout=WAIT) == "Unsupported protocol version"  # amqtt serves MQTT 3.1.1 only
    assert calls == []


def test_a_failing_connect_hook_refuses_the_client(start_broker, device_files):
    def broken(info):
        raise RuntimeError("registry down")

    broker = start_broker(on_connect=broken)
    client = device(start_broker, broker, device_files, "thing-1").connect()
    assert client.connacks.get(timeout=WAIT) == "Not authorized"


def test_an_async_connect_hook_is_awaited(start_broker, device_files):
    async def decide(info):
        return ConnectDecision.ACCEPT if info.certificate else ConnectDecision.REFUSE

    broker = start_broker(on_connect=decide)
    device(start_broker, broker, device_files, "thing-1").connected()


def test_a_second_connection_with_the_same_client_id_takes_over(start_broker, device_files):
    gone: list[SessionInfo] = []
    broker = start_broker(on_disconnect=gone.append)
    first = device(start_broker, broker, device_files, "thing-1").connected()
    device(start_broker, broker, device_files, "thing-1").connected()
    assert first.disconnected.wait(WAIT)
    assert wait_until(lambda: gone) and gone[0].disconnect_reason == DisconnectReason.DUPLICATE_CLIENTID
    assert broker.connected_clients() == ["thing-1"]


def test_a_persistent_session_survives_a_takeover_and_gets_what_was_published_while_offline(start_broker, device_files):
    gone: list[SessionInfo] = []
    broker = start_broker(on_disconnect=gone.append)

    def persistent() -> Device:
        made = device(start_broker, broker, device_files, "keeper")
        made.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="keeper", clean_session=False)
        made.client.tls_set(
            ca_certs=str(broker.ca_file), certfile=str(device_files.chain), keyfile=str(device_files.key)
        )
        made.client.reconnect_delay_set(60, 60)
        made.client.on_connect = lambda _c, _u, flags, rc, _p: made.connacks.put((rc, flags.session_present))
        made.client.on_subscribe = lambda _c, _u, _mid, codes, _p: made.subacks.put(codes)
        made.client.on_message = lambda _c, _u, msg: made.messages.put((msg.topic, msg.payload, msg.qos))
        made.client.on_disconnect = lambda *_args: made.disconnected.set()
        made.connect()
        return made

    first = persistent()
    assert first.connacks.get(timeout=WAIT)[0] == "Success"
    first.subscribe("keep/#", qos=1)
    second = persistent()
    assert second.connacks.get(timeout=WAIT) == ("Success", True)  # the session, subscriptions and all, carried on
    assert first.disconnected.wait(WAIT)
    assert wait_until(lambda: gone) and gone[0].disconnect_reason == DisconnectReason.DUPLICATE_CLIENTID
    time.sleep(0.2)
    assert broker.connected_clients() == ["keeper"]
    second.close()
    assert wait_until(lambda: broker.connected_clients() == [])
    broker.publish("keep/1", b"while you were away", qos=1)
    third = persistent()
    assert third.connacks.get(timeout=WAIT) == ("Success", True)
    assert third.messages.get(timeout=WAIT)[:2] == ("keep/1", b"while you were away")


# --- publish, subscribe, receive ------------------------------------------------------------


def test_publish_subscribe_round_trip_reaches_subscribers_and_on_message(start_broker, device_files):
    rules: list = []
    events: list = []
    broker = start_broker(
        on_message=lambda info, topic, payload: rules.append((info.client_id, topic, payload)),
        on_connected=lambda info: events.append(("connected", info.client_id)),
        on_disconnect=lambda info: events.append(("disconnected", info.client_id, info.disconnect_reason)),
    )
    sub = device(start_broker, broker, device_files, "sub").connected()
    assert [code.value for code in sub.subscribe("telemetry/+")] == [1]
    pub = device(start_broker, broker, device_files, "pub").connected()
    pub.publish("telemetry/pub", b'{"t": 21}', qos=1)
    assert sub.messages.get(timeout=WAIT) == ("telemetry/pub", b'{"t": 21}', 1)
    pub.publish("telemetry/pub", b"q0", qos=0)
    assert sub.messages.get(timeout=WAIT) == ("telemetry/pub", b"q0", 0)  # min(message, subscription) QoS
    assert wait_until(lambda: len(rules) == 2) and rules[0] == ("pub", "telemetry/pub", b'{"t": 21}')
    pub.close()
    assert wait_until(lambda: ("disconnected", "pub", DisconnectReason.CLIENT_INITIATED_DISCONNECT) in events)
    assert events.index(("connected", "pub")) < events.index(("disconnected", "pub", "CLIENT_INITIATED_DISCONNECT"))


def test_a_denied_publish_reaches_no_one_and_disconnects_the_publisher(start_broker, device_files):
    rules: list = []
    gone: list[SessionInfo] = []
    broker = start_broker(
        on_publish=lambda info, topic, payload, qos, retain: not topic.startswith("secret/"),
        on_message=lambda info, topic, payload: rules.append(topic),
        on_disconnect=gone.append,
    )
    sub = device(start_broker, broker, device_files, "sub").connected()
    sub.subscribe("secret/#", "open/#")
    bad = device(start_broker, broker, device_files, "bad").connected()
    bad.publish("secret/plans", b"x")
    assert bad.disconnected.wait(WAIT)
    assert wait_until(lambda: gone) and gone[0].disconnect_reason == DisconnectReason.AUTHORIZATION_ERROR
    good = device(start_broker, broker, device_files, "good").connected()
    good.publish("open/news", b"y")
    assert sub.messages.get(timeout=WAIT)[0] == "open/news"  # the denied message never came first
    assert nothing_in(sub.messages)
    assert rules == ["open/news"]


@pytest.mark.parametrize(
    ("topic", "qos"),
    [
        ("$aws/events/presence/connected/x", 1),  # AWS IoT publishes lifecycle events; clients may not
        ("$SYS/broker", 0),  # no $ topics but $aws/...
        ("plain/topic", 2),  # AWS IoT Core has no QoS 2
    ],
)
def test_publishes_aws_would_refuse_disconnect_the_client(start_broker, device_files, topic, qos):
    broker = start_broker()
    client = device(start_broker, broker, device_files, "thing-1").connected()
    client.publish(topic, b"x", qos=qos)
    assert client.disconnected.wait(WAIT)


def test_a_denied_subscription_gets_suback_failure_and_others_in_the_packet_are_granted(start_broker, device_files):
    broker = start_broker(on_subscribe=lambda info, topic_filter: topic_filter != "forbidden/#")
    client = device(start_broker, broker, device_files, "thing-1").connected()
    codes = client.subscribe("forbidden/#", "allowed/#", qos=2)
    assert codes[0].is_failure and codes[0].value == 0x80
    assert codes[1].value == 1  # QoS 2 is granted as 1, as on AWS IoT Core


def test_can_receive_filters_each_subscriber(start_broker, device_files):
    broker = start_broker(can_receive=lambda info, topic: info.client_id != "blind")
    sees = device(start_broker, broker, device_files, "sees").connected()
    blind = device(start_broker, broker, device_files, "blind").connected()
    for client in (sees, blind):
        client.subscribe("data/#")
    device(start_broker, broker, device_files, "pub").connected().publish("data/1", b"z")
    assert sees.messages.get(timeout=WAIT)[:2] == ("data/1", b"z")
    assert nothing_in(blind.messages)


def test_retained_messages_go_only_to_subscribers_allowed_to_receive_them(start_broker, device_files):
    broker = start_broker(can_receive=lambda info, topic: info.client_id != "blind")
    device(start_broker, broker, device_files, "pub").connected().publish("config/a", b"v1", qos=1)
    broker.publish("config/b", b"v2", qos=1, retain=True)
    time.sleep(0.2)
    client = device(start_broker, broker, device_files, "reader").connected()
    client.subscribe("config/#")
    assert client.messages.get(timeout=WAIT)[:2] == ("config/b", b"v2")
    blind = device(start_broker, broker, device_files, "blind").connected()
    blind.subscribe("config/#")
    assert nothing_in(blind.messages)


def test_server_side_publish_reaches_subscribers_and_rules_without_a_session(start_broker, device_files):
    rules: list = []
    broker = start_broker(
        on_publish=lambda *args: False,  # policy checks do not apply to the emulator's own messages
        on_message=lambda info, topic, payload: rules.append((info, topic, payload)),
    )
    client = device(start_broker, broker, device_files, "thing-1").connected()
    client.subscribe("$aws/events/certificates/registered/+")
    topic = "$aws/events/certificates/registered/" + "ab" * 32
    broker.publish(topic, '{"certificateStatus": "PENDING_ACTIVATION"}')
    assert client.messages.get(timeout=WAIT) == (topic, b'{"certificateStatus": "PENDING_ACTIVATION"}', 0)
    assert wait_until(lambda: rules) and rules[0][0] is None and rules[0][1] == topic


def test_a_last_will_is_published_like_any_message_policy_then_subscribers_and_rules(start_broker, device_files):
    rules: list = []
    broker = start_broker(
        on_publish=lambda info, topic, payload, qos, retain: topic != "wills/denied",
        on_message=lambda info, topic, payload: rules.append((info.client_id, topic, payload)),
    )
    watcher = device(start_broker, broker, device_files, "watcher").connected()
    watcher.subscribe("wills/#")
    for client_id, topic in (("dies", "wills/dies"), ("denied", "wills/denied")):
        client = device(start_broker, broker, device_files, client_id)
        client.client.will_set(topic, b"gone", qos=1)
        client.connected()
        broker.disconnect_client(client_id)  # not a DISCONNECT packet: the will goes out
    assert watcher.messages.get(timeout=WAIT)[:2] == ("wills/dies", b"gone")
    assert nothing_in(watcher.messages)
    assert rules == [("dies", "wills/dies", b"gone")]


def test_disconnect_client_closes_its_connection(start_broker, device_files):
    gone: list[SessionInfo] = []
    broker = start_broker(on_disconnect=gone.append)
    client = device(start_broker, broker, device_files, "thing-1").connected()
    assert broker.disconnect_client("thing-1") is True
    assert client.disconnected.wait(WAIT)
    assert wait_until(lambda: gone) and gone[0].disconnect_reason == DisconnectReason.SERVER_INITIATED_DISCONNECT
    assert broker.disconnect_client("nobody") is False


# --- a standard client ----------------------------------------------------------------------


@pytest.mark.skipif(
    not (shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub")),
    reason="mosquitto_pub/mosquitto_sub not installed (apt-get install mosquitto-clients)",
)
def test_mosquitto_clients_connect_with_a_certificate_chain_and_exchange_a_message(start_broker, device_files):
    seen: list[SessionInfo] = []
    broker = start_broker(on_connect=lambda info: seen.append(info) or ConnectDecision.ACCEPT)
    tls = [
        "-h",
        "localhost",
        "-p",
        str(broker.port),
        "--cafile",
        str(broker.ca_file),
        "--cert",
        str(device_files.chain),
        "--key",
        str(device_files.key),
        "-V",
        "mqttv311",
    ]
    sub = subprocess.Popen(
        ["mosquitto_sub", *tls, "-i", "mosq-sub", "-t", "mosq/test", "-C", "1", "-W", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: "mosq-sub" in broker.connected_clients() and len(seen) == 1)
        time.sleep(0.2)  # let the SUBSCRIBE land
        subprocess.run(
            ["mosquitto_pub", *tls, "-i", "mosq-pub", "-t", "mosq/test", "-m", "hello", "-q", "1"],
            check=True,
            timeout=10,
            capture_output=True,
        )
        out, err = sub.communicate(timeout=10)
    finally:
        sub.kill()
    assert sub.returncode == 0, err
    assert out.strip() == "hello"
    assert [info.client_id for info in seen] == ["mosq-sub", "mosq-pub"]
    assert all(info.certificate_chain == (device_files.cert_der, device_files.ca_der) for info in seen)
    assert all(info.sni == "localhost" for info in seen)


# --- connections that never finish opening -----------------------------------------------------------


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``within`` seconds without our sending a byte."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_a_connection_that_never_starts_its_tls_handshake_is_closed_after_the_handshake_timeout(
    start_broker, monkeypatch
):
    from emulator.mqtt import aws_broker as aws_iot_broker

    monkeypatch.setattr(aws_iot_broker, "HANDSHAKE_TIMEOUT", 0.5)
    broker = start_broker()
    with socket.create_connection(("127.0.0.1", broker.port), WAIT) as silent:
        assert not closed_by_server(silent, 0.2)  # accepted and waited for, for a while
        assert closed_by_server(silent, WAIT)


def test_a_connection_that_finishes_tls_but_sends_no_connect_is_closed(start_broker, device_files, monkeypatch):
    from emulator.mqtt import aws_broker as aws_iot_broker

    monkeypatch.setattr(aws_iot_broker, "CONNECT_TIMEOUT", 0.5)
    broker = start_broker()
    context = ssl.create_default_context(cafile=str(broker.ca_file))
    context.load_cert_chain(device_files.chain, device_files.key)
    with context.wrap_socket(
        socket.create_connection(("127.0.0.1", broker.port), WAIT), server_hostname="localhost"
    ) as tls:
        assert closed_by_server(tls, WAIT)


def test_half_open_connections_are_bounded_and_the_broker_serves_again_once_they_go(
    start_broker, device_files, monkeypatch
):
    from emulator.mqtt import aws_broker as aws_iot_broker

    monkeypatch.setattr(aws_iot_broker, "MAX_OPENING", 5)
    monkeypatch.setattr(aws_iot_broker, "HANDSHAKE_TIMEOUT", 1.0)
    broker = start_broker()
    half_open = [socket.create_connection(("127.0.0.1", broker.port), WAIT) for _ in range(5)]
    try:
        time.sleep(0.2)  # the broker has accepted all five
        with socket.create_connection(("127.0.0.1", broker.port), WAIT) as sixth:
            assert closed_by_server(sixth, 0.5)  # closed at accept, before its handshake timeout
        assert all(closed_by_server(sock, WAIT) for sock in half_open)  # each after its handshake timeout
    finally:
        for sock in half_open:
            sock.close()
    device(start_broker, broker, device_files, "thing-1").connected()  # and a device gets in again
