"""Users and their devices, tried as a user, a phone app and an attacker would: accounts in the stack's
user pool, curl on every route with the ID token, devices bound with their code, credentials from
``/credentials`` used over MQTT/WebSocket with SigV4 by ``jitr app``, by paho and by the AWS IoT Device SDK
v2, and refused wherever they reach beyond the user's own devices."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import boto3
import paho.mqtt.client as mqtt
import pytest

from cloud.iot_websocket import TemporaryCredentials, signed_path
from emulator.cloudformation.deploy import StackDeployer
from emulator.local import LocalIot
from tests.conftest import Jitr
from tests.e2e.conftest import TEMPLATE, EnrolledDevice, running_emulator, wait_for
from tests.e2e.conftest import curl_json as curl
from user.devices import Credentials, UsersApi
from user.live import LiveConnection, LiveConnectionError

pytestmark = pytest.mark.timeout(240)
STACK, REGION = "users-e2e", "us-east-1"
CA_ID = "b" * 64
PASSWORD = "correct-horse-42-battery"
DEVICES = ("dev-a", "dev-b", "dev-c", "dev-d", "dev-e")
NOT_ENROLLED = "dev-boxed"  # admitted, with its binding code, but never switched on
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class World:
    emulator: LocalIot
    outputs: dict
    tmp: Path
    codes: dict[str, str]
    tokens: dict[str, str]  # each user's ID token
    subjects: dict[str, str]
    endpoint_ca: str

    def api(self, user: str) -> UsersApi:
        return UsersApi(self.outputs["UsersApiUrl"], self.tokens[user])

    def device_files(self, thing: str) -> tuple[Path, Path]:
        return self.tmp / "devices" / "certs" / f"{thing}.pem", self.tmp / "devices" / "private" / f"{thing}.key"


def _sign_in(idp, client_id: str, email: str) -> str:
    idp.sign_up(
        ClientId=client_id, Username=email, Password=PASSWORD, UserAttributes=[{"Name": "email", "Value": email}]
    )
    idp.confirm_sign_up(ClientId=client_id, Username=email, ConfirmationCode="123456")
    answer = idp.initiate_auth(
        ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH", AuthParameters={"USERNAME": email, "PASSWORD": PASSWORD}
    )
    return answer["AuthenticationResult"]["IdToken"]


def _claims(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("users")
    with running_emulator(tmp / "state") as iot:
        session = boto3.Session(region_name=REGION)
        overrides = {"CaCertificateId": CA_ID, "ProvisioningApi": "true", "UsersApi": "true"}
        outputs = StackDeployer(session).deploy(TEMPLATE, STACK, overrides)["outputs"]
        jitr = Jitr()
        serials = [arg for thing in (*DEVICES, NOT_ENROLLED) for arg in ("--serial", thing)]
        admitted = jitr("fleet", "admit", "--stack", STACK, *serials, "--out", tmp / "tokens.json", "--json")
        assert admitted.exit_code == 0, admitted.output
        rows = json.loads(admitted.stdout)["devices"]
        for row in rows:
            if row["serial"] == NOT_ENROLLED:
                continue
            enrolled = jitr("device", "enroll", "--api", outputs["ProvisioningApiUrl"], "--serial", row["serial"],
                            "--token", row["token"], "--out", tmp / "devices")  # fmt: skip
            assert enrolled.exit_code == 0, enrolled.output
        idp = session.client("cognito-idp")
        client_id = outputs["UserPoolClientId"]
        tokens = {user: _sign_in(idp, client_id, f"{user}@example.com") for user in ("alice", "bob")}
        yield World(
            emulator=iot,
            outputs=outputs,
            tmp=tmp,
            codes={row["serial"]: row["bindingCode"] for row in rows},
            tokens=tokens,
            subjects={user: _claims(token)["sub"] for user, token in tokens.items()},
            endpoint_ca=iot.info()["endpoint_ca"],
        )


def as_user(world: World, user: str) -> tuple[str, ...]:
    return ("-H", f"Authorization: {world.tokens[user]}", "-H", "content-type: application/json")


def device_of(world: World, thing: str) -> EnrolledDevice:
    """The device's own MQTT/TLS connection with its certificate; it subscribes to nothing."""
    cert, key = world.device_files(thing)
    return EnrolledDevice(world.emulator.info(), cert, key, thing, f"devices/{STACK}")


