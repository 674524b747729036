"""Fleet provisioning by claim, the device's side (``jitr device provision``): an identity of its own over MQTT.

Connected with the claim certificate, the device subscribes to the answers, then publishes
``$aws/certificates/create/json`` (AWS IoT makes the key: CreateKeysAndCertificate) or, with ``csr``,
``$aws/certificates/create-from-csr/json`` with a CSR of a key it made itself, which never leaves it. It
then publishes ``$aws/provisioning-templates/<template>/provision/json`` with the ownership token and its
parameters, and AWS IoT runs the template (the thing, the certificate ACTIVE, its policy). The identity is
saved (key 0600) and proved: the device connects with it and publishes one message under the
``topicRoot`` the template's deviceConfiguration names (else it only connects).

Each answer is awaited for ``timeout`` seconds; a ``.../rejected`` answer is a
:class:`~device.errors.ProvisioningRejectedError` with AWS IoT's message. Nothing is saved unless AWS IoT
provisioned the device; a certificate made for a registration that then failed stays PENDING_ACTIVATION,
which AWS IoT never lets connect.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base.certificates import load_certificate
from base.errors import AlreadyExistsError, InvalidInputError
from base.files import FileSpec, write_files
from base.keys import KeyType, generate_key, private_key_pem, public_bytes
from base.names import check_template_name, check_thing_name
from device.client import ConnectOptions, Messages, open_session, run_device
from device.endpoint import Endpoint
from device.enroll import device_files, make_csr
from device.errors import DeviceKeyMismatchError, EndpointUnreachableError, ProvisioningRejectedError
from device.identity import DeviceIdentity, load_identity
from device.wire import Connection

CREATE, CREATE_FROM_CSR = "$aws/certificates/create/json", "$aws/certificates/create-from-csr/json"
ANSWER_TIMEOUT = 10.0
SUBACK_FAILURE = 0x80


def provision_topic(template: str) -> str:
    return f"$aws/provisioning-templates/{check_template_name(template)}/provision/json"


class Requests:
    """Request and answer over one MQTT connection: subscribe to ``topic/accepted`` and ``topic/rejected``,
    publish the request, wait for one of them."""

    def __init__(self, connection: Connection, endpoint: str, timeout: float = ANSWER_TIMEOUT) -> None:
        self.connection = connection
        self.endpoint = endpoint
        self.timeout = timeout
        self._answers: dict[str, bytes] = {}
        self._subacks: dict[int, list[int]] = {}
        client = connection.client
        client.on_message = lambda _c, _u, message: self._answers.__setitem__(message.topic, bytes(message.payload))
        client.on_subscribe = lambda _c, _u, mid, codes, _p: self._subacks.__setitem__(mid, [c.value for c in codes])

    def subscribe(self, topic: str) -> None:
        filters = [f"{topic}/accepted", f"{topic}/rejected"]
        rc, mid = self.connection.client.subscribe([(name, 1) for name in filters])
        if rc != 0 or mid is None:
            raise EndpointUnreachableError(f"{self.endpoint} closed the connection before {topic} could be asked.")
        if not self.connection.pump_until(lambda: mid in self._subacks, self.timeout):
            raise self._silence(f"subscribing to {topic}/accepted")
        if any(code >= SUBACK_FAILURE for code in self._subacks[mid]):
            raise ProvisioningRejectedError(
                f"{self.endpoint} refused the subscription to {topic}/accepted and /rejected: the claim "
                "certificate's policy does not allow them (see jitr fleet claim)."
            )

    def ask(self, topic: str, request: Mapping[str, Any]) -> dict[str, Any]:
        accepted, rejected = f"{topic}/accepted", f"{topic}/rejected"
        self._answers.pop(accepted, None)
        self._answers.pop(rejected, None)
        sent = self.connection.publish(topic, json.dumps(request).encode(), self.timeout)
        if sent is None:
            raise ProvisioningRejectedError(
                f"{self.endpoint} closed the connection on a publish to {topic}: the claim certificate's "
                "policy does not allow it (or the template name is not the one it was made for)."
            )
        done = self.connection.pump_until(lambda: accepted in self._answers or rejected in self._answers, self.timeout)
        if not done:
            raise self._silence(f"its request on {topic}")
        if rejected in self._answers:
            raise ProvisioningRejectedError(_rejection(topic, self._answers[rejected]))
        try:
            answer = json.loads(self._answers[accepted])
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ProvisioningRejectedError(f"{self.endpoint} answered {topic} with something that is not JSON.")
        return answer

    def _silence(self, what: str) -> EndpointUnreachableError:
        if self.connection.closed:
            return EndpointUnreachableError(f"{self.endpoint} closed the connection before answering {what}.")
        return EndpointUnreachableError(f"{self.endpoint} did not answer {what} within {self.timeout:g} s.")


def _rejection(topic: str, raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("errorMessage") or "no reason given").rstrip(".")
    return f"AWS IoT rejected the request on {topic} ({body.get('statusCode')} {body.get('errorCode')}): {message}."


def parse_parameters(items: list[str]) -> dict[str, str]:
    """``K=V`` strings as a dict; each K once."""
    parameters: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidInputError(f"--parameter {item!r} is not NAME=VALUE.")
        if name in parameters:
            raise InvalidInputError(f"--parameter {name} is given twice.")
        parameters[name] = value
    return parameters


@dataclass(frozen=True)
class Provisioned:
    thing_name: str
    certificate_id: str
    certificate: Path
    key: Path
    device_configuration: dict[str, Any]
    proved: str  # "published" or "connected"

    def as_dict(self) -> dict[str, Any]:
        return {
            "thingName": self.thing_name,
            "certificateId": self.certificate_id,
            "certificate": str(self.certificate),
            "key": str(self.key),
            "deviceConfiguration": self.device_configuration,
            "proved": self.proved,
        }


def provision(
    claim: DeviceIdentity,
    endpoint: Endpoint,
    template: str,
    parameters: Mapping[str, str],
    out: Path,
    *,
    root_ca: Path | None = None,
    client_id: str | None = None,
    use_csr: bool = False,
    key_type: KeyType | str = KeyType.EC_P256,
    options: ConnectOptions | None = None,
    timeout: float = ANSWER_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
) -> Provisioned:
    """Get and save an identity of the device's own through the claim certificate; prove that it connects."""
    topic = provision_topic(template)
    serial = parameters.get("SerialNumber")
    name_hint = check_thing_name(serial) if serial else None
    if name_hint is not None:
        refuse_existing(out, name_hint)
    options = options or ConnectOptions()
    client_id = client_id or f"{template}-{name_hint or secrets.token_hex(4)}"  # the claim policy's client ids
    connection = open_session(claim, endpoint, root_ca=root_ca, client_id=client_id, options=options)
    try:
        requests = Requests(connection, str(endpoint), timeout)
        key = generate_key(key_type) if use_csr else None
        create = CREATE_FROM_CSR if key is not None else CREATE
        requests.subscribe(create)
        requests.subscribe(topic)
        if key is not None:
            made = requests.ask(create, {"certificateSigningRequest": make_csr(name_hint or "device", key).decode()})
            key_pem = private_key_pem(key)
        else:
            made = requests.ask(create, {})
            key_pem = str(made.get("privateKey") or "").encode()
        cert_pem = str(made.get("certificatePem") or "").encode()
        cert = load_certificate(cert_pem, "The certificate AWS IoT answered")
        if key is not None and public_bytes(cert.public_key()) != public_bytes(key):
            raise DeviceKeyMismatchError("AWS IoT answered a certificate for another key; nothing was saved.")
        token = made.get("certificateOwnershipToken")
        answer = requests.ask(topic, {"certificateOwnershipToken": token, "parameters": dict(parameters)})
    finally:
        connection.close()
    thing = str(answer.get("thingName") or "")
    if not thing:
        raise ProvisioningRejectedError(f"The template {template} made no thing; the device has nothing to be.")
    identity = dataclasses.replace(
        load_identity(cert_pem, key_pem, source=f"the certificate AWS IoT made for {thing}"), thing_name=thing
    )
    configuration = answer.get("deviceConfiguration") or {}
    cert_path, key_path, info_path = device_files(out, thing)
    provisioned = Provisioned(
        thing_name=thing,
        certificate_id=str(made.get("certificateId") or ""),
        certificate=cert_path,
        key=key_path,
        device_configuration=configuration if isinstance(configuration, dict) else {},
        proved="",
    )
    write_files(
        out,
        {
            str(cert_path.relative_to(out)): FileSpec(cert_pem),
            str(key_path.relative_to(out)): FileSpec(key_pem, private=True),
            str(info_path.relative_to(out)): FileSpec((json.dumps(provisioned.as_dict(), indent=1) + "\n").encode()),
        },
    )
    proved = prove(identity, endpoint, provisioned.device_configuration, root_ca=root_ca, options=options)
    return dataclasses.replace(provisioned, proved=proved)


def prove(
    identity: DeviceIdentity,
    endpoint: Endpoint,
    configuration: Mapping[str, Any],
    *,
    root_ca: Path | None,
    options: ConnectOptions,
) -> str:
    """Connect with ``identity`` (client id its thing name) and publish one message under the configuration's
    ``topicRoot`` if it names one; ``published`` or ``connected``. Raises the DeviceError if it cannot."""
    root = configuration.get("topicRoot")
    messages = Messages(count=1, topic_root=root) if isinstance(root, str) and root else Messages(count=0)
    result = run_device(identity, endpoint, root_ca=root_ca, messages=messages, options=options)
    result.raise_for_error()
    return result.outcome


def refuse_existing(out: Path, thing: str) -> None:
    existing = [path for path in device_files(out, thing) if path.exists()]
    if existing:
        raise AlreadyExistsError(f"{existing[0]} already exists: {thing} has an identity in {out} already.")
