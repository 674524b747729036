"""Certificate rotation by CSR over MQTT (``jitr device rotate``), in Device Defender's order.

1. A new key is made on the device. Connected with its current certificate (client id: its thing name), the
   device asks ``$aws/certificates/create-from-csr/json`` for a certificate of that key, then
   ``$aws/provisioning-templates/<rotation template>/provision/json`` with ``ThingName``: the stack's rotation
   hook checks the current certificate is the thing's own, and the template attaches the new certificate to
   the thing, ACTIVE, with the device and rotation policies (``jitr fleet claim --rotation``).
2. The new identity is saved (key 0600) beside, never over, the current one.
3. The new certificate proves it works: the device connects with it and publishes
   ``{"retire": "<current certificate id>"}`` to ``<topicRoot>/<thing>/rotation``.
4. The stack's rotation rule has the old certificate set INACTIVE and detached; the device checks that the
   endpoint now refuses it.

A failure in 1 to 3 leaves the current certificate ACTIVE and untouched: the device keeps working with it.
If the old certificate is still accepted after ``retire_timeout`` seconds, the new identity is saved and
works, and :class:`~device.errors.RotationIncompleteError` says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from base.certificates import certificate_id, load_certificate, load_certificates
from base.files import FileSpec, write_files
from base.keys import KeyType, generate_key, private_key_pem, public_bytes
from base.names import check_thing_name
from device.attempts import Outcome
from device.client import ConnectOptions, Messages, open_session, run_device
from device.endpoint import Endpoint
from device.enroll import device_files, make_csr
from device.errors import DeviceKeyMismatchError, ProvisioningRejectedError, RotationIncompleteError
from device.identity import DeviceIdentity, load_identity
from device.provision import ANSWER_TIMEOUT, CREATE_FROM_CSR, Requests, provision_topic, refuse_existing
from device.tls import client_context
from device.wire import open_connection

RETIRE_TIMEOUT = 30.0  # seconds for the rotation rule to retire the old certificate
PROBE_INTERVAL = 0.5


@dataclass(frozen=True)
class Rotated:
    thing_name: str
    old_certificate_id: str
    new_certificate_id: str
    certificate: Path
    key: Path
    retired: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "thingName": self.thing_name,
            "oldCertificateId": self.old_certificate_id,
            "newCertificateId": self.new_certificate_id,
            "certificate": str(self.certificate),
            "key": str(self.key),
            "oldRetired": self.retired,
        }


def rotate(
    current: DeviceIdentity,
    endpoint: Endpoint,
    template: str,
    out: Path,
    *,
    thing: str | None = None,
    root_ca: Path | None = None,
    key_type: KeyType | str = KeyType.EC_P256,
    options: ConnectOptions | None = None,
    timeout: float = ANSWER_TIMEOUT,
    retire_timeout: float = RETIRE_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Rotated:
    """Rotate ``current`` to a new key and certificate, proved before the old one is retired."""
    thing = check_thing_name(thing or current.thing_name)
    topic = provision_topic(template)
    old_id = certificate_id(load_certificates(current.chain_pem, "the current certificate")[0])
    refuse_existing(out, thing)  # before anything is asked: the new identity never replaces a file
    cert_path, key_path, info_path = device_files(out, thing)
    options = options or ConnectOptions()
    key = generate_key(key_type)
    connection = open_session(current, endpoint, root_ca=root_ca, client_id=thing, options=options)
    try:
        requests = Requests(connection, str(endpoint), timeout)
        requests.subscribe(CREATE_FROM_CSR)
        requests.subscribe(topic)
        made = requests.ask(CREATE_FROM_CSR, {"certificateSigningRequest": make_csr(thing, key).decode()})
        cert_pem = str(made.get("certificatePem") or "").encode()
        cert = load_certificate(cert_pem, "The certificate AWS IoT answered")
        if public_bytes(cert.public_key()) != public_bytes(key):
            raise DeviceKeyMismatchError("AWS IoT answered a certificate for another key; nothing was saved.")
        token = made.get("certificateOwnershipToken")
        answer = requests.ask(topic, {"certificateOwnershipToken": token, "parameters": {"ThingName": thing}})
    finally:
        connection.close()
    if answer.get("thingName") not in (None, thing):
        raise ProvisioningRejectedError(f"The template {template} attached the certificate to another thing.")
    key_pem = private_key_pem(key)
    new_id = str(made.get("certificateId") or certificate_id(cert))
    rotated = Rotated(thing, old_id, new_id, cert_path, key_path, retired=False)
    info = rotated.as_dict() | {"deviceConfiguration": answer.get("deviceConfiguration") or {}}
    write_files(
        out,
        {
            str(cert_path.relative_to(out)): FileSpec(cert_pem),
            str(key_path.relative_to(out)): FileSpec(key_pem, private=True),
            str(info_path.relative_to(out)): FileSpec((json.dumps(info, indent=1) + "\n").encode()),
        },
    )
    configuration = answer.get("deviceConfiguration") or {}
    root = configuration.get("topicRoot") if isinstance(configuration, dict) else None
    if not isinstance(root, str) or not root:
        raise RotationIncompleteError(
            f"The new certificate of {thing} is saved in {out}, but the template {template} names no topicRoot to "
            "ask for the old one's retirement: the old certificate is still ACTIVE."
        )
    new = replace(load_identity(cert_pem, key_pem, source=f"the new certificate of {thing}"), thing_name=thing)
    request = json.dumps({"retire": old_id}).encode()
    proof = run_device(
        new, endpoint, root_ca=root_ca, messages=Messages(count=1, topic=f"{root}/{thing}/rotation", payload=request),
        options=options,
    )  # fmt: skip
    proof.raise_for_error()  # the old certificate has not been touched: the device keeps using it
    if not _refused(current, endpoint, thing, root_ca, options, retire_timeout, sleep, clock):
        raise RotationIncompleteError(
            f"The new certificate of {thing} works and is saved in {out}, but the old one ({old_id[:12]}...) was "
            f"still accepted {retire_timeout:g} s later: see the stack's RotationRetireFunction log."
        )
    return replace(rotated, retired=True)


def _refused(
    identity: DeviceIdentity,
    endpoint: Endpoint,
    client_id: str,
    root_ca: Path | None,
    options: ConnectOptions,
    seconds: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> bool:
    """Whether the endpoint refuses ``identity`` within ``seconds`` (it is retired), trying every half second."""
    context = client_context(identity, endpoint, root_ca)
    deadline = clock() + seconds
    while True:
        connection, outcome, _detail = open_connection(context, endpoint, client_id, options, clock)
        if connection is not None:
            connection.close()
        if outcome is Outcome.REFUSED:
            return True
        if clock() >= deadline:
            return False
        sleep(PROBE_INTERVAL)