# -- the routes, with curl ---------------------------------------------------------------------------------


def test_curl_binds_a_registered_device_with_its_code_and_gets_credentials(world):
    api = world.outputs["UsersApiUrl"]
    assert curl(f"{api}/devices/dev-a/registration", *as_user(world, "alice")) == (
        200,
        {"thingName": "dev-a", "registered": True},
    )
    assert curl(f"{api}/devices/never-made/registration", *as_user(world, "alice"))[1]["registered"] is False
    wrong = json.dumps({"thingName": "dev-a", "code": "0000-0000-0000-0000"})
    assert curl(f"{api}/bindings", "-X", "POST", "-d", wrong, *as_user(world, "alice")) == (
        403,
        {"message": "The binding code does not match this device."},
    )
    # the code as a person types it from the box: lower case, blanks for dashes
    typed = world.codes["dev-a"].lower().replace("-", " ")
    status, bound = curl(f"{api}/bindings", "-X", "POST", "-d", json.dumps({"thingName": "dev-a", "code": typed}),
                         *as_user(world, "alice"))  # fmt: skip
    assert status == 200 and bound["owner"] == world.subjects["alice"]
    assert curl(f"{api}/bindings", *as_user(world, "alice"))[1]["devices"][0]["thingName"] == "dev-a"
    status, keys = curl(f"{api}/credentials", "-X", "POST", *as_user(world, "alice"))
    assert status == 200 and keys["accessKeyId"] and keys["sessionToken"] and keys["things"] == ["dev-a"]
    assert keys["clientIdPrefix"] == world.subjects["alice"] + "-"
    sts = boto3.client(
        "sts",
        region_name=REGION,
        aws_access_key_id=keys["accessKeyId"],
        aws_secret_access_key=keys["secretAccessKey"],
        aws_session_token=keys["sessionToken"],
    )
    assert sts.get_caller_identity()["Arn"].endswith(f"/{world.subjects['alice']}")  # a session named after her


def test_a_device_has_one_owner_and_only_its_owner_unbinds_it(world):
    api = world.outputs["UsersApiUrl"]
    claim = json.dumps({"thingName": "dev-b", "code": world.codes["dev-b"]})
    assert curl(f"{api}/bindings", "-X", "POST", "-d", claim, *as_user(world, "alice"))[0] == 200
    assert curl(f"{api}/bindings", "-X", "POST", "-d", claim, *as_user(world, "alice"))[0] == 200  # again: hers
    status, body = curl(f"{api}/bindings", "-X", "POST", "-d", claim, *as_user(world, "bob"))
    assert (status, body["message"]) == (409, "Device dev-b already has an owner; they must unbind it first.")
    assert curl(f"{api}/bindings/dev-b", "-X", "DELETE", *as_user(world, "bob"))[0] == 404
    assert curl(f"{api}/bindings/dev-b", "-X", "DELETE", *as_user(world, "alice"))[0] == 200
    assert curl(f"{api}/bindings", "-X", "POST", "-d", claim, *as_user(world, "bob"))[0] == 200  # now bob's


def test_a_device_that_has_not_registered_cannot_be_bound_even_with_its_code(world):
    api = world.outputs["UsersApiUrl"]
    assert curl(f"{api}/devices/{NOT_ENROLLED}/registration", *as_user(world, "alice"))[1]["registered"] is False
    claim = json.dumps({"thingName": NOT_ENROLLED, "code": world.codes[NOT_ENROLLED]})
    status, body = curl(f"{api}/bindings", "-X", "POST", "-d", claim, *as_user(world, "alice"))
    assert (status, body["message"]) == (
        403,
        f"Device {NOT_ENROLLED} is not registered yet: switch it on and let it connect first.",
    )


