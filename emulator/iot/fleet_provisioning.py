"""Fleet provisioning by claim: the MQTT API AWS IoT answers itself (AWS-FACTS.md, fleet-provision-api).

A device connected with a claim certificate publishes

- ``$aws/certificates/create/json`` ``{}``: CreateKeysAndCertificate, answered on ``.../accepted`` with
  ``{certificateId, certificatePem, privateKey, certificateOwnershipToken}``;
- ``$aws/certificates/create-from-csr/json`` ``{certificateSigningRequest}``: CreateCertificateFromCsr,
  answered with ``{certificateId, certificatePem, certificateOwnershipToken}``;
- ``$aws/provisioning-templates/<name>/provision/json`` ``{certificateOwnershipToken, parameters}``:
  RegisterThing, answered with ``{deviceConfiguration, thingName}``;

each failure on ``.../rejected`` as ``{statusCode, errorCode, errorMessage}``. The broker sends the answers
to the requesting connection alone, and only if it subscribes (and its policy lets it receive them): the
claim certificate's policy is enforced like any other.

The new certificate is PENDING_ACTIVATION and AWS-issued (:mod:`emulator.iot.aws_issuer`) until
RegisterThing applies the template, which must be of type FLEET_PROVISIONING and enabled. The ownership
token is bound to that certificate, single-use (spent by the RegisterThing that succeeds; a refused one
leaves it usable, so a device can retry after a hook timed out) and expires (AWS does not publish after how
long; an hour here, configurable). Tokens are kept only as SHA-256 hashes, in memory: a restarted emulator
has forgotten them, and the device starts again with a new certificate.

A template's ``preProvisioningHook`` Lambda (which must allow ``iot.amazonaws.com`` to invoke it) gets
``{claimCertificateId, certificateId, certificatePem, templateArn, clientId, parameters}`` and must answer
``{"allowProvisioning": true}`` (with optional ``parameterOverrides``, merged over the device's parameters)
within 5 s, else the request is rejected.

AWS documents only the rejected payload's shape and the code ``InvalidCertificateOwnershipToken``; the
other error codes here (``InvalidPayload``, ``ResourceNotFound``, ``InvalidRequest``, ``AccessDenied``,
``InternalError``) are the emulator's. CBOR topics (``.../cbor``) are not emulated: they are logged and
answered with nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from base.certificates import certificate_id, to_pem
from emulator.iot.aws_issuer import aws_issuer, load_request
from emulator.iot.template_runner import ProvisioningError, TemplateRunner, evaluate, parse_template, resolve_parameters
from emulator.mqtt.hooks import SessionInfo
from emulator.store.device_certificates import PENDING_ACTIVATION, store_certificate
from emulator.store.errors import InvalidRequest

log = logging.getLogger("jitr.emulator.fleet")

CREATE = "$aws/certificates/create/"
CREATE_FROM_CSR = "$aws/certificates/create-from-csr/"
TEMPLATE_TOPIC = re.compile(r"^\$aws/provisioning-templates/(?P<name>[^/]+)/provision/(?P<format>json|cbor)$")
CERTIFICATE_ID_PARAMETER = "AWS::IoT::Certificate::Id"
HOOK_TIMEOUT = 5.0  # seconds: AWS's hard limit for a pre-provisioning hook's answer
HOOK_PRINCIPAL = "iot.amazonaws.com"
TOKEN_TTL = 3600.0  # seconds an ownership token lasts (AWS does not say; configurable)
MAX_PAYLOAD = 128 * 1024  # AWS IoT's MQTT message size limit
FLEET_PROVISIONING = "FLEET_PROVISIONING"
INVALID_TOKEN = "InvalidCertificateOwnershipToken"


class Rejected(Exception):
    """A request AWS IoT answers on ``.../rejected``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.payload = {"statusCode": status, "errorCode": code, "errorMessage": message}


@dataclass(frozen=True)
class _Token:
    certificate_id: str
    expires: float  # time.monotonic()


