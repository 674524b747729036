"""``jitr demo``: the kit's whole loop, step by step with timings, against an in-process emulator.

CA -> registration (JITR) -> stack -> a device's first connect dropped -> the Lambda activates it
-> reconnect and publish -> the archived S3 object; then a device shipped with only a serial and a token
enrolls through the provisioning API, connects and publishes; its user signs up, binds it with its binding
code, watches its telemetry and sends it a command over MQTT/WebSocket with temporary credentials; then a
batch of devices minted and verified.
Everything runs on this machine, on loopback ports, with the same calls the kit makes against AWS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from base import manifest
from base.backoff import Backoff
from base.certificates import certificate_id, load_certificates, to_pem
from base.errors import AlreadyExistsError, AwsError
from base.files import create_file, write_files
from base.keys import generate_key, private_key_pem
from ca.batch import BatchRequest, mint_batch, numbered_names
from ca.issue import Issuer, issue_root, make_name
from ca.mint import mint_device
from ca.registration import RegistrationRequest, register_ca
from ca.store import CaMaterial, CaMetadata, PkiStore
from ca.verify import verify_chain
from cli import demo_web
from cloud.fleet_table import fleet_table_of
from cloud.iot import IotApi
from cloud.session import make_session
from cloud.user_pool import UserPool
from device.client import ConnectOptions, Listen, Messages, run_device
from device.endpoint import Endpoint
from device.enroll import enroll, provisioning_requests
from device.errors import NotActivatedError
from device.identity import identity_from_files
from fleet.admission import admit as admit_serials
from user.devices import UsersApi
from user.live import LiveConnection

MARKER = ".jitr-demo"  # only folders carrying it are wiped by a re-run
STACK = "jitr-demo"
THING = "demo-device-1"
SERIAL = "demo-box-1"  # the device that ships with a serial and a token, and enrolls over HTTPS
USER, USER_PASSWORD = "ada@example.com", "demo-password-2026"  # its user, in the stack's user pool
TEMPLATE = Path(__file__).resolve().parents[1] / "sam" / "template.yaml"
SITE = Path(__file__).resolve().parents[1] / "build" / "web"  # 'make web' (make demo runs it first)
WAIT = 30.0  # seconds the demo waits for the Lambda or the archive before it calls the step failed


class Steps:
    """Prints each step with how long it took."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.number = 0

    def run(self, title: str, action: Callable[[], str]) -> None:
        self.number += 1
        began = time.perf_counter()
        detail = action()
        typer.echo(f"[{self.number}] {title:<46} {time.perf_counter() - began:7.3f} s  {detail}")

    def total(self) -> float:
        return time.perf_counter() - self.started


def _fresh(directory: Path) -> None:
    if directory.exists():
        if not (directory / MARKER).exists():
            raise AlreadyExistsError(f"{directory} exists and was not made by 'jitr demo'; choose another --dir.")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    create_file(directory / MARKER, b"made by jitr demo; a re-run replaces this folder\n")


@contextlib.contextmanager
def _pointed_at(environment: dict[str, str]) -> Iterator[None]:
    """boto3 and the kit talk to the emulator while the demo runs; the caller's environment comes back after."""
    saved = {name: os.environ.get(name) for name in [*environment, "AWS_PROFILE"]}
    os.environ.update(environment)
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _until(what: str, probe: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.02)
    raise AwsError(f"Gave up after {timeout:.0f} s waiting for {what}.")