def test_no_token_a_tampered_token_or_no_device_is_refused(world):
    api = world.outputs["UsersApiUrl"]
    assert curl(f"{api}/bindings")[0] == 401
    head, claims, signature = world.tokens["bob"].split(".")
    forged = _claims(world.tokens["bob"]) | {"sub": world.subjects["alice"]}
    forged_claims = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    assert curl(f"{api}/bindings", "-H", f"Authorization: {head}.{forged_claims}.{signature}")[0] == 401
    assert curl(f"{api}/credentials", "-X", "POST", *as_user(world, "bob"))[0] in (200, 403)  # bob may own dev-b
    fresh = _sign_in(boto3.client("cognito-idp", region_name=REGION), world.outputs["UserPoolClientId"], "carol@x.io")
    status, body = curl(f"{api}/credentials", "-X", "POST", "-H", f"Authorization: {fresh}")
    assert (status, body["message"]) == (403, "You have no device bound: bind one first (POST /bindings).")
    unregistered = json.dumps({"thingName": "dev-unknown", "code": "AAAA-BBBB-CCCC-DDDD"})
    assert curl(f"{api}/bindings", "-X", "POST", "-d", unregistered, "-H", f"Authorization: {fresh}")[0] == 403


def test_an_expired_id_token_is_401(world):
    from joserfc import jwt
    from joserfc.jwk import RSAKey
    from moto.utilities.utils import load_resource

    claims = _claims(world.tokens["alice"])
    claims["exp"] = claims["iat"] - 1  # signed by the pool's key, for its app client, but expired
    key = RSAKey.import_key(load_resource("cognitoidp/resources/jwks-private.json"))
    expired = jwt.encode({"kid": "dummy", "alg": "RS256"}, claims, key)
    status, _ = curl(f"{world.outputs['UsersApiUrl']}/bindings", "-H", f"Authorization: {expired}")
    assert status == 401
    assert curl(f"{world.outputs['UsersApiUrl']}/bindings", *as_user(world, "alice"))[0] == 200  # the live one works


def test_credentials_past_their_expiry_are_refused_at_the_upgrade(world):
    import datetime as dt

    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    from emulator.iot.signed_connections import SignedConnections
    from emulator.mqtt.websocket import UpgradeRequest

    credentials = _credentials(world, "alice", "dev-c")
    port = world.emulator.info()["mqtt_port"]
    signing = AWSRequest(method="GET", url=f"https://localhost:{port}/mqtt")
    keys = BotoCredentials(credentials.access_key_id, credentials.secret_access_key)
    SigV4QueryAuth(keys, "iotdevicegateway", REGION, expires=7200).add_auth(signing)  # outlives the credentials
    query = signing.url.split("?", 1)[1] + "&" + urlencode({"X-Amz-Security-Token": credentials.session_token})
    request = UpgradeRequest("/mqtt", query, (("Host", f"localhost:{port}"),))
    account = world.emulator.info()["account_id"]
    now = dt.datetime.now(dt.UTC)
    assert SignedConnections(None, account_id=account, region=REGION, now=lambda: now).on_websocket(request)
    later = credentials.expiration + dt.timedelta(seconds=1)
    replayed = SignedConnections(None, account_id=account, region=REGION, now=lambda: later)
    assert replayed.on_websocket(request) is None  # the URL replayed after the credentials expired


