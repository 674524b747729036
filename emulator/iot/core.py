"""What AWS IoT Core does around each MQTT connection: the broker's hooks.

On connect (AWS-FACTS.md, JITR and JITP):

- a certificate AWS IoT knows: ACTIVE goes on to authorization; PENDING_ACTIVATION under an
  auto-registering CA publishes the registration event again (JITR) or re-runs the template
  (JITP) and drops; INACTIVE, REVOKED and the rest are refused;
- an unknown certificate signed by a registered CA that is ACTIVE with auto-registration, sent
  with its CA certificate in the chain or with SNI: JITP runs the CA's template, JITR registers
  it PENDING_ACTIVATION, publishes ``$aws/events/certificates/registered/<caId>`` and drops the
  connection; anything else is refused;
- authorization evaluates the certificate's policies for ``iot:Connect``, and later for every
  Publish, Subscribe and Receive, with the policy variables of the connection.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from base.certificates import certificate_id
from emulator.iot import events, policy, signed_connections
from emulator.iot.template_runner import JitpProvisioner, ProvisioningError
from emulator.mqtt.broker import BrokerHooks, ConnectDecision, SessionInfo

log = logging.getLogger("jitr.emulator")

ACTIVE, PENDING = "ACTIVE", "PENDING_ACTIVATION"


@dataclass(frozen=True)
class CoreSettings:
    account_id: str = "123456789012"
    region: str = "us-east-1"
    jitp_drops_first_connect: bool = False  # AWS's behaviour here is unconfirmed: clients retry either way


@dataclass(frozen=True)
class Verdict:
    decision: ConnectDecision
    reason: str


class IotCore:
    """The hooks that make the broker behave like AWS IoT Core."""

    def __init__(
        self,
        registry,
        *,
        publish: Callable[[str, bytes], None] | None = None,
        on_message: Callable[[SessionInfo | None, str, bytes], None] | None = None,
        settings: CoreSettings | None = None,
    ) -> None:
        self.registry = registry
        self.publish = publish or (lambda topic, payload: None)  # set to Broker.publish once it runs
        self.forward = on_message
        self.settings = settings or CoreSettings()
        self.templates = JitpProvisioner(registry)
        self._policies: dict[tuple[str, str], policy.Policy] = {}
        self.disconnect_client: Callable[[str], bool] = lambda _client_id: False  # Broker.disconnect_client once up
        self._connected: dict[str, set[str]] = {}  # certificateId -> the client ids connected with it now
        self._connected_lock = threading.Lock()

    def hooks(self) -> BrokerHooks:
        return BrokerHooks(
            on_connect=self.on_connect,
            on_connected=self.on_connected,
            on_publish=self.on_publish,
            on_subscribe=self.on_subscribe,
            can_receive=self.can_receive,
            on_message=self.on_message,
            on_disconnect=self.on_disconnect,
        )

    # -- connect ----------------------------------------------------------------------------------

    def on_connect(self, info: SessionInfo) -> ConnectDecision:
        verdict = self.decide(info)
        log.info("connect client=%s decision=%s reason=%s", info.client_id, verdict.decision.value, verdict.reason)
        return verdict.decision

    def decide(self, info: SessionInfo) -> Verdict:
        if info.transport == "websocket":  # SigV4 checked at the upgrade (signed_connections); IAM decides
            return self._authorize_signed(info)
        if info.certificate is None:
            return Verdict(ConnectDecision.REFUSE, "no client certificate")
        try:
            leaf = x509.load_der_x509_certificate(info.certificate)
        except ValueError:
            return Verdict(ConnectDecision.REFUSE, "client certificate does not parse")
        now = dt.datetime.now(dt.UTC)
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            return Verdict(ConnectDecision.REFUSE, "certificate expired or not yet valid")
        cert_id = certificate_id(leaf)
        known = self.registry.certificate(cert_id)
        if known is None:
            return self._first_connect(info, leaf, cert_id)
        if known.status == PENDING:
            ca = self.registry.ca(known.ca_certificate_id) if known.ca_certificate_id else None
            if ca is None or not ca.auto_registers:
                return Verdict(ConnectDecision.REFUSE, "certificate pending and its CA does not auto-register")
            return self._auto_register(info, leaf, cert_id, ca)
        if known.status != ACTIVE:
            return Verdict(ConnectDecision.REFUSE, f"certificate {known.status}")
        return self._authorize_connect(info, leaf, cert_id, known.arn)

    def _first_connect(self, info: SessionInfo, leaf: x509.Certificate, cert_id: str) -> Verdict:
        ca = self.registry.issuing_ca(leaf)
        if ca is None:
            elsewhere = self.registry.regions_with_issuer(leaf)
            if elsewhere:
                reason = (
                    f"its CA is registered in {', '.join(elsewhere)}, not in {self.registry.region}, the region "
                    "this endpoint serves: register the CA there, or point the device at that region's endpoint"
                )
                log.warning("refused certificate %s: %s", cert_id, reason)
                return Verdict(ConnectDecision.REFUSE, reason)
            return Verdict(ConnectDecision.REFUSE, "issuer is not a registered CA (or the signature does not verify)")
        now = dt.datetime.now(dt.UTC)
        if not ca.certificate.not_valid_before_utc <= now <= ca.certificate.not_valid_after_utc:
            return Verdict(ConnectDecision.REFUSE, "the CA certificate is expired")
        if not ca.auto_registers:
            return Verdict(ConnectDecision.REFUSE, f"CA {ca.status} or auto-registration disabled")
        sent_ca = any(der == ca.certificate.public_bytes(Encoding.DER) for der in info.certificate_chain[1:])
        if ca.mode == "SNI_ONLY" and not info.sni:
            return Verdict(ConnectDecision.REFUSE, "SNI_ONLY CA and the client sent no SNI")
        if not sent_ca and not info.sni:
            return Verdict(ConnectDecision.REFUSE, "chain lacks the CA certificate and no SNI was sent")
        return self._auto_register(info, leaf, cert_id, ca)

    def _auto_register(self, info: SessionInfo, leaf: x509.Certificate, cert_id: str, ca) -> Verdict:
        if ca.provisions:
            try:
                done = self.templates.provision(self._template_of(ca), leaf, ca_certificate_id=ca.id)
            except Exception as exc:  # any failure leaves the certificate pending, as on AWS
                log.warning("JITP failed for certificate %s of CA %s: %s", cert_id, ca.id, exc, exc_info=True)
                return Verdict(ConnectDecision.DROP, f"JITP failed: {exc}")
            if done.status != ACTIVE or self.settings.jitp_drops_first_connect:
                return Verdict(ConnectDecision.DROP, f"JITP provisioned {done.thing_name}, certificate {done.status}")
            device = self.registry.certificate(cert_id)
            return self._authorize_connect(info, leaf, cert_id, device.arn)
        device = self.registry.register_certificate(leaf, ca_certificate_id=ca.id)
        created = self.registry.backend.certificates[cert_id].creation_date  # moto keeps naive UTC
        registered_ms = calendar.timegm(created.utctimetuple()) * 1000 + created.microsecond // 1000
        topic, payload = events.registration_event(
            device.id, ca.id, account_id=self.settings.account_id, registered_ms=registered_ms
        )
        self.publish(topic, payload)
        return Verdict(ConnectDecision.DROP, "JITR: registered PENDING_ACTIVATION, event published")

    def _template_of(self, ca) -> str:
        config = ca.registration_config
        if config.get("templateBody"):
            return config["templateBody"]
        template = self.registry.provisioning_template(config["templateName"])
        if template is None:
            raise ProvisioningError(f"provisioning template {config['templateName']} does not exist")
        return template.body

    def _authorize_connect(self, info: SessionInfo, leaf: x509.Certificate, cert_id: str, cert_arn: str) -> Verdict:
        thing_name: str | None
        if self.registry.is_attached(cert_arn, info.client_id):  # the usual case, found without a scan
            thing_name = info.client_id
        else:
            things = self.registry.things_for(cert_arn)
            thing_name = things[0] if len(things) == 1 else None
        thing = self.registry.thing(thing_name) if thing_name else None
        ctx = policy.RequestContext(
            region=self.settings.region,
            account_id=self.settings.account_id,
            client_id=info.client_id,
            thing_name=thing_name,
            certificate_subject=policy.certificate_attributes(leaf.subject),
            certificate_issuer=policy.certificate_attributes(leaf.issuer),
            thing_type=thing.thing_type_name if thing else None,
            thing_attributes=thing.attributes if thing else {},
        )
        policies = [self._parsed(p) for p in self.registry.policies_for(cert_arn)]
        decision = policy.decide(policies, "iot:Connect", policy.client_arn(ctx, info.client_id), ctx)
        if decision is not policy.Decision.ALLOW:
            return Verdict(ConnectDecision.REFUSE, f"iot:Connect {decision.value} for client {info.client_id}")
        info.attributes.update(principal=cert_id, ctx=ctx, policy_sets=[policies], thing_name=thing_name)
        return Verdict(ConnectDecision.ACCEPT, "authorized")

    def _authorize_signed(self, info: SessionInfo) -> Verdict:
        sets = info.attributes.get("policy_sets")
        if not sets:
            return Verdict(ConnectDecision.REFUSE, "a WebSocket connection without a verified signature")
        ctx = policy.RequestContext(
            region=self.settings.region, account_id=self.settings.account_id, client_id=info.client_id
        )
        if not signed_connections.decide(sets, "iot:Connect", policy.client_arn(ctx, info.client_id), ctx):
            who = info.attributes.get("identity")
            return Verdict(ConnectDecision.REFUSE, f"iot:Connect denied by IAM for {who} as client {info.client_id}")
        info.attributes.update(principal=info.attributes.get("identity"), ctx=ctx)
        return Verdict(ConnectDecision.ACCEPT, "authorized by IAM (SigV4)")

    def _parsed(self, record) -> policy.Policy:
        key = (record.name, record.version_id)
        parsed = self._policies.get(key)
        if parsed is None:
            parsed = self._policies[key] = policy.Policy.parse(record.document, name=record.name)
        return parsed

    # -- after connect: authorization on the broker's loop (no I/O) -------------------------------

    def _allowed(self, info: SessionInfo, action: str, resource: Callable, name: str) -> bool:
        ctx = info.attributes.get("ctx")
        if ctx is None:
            return False
        allowed = signed_connections.decide(info.attributes["policy_sets"], action, resource(ctx, name), ctx)
        if not allowed:
            log.info("deny client=%s action=%s resource=%s", info.client_id, action, name)
        return allowed

    def on_publish(self, info: SessionInfo, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        return self._allowed(info, "iot:Publish", policy.topic_arn, topic)

    def on_subscribe(self, info: SessionInfo, topic_filter: str) -> bool:
        return self._allowed(info, "iot:Subscribe", policy.topicfilter_arn, topic_filter)

    def can_receive(self, info: SessionInfo, topic: str) -> bool:
        return self._allowed(info, "iot:Receive", policy.topic_arn, topic)

    # -- events -----------------------------------------------------------------------------------

    def on_message(self, info: SessionInfo | None, topic: str, payload: bytes) -> None:
        if self.forward is not None:
            self.forward(info, topic, payload)

    def on_connected(self, info: SessionInfo) -> None:
        principal = info.attributes.get("principal")
        if principal:
            with self._connected_lock:
                self._connected.setdefault(principal, set()).add(info.client_id)
        self._presence("connected", info)

    def on_disconnect(self, info: SessionInfo) -> None:
        principal = info.attributes.get("principal")
        if principal:
            with self._connected_lock:
                clients = self._connected.get(principal, set())
                clients.discard(info.client_id)
                if not clients:
                    self._connected.pop(principal, None)
        if "ctx" in info.attributes:  # only sessions that were accepted were ever "connected"
            self._presence("disconnected", info)

    def certificate_changed(self, certificate_id: str, status: str) -> int:
        """A certificate's new status (UpdateCertificate). AWS IoT disconnects every device connected with a
        certificate that leaves ACTIVE ("within a few minutes", UpdateCertificate's reference says; here at
        once); how many connections were closed."""
        if status == ACTIVE:
            return 0
        with self._connected_lock:
            clients = sorted(self._connected.get(certificate_id, ()))
        closed = sum(bool(self.disconnect_client(client)) for client in clients)
        if closed:
            log.info("certificate %s is %s: disconnected %d client(s)", certificate_id, status, closed)
        return closed

    def _presence(self, event_type: str, info: SessionInfo) -> None:
        reason = info.disconnect_reason.value if info.disconnect_reason else None
        topic, payload = events.presence_event(
            event_type,
            client_id=info.client_id,
            session_identifier=info.session_identifier,
            principal=info.attributes.get("principal"),
            ip_address=info.remote_address[0],
            disconnect_reason=reason,
        )
        self.publish(topic, payload)