class DemoLoop:
    """The loop's steps; each returns the line the demo prints about it."""

    def __init__(self, directory: Path, devices: int) -> None:
        self.directory = directory
        self.devices = devices
        self.pki = PkiStore(directory / "pki")
        self.now = dt.datetime.now(dt.UTC)
        self.state: dict[str, Any] = {}
        self.iot: Any = None  # the LocalIot once started

    # -- the emulator, the CA and the cloud side ---------------------------------------------------

    def start_emulator(self) -> str:
        from emulator.local import LocalIot, Options

        self.iot = LocalIot(Options(state_dir=self.directory / "local-iot", lambda_retry_delays=(0.5, 1.0))).start()
        info = self.iot.info()
        return f"AWS API {info['aws_endpoint_url']}, MQTT/TLS {info['mqtt_host']}:{info['mqtt_port']}"

    def create_ca(self) -> str:
        root_key, inter_key = generate_key("ec-p256"), generate_key("ec-p256")
        root = issue_root(root_key, make_name("jitr-kit Demo Root", org="Demo", country="DE"), now=self.now, days=3650)
        inter = Issuer(root, root_key).issue_intermediate(
            inter_key.public_key(),
            make_name("jitr-kit Demo Intermediate", org="Demo", country="DE"),
            now=self.now,
            days=3650,
        )
        self.pki.create(
            CaMaterial(root, root_key, inter, inter_key),
            CaMetadata("ec-p256", "DE", "Demo", "intermediate", None, 3650),
            None,
        )
        self.state["issuer"] = self.pki.signer(None)
        return f"intermediate {certificate_id(inter)[:16]}… signs devices"

    def register(self) -> str:
        self.state["iot_api"] = api = IotApi.connect()
        record = register_ca(api, self.pki, RegistrationRequest(), passphrase=None, now=self.now)
        self.state["ca_id"] = record["caCertificateId"]
        return f"caCertificateId {record['caCertificateId'][:16]}…, ACTIVE, auto-registration on"

    def deploy(self) -> str:
        from emulator.cloudformation.deploy import StackDeployer

        parameters = {"CaCertificateId": self.state["ca_id"], "ProvisioningApi": "true", "UsersApi": "true"}
        record = StackDeployer(make_session()).deploy(TEMPLATE, STACK, parameters)
        self.state["bucket"] = record["outputs"]["ArchiveBucketName"]
        self.state["topic_root"] = record["outputs"]["DeviceTopicRoot"]
        self.state["outputs"] = record["outputs"]
        return f"{len(record['resources'])} resources; archive bucket {self.state['bucket']}"

    # -- one device's first connect ----------------------------------------------------------------

    def mint_one(self) -> str:
        identity = mint_device(self.state["issuer"], THING, country="DE", now=self.now, days=365)
        out = self.directory / "devices"
        write_files(out, identity.files())
        self.state["chain"], self.state["key"] = out / manifest.chain_path(THING), out / manifest.key_path(THING)
        return f"{self.state['chain']}"

    def _connect(self, backoff: Backoff, messages: Messages):
        info = self.iot.info()
        return run_device(
            identity_from_files(self.state["chain"], self.state["key"]),
            Endpoint(info["mqtt_host"], info["mqtt_port"]),
            root_ca=Path(info["endpoint_ca"]),
            messages=messages,
            options=ConnectOptions(backoff=backoff),
        )

    def first_connect(self) -> str:
        result = self._connect(
            Backoff(base=0.1, cap=0.1, attempts=1), Messages(count=0, topic_root=self.state["topic_root"])
        )
        if not isinstance(result.error, NotActivatedError):
            raise AwsError(f"The first connect should be dropped under JITR, but it ended {result.outcome}.")
        status = self._certificate()["certificateDescription"]["status"]
        return f"dropped before CONNACK; certificate registered {status}"

    def _certificate(self) -> dict:
        cert_id = certificate_id(load_certificates(self.state["chain"].read_bytes())[0])
        return self.state["iot_api"].call("describe_certificate", certificateId=cert_id)

    def activation(self) -> str:
        description = _until(
            "the activation Lambda",
            lambda: (d := self._certificate()["certificateDescription"])["status"] == "ACTIVE" and d,
        )
        things = self.state["iot_api"].list_principal_things(description["certificateArn"])
        policies = self.state["iot_api"].list_attached_policies(description["certificateArn"])
        logs = sorted(self.iot.lambdas.logs.log_dir.glob("aws_lambda_*.log"))  # what the function printed
        shown = ", ".join(os.path.relpath(path) for path in logs)
        return f"ACTIVE; thing {', '.join(things)}; policy {', '.join(policies)}; log {shown}"

    def reconnect_and_publish(self) -> str:
        result = self._connect(
            Backoff(base=0.2, cap=2.0, attempts=10), Messages(count=1, topic_root=self.state["topic_root"])
        )
        result.raise_for_error()
        return (
            f"accepted on attempt {len(result.attempts)}, PUBACK after "
            f"{result.time_to_first_publish:.3f} s to {result.topic}"
        )

    def archived(self) -> str:
        s3 = make_session().client("s3")
        bucket = self.state["bucket"]
        contents = _until("the archive rule", lambda: s3.list_objects_v2(Bucket=bucket).get("Contents"))
        key = contents[0]["Key"]
        body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return f"s3://{bucket}/{key} = {json.dumps(body)}"

    # -- a device that ships without a certificate -------------------------------------------------

    def admit(self) -> str:
        table = fleet_table_of(make_session(), self.state["outputs"], STACK)
        tokens = self.directory / "tokens.json"
        admitted = admit_serials(table, STACK, [SERIAL], tokens, rotate=False, now=int(time.time()))
        self.state["token"], self.state["code"] = admitted[0].token, admitted[0].binding_code
        return f"token and binding code in {tokens} (0600); the fleet table keeps their SHA-256 only"

    def enroll(self) -> str:
        api = self.state["outputs"]["ProvisioningApiUrl"]
        enrolled = enroll(provisioning_requests(), api, SERIAL, self.state["token"], self.directory / "enrolled")
        self.state["enrolled"] = enrolled
        return f"POST {api}/devices/{SERIAL}/certificate -> certificate {enrolled.certificate_id[:16]}…"

    def enrolled_publish(self) -> str:
        enrolled, info = self.state["enrolled"], self.iot.info()
        result = run_device(
            identity_from_files(enrolled.certificate, enrolled.key),
            Endpoint(info["mqtt_host"], info["mqtt_port"]),
            root_ca=Path(info["endpoint_ca"]),
            messages=Messages(count=1, topic_root=self.state["topic_root"]),
            options=ConnectOptions(backoff=Backoff(base=0.2, cap=2.0, attempts=5)),
        )
        result.raise_for_error()
        s3, bucket = make_session().client("s3"), self.state["bucket"]
        prefix = f"{result.topic}/"
        found = _until("the archive", lambda: s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents"))
        return f"accepted on attempt {len(result.attempts)}; archived as s3://{bucket}/{found[0]['Key']}"

    # -- its user: sign in, bind, watch, command ----------------------------------------------------

    def user_signs_in(self) -> str:
        outputs, session = self.state["outputs"], make_session()
        pool = UserPool(outputs["UserPoolClientId"], session.region_name, session)
        pool.sign_up(USER, USER_PASSWORD)
        # Cognito e-mails a code, which the emulator does not: the operator confirms her (AdminConfirmSignUp)
        session.client("cognito-idp").admin_confirm_sign_up(UserPoolId=outputs["UserPoolId"], Username=USER)
        tokens = pool.sign_in(USER, USER_PASSWORD)
        self.state["users"] = UsersApi(outputs["UsersApiUrl"], tokens.id_token)
        return f"{USER} in user pool {outputs['UserPoolId']}; ID token {len(tokens.id_token)} characters"

    def user_binds(self) -> str:
        users = self.state["users"]
        users.bind(SERIAL, self.state["code"])
        return f"POST /bindings {SERIAL} with its code; her devices: {[d['thingName'] for d in users.devices()]}"

    def user_watches_and_commands(self) -> str:
        credentials = self.state["users"].credentials([SERIAL])
        enrolled, info = self.state["enrolled"], self.iot.info()
        heard = threading.Event()
        identity = identity_from_files(enrolled.certificate, enrolled.key)
        with LiveConnection(credentials, root_ca=Path(info["endpoint_ca"])) as live:
            live.subscribe(credentials.telemetry_topic(SERIAL))
            device = threading.Thread(
                target=run_device,
                args=(identity, Endpoint(info["mqtt_host"], info["mqtt_port"])),
                kwargs={
                    "root_ca": Path(info["endpoint_ca"]),
                    "messages": Messages(count=1, topic_root=self.state["topic_root"], payload=b'{"temperature": 21}'),
                    "listen": Listen(lambda _topic, _payload: heard.set(), seconds=WAIT),
                },
                daemon=True,
            )
            device.start()
            try:
                message = live.messages.get(timeout=WAIT)
                live.publish(credentials.command_topic(SERIAL, "light"), b'{"on": true}')
                if not heard.wait(WAIT):
                    raise AwsError(f"{SERIAL} did not hear the command within {WAIT:.0f} s.")
            except queue.Empty:
                raise AwsError(f"No telemetry from {SERIAL} reached its user within {WAIT:.0f} s.") from None
        return (
            f"heard {message.payload.decode()} on {message.topic}; sent commands/light, which the device heard "
            f"(credentials for {', '.join(credentials.things)} only, until {credentials.expiration:%H:%M} UTC)"
        )

    def host_web_page(self) -> str:
        self.state["website"], said = demo_web.host_web_page(STACK, SITE, self.state["outputs"]["UsersApiUrl"])
        return said

    # -- manufacturing a batch ---------------------------------------------------------------------

    def mint_many(self) -> str:
        issuer = self.state["issuer"]
        result = mint_batch(
            numbered_names("demo-", self.devices),
            ca_cert_pem=to_pem(issuer.certificate),
            ca_key_pem=private_key_pem(issuer.key),
            passphrase=None,
            request=BatchRequest(out=self.directory / "fleet", fmt="files", workers=2),
            now=self.now,
        )
        self.state["manifest"] = result.manifest
        return f"{result.count} devices, {result.count / result.seconds:,.0f}/s -> {result.manifest}"

    def verify_all(self) -> str:
        root = self.pki.root_certificate()
        count = 0
        for entry in manifest.read_manifest(self.state["manifest"]):
            certs = load_certificates(entry.chain_pem())
            verify_chain(certs[0], root=root, intermediates=certs[1:])
            count += 1
        return f"{count} chains verify up to the root"

    def stop(self) -> None:
        if self.iot is not None:
            self.iot.stop()
            self.iot = None


def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo writes (replaced on each run).")] = Path(
        "demo-output"
    ),
    devices: Annotated[int, typer.Option("--devices", min=1, help="Devices in the demo's minted batch.")] = 1000,
    serve: Annotated[
        bool,
        typer.Option("--serve", help="Keep the emulator running after the loop, to open the web page (Ctrl-C ends)."),
    ] = False,
) -> None:
    """Run the whole loop locally against the emulator: CA, JITR registration, stack, first connect
    dropped, Lambda activation, reconnect, publish, archived S3 object; a device with only a serial and a
    token enrolling through the provisioning API and publishing; its user signing up, binding it, watching it
    and commanding it over MQTT/WebSocket with SigV4; the web page uploaded to the stack's S3 website; then a
    batch minted and verified. With --serve, the emulator keeps running after the loop until Ctrl-C (or
    SIGTERM), so that the page can be opened in a browser."""
    _fresh(directory)
    loop, steps = DemoLoop(directory, devices), Steps()
    try:
        steps.run("Start the local AWS IoT Core (loopback)", loop.start_emulator)
        with _pointed_at(loop.iot.environment()):
            steps.run("Create a root CA and an intermediate", loop.create_ca)
            steps.run("Register the intermediate for JITR", loop.register)
            steps.run(f"Deploy stack {STACK} (sam/template.yaml)", loop.deploy)
            steps.run(f"Mint {THING} (key, certificate, chain)", loop.mint_one)
            steps.run("First connect: JITR drops it", loop.first_connect)
            steps.run("The activation Lambda activates it", loop.activation)
            steps.run("Reconnect and publish", loop.reconnect_and_publish)
            steps.run("The archive rule wrote it to S3", loop.archived)
            steps.run(f"Admit serial {SERIAL} to the provisioning API", loop.admit)
            steps.run(f"{SERIAL} enrolls through the API (key made on it)", loop.enroll)
            steps.run(f"{SERIAL} connects and publishes", loop.enrolled_publish)
            steps.run(f"{USER} signs up and signs in (Cognito)", loop.user_signs_in)
            steps.run(f"She binds {SERIAL} with its binding code", loop.user_binds)
            steps.run("She watches it and sends it a command (WSS)", loop.user_watches_and_commands)
            steps.run("The web page is hosted in S3 (website endpoint)", loop.host_web_page)
            if serve:
                demo_web.serve(loop.iot.info(), loop.state["website"], USER, USER_PASSWORD)
    finally:
        loop.stop()
    steps.run(f"Mint a batch of {devices} devices", loop.mint_many)
    steps.run("Verify every device chain (RFC 5280)", loop.verify_all)
    typer.echo(f"Done in {steps.total():.2f} s. Everything is in {directory}/.")