def test_a_user_reads_her_devices_recent_telemetry_and_when_it_was_last_seen_and_nobody_else_does(world):
    api = world.outputs["UsersApiUrl"]
    if "dev-e" not in _owned(world, "alice"):
        world.api("alice").bind("dev-e", world.codes["dev-e"])
    device = device_of(world, "dev-e")
    try:
        for seq in (101, 102, 103):
            device.publish({"seq": seq})
            time.sleep(0.005)  # the archive's keys order by millisecond; within one, by a random UUID

        answers: list = []

        def newest_two():
            answers.append(curl(f"{api}/devices/dev-e/telemetry?limit=2", *as_user(world, "alice")))
            status, body = answers[-1]
            seqs = [m["payload"]["seq"] for m in body.get("messages", [])] if status == 200 else []
            return seqs if seqs == [102, 103] else None

        try:
            wait_for(newest_two, timeout=30)  # read back from the archive, oldest first
        except AssertionError:
            raise AssertionError(f"the archive never answered the newest two; last: {answers[-1]}") from None
        assert _last_seen(world, "dev-e")["connected"] is True  # the presence rule saw it connect
    finally:
        device.close()
    gone = wait_for(lambda: (seen := _last_seen(world, "dev-e")) and not seen["connected"] and seen)
    assert gone["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"
    assert curl(f"{api}/devices/dev-e/telemetry", *as_user(world, "bob")) == (
        404,
        {"message": "You have no device dev-e."},
    )
    status, refused = curl(f"{api}/devices/dev-e/telemetry?limit=500", *as_user(world, "alice"))
    assert status == 400 and "limit must be" in refused["message"]


def _owned(world: World, user: str) -> list[str]:
    return [d["thingName"] for d in world.api(user).devices()]


def _last_seen(world: World, thing: str) -> dict:
    status, listed = curl(f"{world.outputs['UsersApiUrl']}/bindings", *as_user(world, "alice"))
    return next(d.get("lastSeen") for d in listed["devices"] if d["thingName"] == thing)


def _headers(url: str, *args: str) -> dict[str, str]:
    done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-D", "-", "--max-time", "20", *args, url],
                          capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    lines = done.stdout.splitlines()[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if ":" in line)}


def test_the_api_lets_the_web_pages_origin_call_it_and_no_other_origin(world):
    api, page = world.outputs["UsersApiUrl"], world.outputs["WebsiteUrl"]
    asked = ("-X", "OPTIONS", "-H", "Access-Control-Request-Method: POST",
             "-H", "Access-Control-Request-Headers: authorization,content-type")  # fmt: skip
    allowed = _headers(f"{api}/bindings", *asked, "-H", f"Origin: {page}")
    assert allowed["access-control-allow-origin"] == page
    assert "authorization" in allowed["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in _headers(
        f"{api}/bindings", *asked, "-H", "Origin: http://evil.localhost"
    )
    answered = _headers(f"{api}/bindings", *as_user(world, "alice"), "-H", f"Origin: {page}")
    assert answered["access-control-allow-origin"] == page


# -- MQTT over WebSocket with the credentials ---------------------------------------------------------------


def _credentials(world: World, user: str, thing: str) -> Credentials:
    api = world.api(user)
    if thing not in [d["thingName"] for d in api.devices()]:
        api.bind(thing, world.codes[thing])
    return api.credentials([thing])


def test_credentials_hear_the_users_device_and_nothing_else(world):
    credentials = _credentials(world, "alice", "dev-c")
    device = device_of(world, "dev-c")
    try:
        with LiveConnection(credentials, root_ca=Path(world.endpoint_ca)) as live:
            live.subscribe(credentials.telemetry_topic("dev-c"))
            with pytest.raises(LiveConnectionError, match="refused the subscription"):
                live.subscribe(f"devices/{STACK}/dev-d/telemetry")  # another device's telemetry: SUBACK 0x80
            device.publish({"seq": 1})
            message = live.messages.get(timeout=10)
            assert (message.topic, json.loads(message.payload)) == (f"devices/{STACK}/dev-c/telemetry", {"seq": 1})
            live.publish(credentials.command_topic("dev-c", "light"), b'{"on": true}')
            deadline = time.monotonic() + 10
            while not device.heard and time.monotonic() < deadline:
                time.sleep(0.05)
        assert device.heard == []  # the device subscribed to nothing: AWS IoT delivered the command to no one
    finally:
        device.close()