class OwnershipTokens:
    """Certificate ownership tokens, kept as hashes: issued with a certificate, spent once, expiring."""

    def __init__(self, ttl: float = TOKEN_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def issue(self, cert_id: str) -> str:
        token = secrets.token_urlsafe(96)
        now = self._clock()
        with self._lock:
            self._tokens = {key: held for key, held in self._tokens.items() if held.expires > now}  # drop expired
            self._tokens[self._hash(token)] = _Token(cert_id, now + self.ttl)
        return token

    def certificate_of(self, token: str) -> str:
        """The id of the certificate ``token`` was issued with; Rejected if it is unknown, spent or expired."""
        with self._lock:
            held = self._tokens.get(self._hash(token))
        if held is None or held.expires <= self._clock():
            raise Rejected(400, INVALID_TOKEN, "Certificate ownership token is invalid or expired.")
        return held.certificate_id

    def spend(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(self._hash(token), None)


def _request(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise Rejected(400, "InvalidPayload", "The request is larger than 128 KB.")
    try:
        body = json.loads(payload or b"{}")
    except ValueError:
        raise Rejected(400, "InvalidPayload", "The request is not valid JSON.") from None
    if not isinstance(body, dict):
        raise Rejected(400, "InvalidPayload", "The request must be a JSON object.")
    return body


def _parameters(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise Rejected(400, "InvalidPayload", f"{what} must map names to strings.")
    return dict(value)


class FleetProvisioning:
    """The broker's ``on_request`` hook for one region: the fleet provisioning MQTT API."""

    def __init__(self, registry, *, invoke: Callable[..., Any] | None = None, tokens: OwnershipTokens | None = None):
        self.registry = registry
        self.invoke = invoke  # LambdaRuntime.invoke: (arn, event, principal=, source_arn=) -> result
        self.tokens = tokens or OwnershipTokens()
        self._hooks = ThreadPoolExecutor(4, thread_name_prefix="provisioning-hook")

    def close(self) -> None:
        self._hooks.shutdown(wait=False, cancel_futures=True)

    def answer(self, info: SessionInfo, topic: str, payload: bytes) -> list[tuple[str, bytes]] | None:
        """The answers to a publish on ``topic``, or None if it is not a request of this API."""
        operation = self._operation(topic)
        if operation is None:
            return None
        if topic.endswith("/cbor"):
            log.warning("client=%s asked %s in CBOR, which the emulator does not speak", info.client_id, topic)
            return []
        try:
            answer = operation(info, _request(payload))
        except Rejected as rejected:
            log.info("client=%s %s rejected: %s", info.client_id, topic, rejected.payload["errorMessage"])
            return [(f"{topic}/rejected", json.dumps(rejected.payload).encode())]
        except Exception:
            log.exception("client=%s %s failed", info.client_id, topic)
            failure = {"statusCode": 500, "errorCode": "InternalError", "errorMessage": "Internal error."}
            return [(f"{topic}/rejected", json.dumps(failure).encode())]
        return [(f"{topic}/accepted", json.dumps(answer).encode())]

    def _operation(self, topic: str) -> Callable[[SessionInfo, dict[str, Any]], dict[str, Any]] | None:
        if topic in (f"{CREATE}json", f"{CREATE}cbor"):
            return self.create_keys_and_certificate
        if topic in (f"{CREATE_FROM_CSR}json", f"{CREATE_FROM_CSR}cbor"):
            return self.create_certificate_from_csr
        match = TEMPLATE_TOPIC.match(topic)
        if match:
            name = match["name"]
            return lambda info, body: self.register_thing(info, name, body)
        return None

    # -- the certificate ------------------------------------------------------------------------------

    def _store(self, cert: x509.Certificate) -> tuple[str, str]:
        pem = to_pem(cert).decode()
        registry = self.registry
        with registry.state.lock:
            store_certificate(registry.backend, pem, cert, status=PENDING_ACTIVATION)
        return certificate_id(cert), pem

    def create_keys_and_certificate(self, info: SessionInfo, body: dict[str, Any]) -> dict[str, Any]:
        """A key pair and certificate made by AWS IoT: RSA 2048, as AWS's CreateKeysAndCertificate makes."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = aws_issuer().issue(key.public_key(), now=dt.datetime.now(dt.UTC))
        cert_id, pem = self._store(cert)
        private = key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption()).decode()
        log.info("client=%s CreateKeysAndCertificate: certificate %s", info.client_id, cert_id)
        return {
            "certificateId": cert_id,
            "certificatePem": pem,
            "privateKey": private,
            "certificateOwnershipToken": self.tokens.issue(cert_id),
        }

    def create_certificate_from_csr(self, info: SessionInfo, body: dict[str, Any]) -> dict[str, Any]:
        csr_pem = body.get("certificateSigningRequest")
        if not isinstance(csr_pem, str) or not csr_pem:
            raise Rejected(400, "InvalidPayload", "certificateSigningRequest must be a PEM CSR.")
        try:
            csr = load_request(csr_pem, "certificateSigningRequest")
        except InvalidRequest as exc:
            raise Rejected(400, "InvalidPayload", str(exc)) from None
        cert = aws_issuer().sign(csr, now=dt.datetime.now(dt.UTC))
        cert_id, pem = self._store(cert)
        log.info("client=%s CreateCertificateFromCsr: certificate %s", info.client_id, cert_id)
        token = self.tokens.issue(cert_id)
        return {"certificateId": cert_id, "certificatePem": pem, "certificateOwnershipToken": token}

    # -- RegisterThing --------------------------------------------------------------------------------

    def register_thing(self, info: SessionInfo, name: str, body: dict[str, Any]) -> dict[str, Any]:
        token = body.get("certificateOwnershipToken")
        if not isinstance(token, str) or not token:
            raise Rejected(400, INVALID_TOKEN, "Certificate ownership token cannot be empty.")
        parameters = _parameters(body.get("parameters"), "parameters")
        template = self.registry.provisioning_template(name)
        if template is None:
            raise Rejected(404, "ResourceNotFound", f"The provisioning template {name} does not exist.")
        if template.type != FLEET_PROVISIONING:
            raise Rejected(400, "InvalidRequest", f"The provisioning template {name} is not a fleet provisioning one.")
        if not template.enabled:
            raise Rejected(400, "InvalidRequest", f"The provisioning template {name} is disabled.")
        cert_id = self.tokens.certificate_of(token)
        device = self.registry.certificate(cert_id)
        if device is None or device.status != PENDING_ACTIVATION:
            raise Rejected(400, INVALID_TOKEN, "The certificate of this token is gone or already in use.")
        if template.pre_provisioning_hook:
            parameters = self._ask_hook(info, template, device, parameters)
        document = parse_template(template.body)
        try:
            values = resolve_parameters(document, {**parameters, CERTIFICATE_ID_PARAMETER: cert_id})
        except ProvisioningError as exc:
            raise Rejected(400, "InvalidRequest", str(exc)) from None
        try:
            applied = TemplateRunner(self.registry.backend, self.registry.state.lock).run(document, values)
        except (ProvisioningError, InvalidRequest) as exc:
            raise Rejected(400, "InvalidRequest", f"The template could not be applied: {exc}") from None
        if applied.certificate is not None and applied.certificate.certificate_id != cert_id:
            raise Rejected(400, "InvalidRequest", f"The template must use {{'Ref': '{CERTIFICATE_ID_PARAMETER}'}}.")
        self.tokens.spend(token)
        thing = applied.thing.thing_name if applied.thing is not None else None
        configuration = evaluate(document.get("DeviceConfiguration") or {}, values, document.get("Mappings"))
        log.info("client=%s RegisterThing %s: thing %s, certificate %s", info.client_id, name, thing, cert_id)
        answer: dict[str, Any] = {"deviceConfiguration": configuration}
        if thing is not None:
            answer["thingName"] = thing
        return answer

    def _ask_hook(self, info: SessionInfo, template, device, parameters: dict[str, str]) -> dict[str, str]:
        """The pre-provisioning hook's verdict within HOOK_TIMEOUT: the parameters to provision with."""
        arn = template.pre_provisioning_hook["targetArn"]
        event = {
            "claimCertificateId": info.attributes.get("principal"),
            "certificateId": device.id,
            "certificatePem": device.pem,
            "templateArn": template.arn,
            "clientId": info.client_id,
            "parameters": parameters,
        }
        if self.invoke is None:
            raise Rejected(500, "InternalError", "The pre-provisioning hook cannot be invoked here.")
        future = self._hooks.submit(self.invoke, arn, event, principal=HOOK_PRINCIPAL, source_arn=template.arn)
        try:
            verdict = future.result(timeout=HOOK_TIMEOUT)
        except FutureTimeout:
            raise Rejected(
                403, "AccessDenied", f"The pre-provisioning hook did not answer within {HOOK_TIMEOUT:g} s."
            ) from None
        except Exception as exc:
            log.info("pre-provisioning hook %s failed: %s", arn, exc)
            raise Rejected(403, "AccessDenied", f"The pre-provisioning hook failed: {exc}") from None
        if not isinstance(verdict, dict) or not isinstance(verdict.get("allowProvisioning"), bool):
            raise Rejected(403, "AccessDenied", "The pre-provisioning hook's answer has no boolean allowProvisioning.")
        if not verdict["allowProvisioning"]:
            raise Rejected(403, "AccessDenied", "The pre-provisioning hook refused the request.")
        overrides = verdict.get("parameterOverrides")
        try:
            return {**parameters, **_parameters(overrides, "The hook's parameterOverrides")}
        except Rejected:
            raise Rejected(403, "AccessDenied", "The hook's parameterOverrides must map names to strings.") from None