def test_a_publish_to_another_devices_topic_closes_the_connection(world):
    credentials = _credentials(world, "alice", "dev-c")
    with (
        LiveConnection(credentials, root_ca=Path(world.endpoint_ca)) as live,
        pytest.raises(LiveConnectionError, match="closed the connection"),
    ):
        live.publish(f"devices/{STACK}/dev-d/commands/open", b"{}")


def test_a_client_id_outside_the_users_prefix_is_refused(world):
    credentials = _credentials(world, "alice", "dev-c")
    live = LiveConnection(credentials, root_ca=Path(world.endpoint_ca), client_id="dev-c")  # posing as the device
    with pytest.raises(LiveConnectionError, match="refused the connection as client dev-c"):
        live.connect()


def _paho_connect(world: World, path: str, client_id: str) -> int | str:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, transport="websockets")
    client.ws_set_options(path=path)
    client.tls_set(ca_certs=world.endpoint_ca)
    try:
        client.connect("localhost", world.emulator.info()["mqtt_port"], 30)
    except mqtt.WebsocketConnectionError as exc:
        return str(exc)
    codes: list[int] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: codes.append(rc.value)
    deadline = time.monotonic() + 10
    while not codes and time.monotonic() < deadline:
        client.loop(timeout=0.1)
    client.disconnect()
    return codes[0]


def test_a_tampered_or_expired_signed_url_is_refused_before_mqtt(world):
    credentials = _credentials(world, "alice", "dev-c")
    keys = TemporaryCredentials(credentials.access_key_id, credentials.secret_access_key, credentials.session_token)
    port = world.emulator.info()["mqtt_port"]
    client_id = credentials.client_id_prefix + "paho"
    good = signed_path(keys, "localhost", port, REGION)
    assert _paho_connect(world, good, client_id) == 0
    route, _, query = good.partition("?")
    params = dict(parse_qsl(query))
    tampered = params | {"X-Amz-Signature": params["X-Amz-Signature"][::-1]}
    assert "handshake" in str(_paho_connect(world, f"{route}?{urlencode(tampered)}", client_id)).lower()
    without_token = {k: v for k, v in params.items() if k != "X-Amz-Security-Token"}
    assert "handshake" in str(_paho_connect(world, f"{route}?{urlencode(without_token)}", client_id)).lower()
    other_region = signed_path(keys, "localhost", port, "eu-central-1")
    assert "handshake" in str(_paho_connect(world, other_region, client_id)).lower()


def test_credentials_outlive_an_unbinding_until_they_expire_but_new_ones_are_refused(world):
    api = world.api("alice")
    credentials = _credentials(world, "alice", "dev-e")
    api.unbind("dev-e")
    with LiveConnection(credentials, root_ca=Path(world.endpoint_ca)) as live:
        live.subscribe(credentials.telemetry_topic("dev-e"))  # as on AWS: the session policy was fixed at issue
    with pytest.raises(Exception, match="You do not own dev-e"):
        api.credentials(["dev-e"])


def test_the_aws_iot_device_sdk_v2_connects_with_the_credentials_and_hears_the_device(world):
    from awscrt import auth
    from awscrt import mqtt as crt_mqtt
    from awsiot import mqtt_connection_builder

    credentials = _credentials(world, "alice", "dev-c")
    provider = auth.AwsCredentialsProvider.new_static(
        credentials.access_key_id, credentials.secret_access_key, credentials.session_token
    )
    connection = mqtt_connection_builder.websockets_with_default_aws_signing(
        endpoint="localhost",
        port=world.emulator.info()["mqtt_port"],
        region=REGION,
        credentials_provider=provider,
        ca_filepath=world.endpoint_ca,
        client_id=credentials.client_id_prefix + "sdk",
        clean_session=True,
        keep_alive_secs=30,
    )
    connection.connect().result(15)
    device = device_of(world, "dev-c")
    try:
        heard: list[bytes] = []
        subscribed, _ = connection.subscribe(
            topic=credentials.telemetry_topic("dev-c"),
            qos=crt_mqtt.QoS.AT_LEAST_ONCE,
            callback=lambda topic, payload, **_kw: heard.append(payload),
        )
        assert subscribed.result(10)["qos"] == crt_mqtt.QoS.AT_LEAST_ONCE
        refused, _ = connection.subscribe(topic=f"devices/{STACK}/dev-d/telemetry", qos=crt_mqtt.QoS.AT_LEAST_ONCE)
        with pytest.raises(Exception):  # noqa: B017 the SDK raises its own error for a SUBACK failure
            refused.result(10)
        device.publish({"seq": 7})
        deadline = time.monotonic() + 10
        while not heard and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [json.loads(p) for p in heard] == [{"seq": 7}]
    finally:
        device.close()
        connection.disconnect().result(10)


# -- jitr app, and the device listening ---------------------------------------------------------------------


def _jitr_process(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from cli import run; run()", *args],
        cwd=ROOT, env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _stderr_line(process: subprocess.Popen, seconds: float, containing: str) -> str:
    """The process's first line on stderr that holds ``containing``, within ``seconds``."""
    import selectors

    assert process.stderr is not None
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while selector.select(max(0.0, deadline - time.monotonic())):
            line = process.stderr.readline()
            if containing in line or not line:
                return line
    process.kill()
    raise AssertionError(f"no line with {containing!r} on stderr within {seconds} s")


def test_jitr_app_signs_up_binds_watches_and_commands_a_listening_device(world, tmp_path):
    jitr, env = Jitr(), {"JITR_APP_CONFIG": str(tmp_path / "app.json"), "JITR_APP_PASSWORD": PASSWORD}
    email = "dora@example.com"
    assert jitr("app", "signup", "--stack", STACK, "--email", email, env=env).exit_code == 0
    assert jitr("app", "confirm", "--email", email, "123456", env=env).exit_code == 0
    login = jitr("app", "login", "--email", email, env=env)
    assert login.exit_code == 0, login.output
    assert oct((tmp_path / "app.json").stat().st_mode & 0o777) == "0o600"
    unbound = jitr("app", "bind", "dev-d", "--code", world.codes["dev-a"], env=env)  # another device's code
    assert unbound.exit_code == 6 and "binding code does not match" in unbound.output
    assert jitr("app", "bind", "dev-d", "--code", world.codes["dev-d"], env=env).exit_code == 0
    assert jitr("app", "devices", env=env).stdout.strip() == "dev-d"
    cert, key = world.device_files("dev-d")
    info = world.emulator.info()
    watcher = _jitr_process("app", "watch", "dev-d", "--count", "1", "--seconds", "40", "--root-ca",
                            world.endpoint_ca, env=env)  # fmt: skip
    listener = None
    try:
        assert "Watching dev-d" in _stderr_line(watcher, 20, "Watching")  # connected and subscribed
        listener = _jitr_process(
            "device", "connect", "--endpoint", f"localhost:{info['mqtt_port']}", "--cert", str(cert), "--key",
            str(key), "--root-ca", world.endpoint_ca, "--topic-root", f"devices/{STACK}", "--count", "1",
            "--message", '{"temperature": 21}', "--listen", "--listen-seconds", "8", env={},
        )  # fmt: skip
        assert "accepted" in _stderr_line(
            listener, 20, "accepted"
        )  # the device is connected (and subscribed, then publishes)
        time.sleep(1)
        sent = jitr("app", "send", "dev-d", '{"light": "on"}', "--name", "light", "--root-ca", world.endpoint_ca,
                    env=env)  # fmt: skip
        assert sent.exit_code == 0, sent.output
        watched, _ = watcher.communicate(timeout=40)
        heard, _ = listener.communicate(timeout=40)
    finally:
        for process in (watcher, listener):
            if process is not None and process.poll() is None:
                process.kill()
    assert json.loads(watched.splitlines()[0]) == {
        "topic": f"devices/{STACK}/dev-d/telemetry",
        "payload": {"temperature": 21},
    }
    assert {"topic": f"devices/{STACK}/dev-d/commands/light", "command": {"light": "on"}} in [
        json.loads(line) for line in heard.splitlines() if line.startswith("{")
    ]
