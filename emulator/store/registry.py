"""The typed Python side of the emulator's AWS IoT state, for the broker and the rules engine.

They read and change what the API endpoint serves through :class:`Registry` (from
``EmulatorApi.registry(account, region)``) instead of reaching into moto: snapshots come back as
frozen dataclasses, and changes take the same lock as the API handlers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from emulator.store.backends import iot_arn, iot_backend, iot_backends_in_use
from emulator.store.ca_certificates import ACTIVE, DEFAULT, DISABLE, ENABLE, ca_x509
from emulator.store.device_certificates import (
    PENDING_ACTIVATION,
    register_device_certificate,
)
from emulator.store.errors import CertificateValidation
from emulator.store.records import ProvisioningTemplate
from emulator.store.state import RegionState


@dataclass(frozen=True)
class CaCertificate:
    """A registered CA."""

    id: str
    arn: str
    pem: str
    certificate: x509.Certificate
    status: str
    auto_registration_status: str
    mode: str
    registration_config: Mapping[str, str]

    @property
    def auto_registers(self) -> bool:
        """True when an unknown device certificate it signed is registered on connect (JITR/JITP)."""
        return self.status == ACTIVE and self.auto_registration_status == ENABLE

    @property
    def provisions(self) -> bool:
        """True when auto-registration runs a template (JITP) rather than publishing an event (JITR)."""
        return bool(self.registration_config.get("templateBody") or self.registration_config.get("templateName"))


@dataclass(frozen=True)
class DeviceCertificate:
    """A device certificate known to AWS IoT."""

    id: str
    arn: str
    pem: str
    status: str
    ca_certificate_id: str | None


@dataclass(frozen=True)
class Policy:
    """An IoT policy; ``document`` is the parsed default version."""

    name: str
    arn: str
    document: dict[str, Any]
    version_id: str


@dataclass(frozen=True)
class Thing:
    name: str
    arn: str
    attributes: dict[str, str]
    thing_type_name: str | None


@dataclass(frozen=True)
class TopicRule:
    """A topic rule as CreateTopicRule stored it; ``actions`` are AWS's action objects."""

    name: str
    arn: str
    sql: str
    sql_version: str
    actions: list[dict[str, Any]]
    error_action: dict[str, Any] | None
    disabled: bool
    topic_pattern: str | None


def _pem(certificate: x509.Certificate | bytes | str) -> str:
    """PEM text of a certificate given parsed, as DER (what a TLS peer sends) or as PEM."""
    if isinstance(certificate, str):
        return certificate
    if isinstance(certificate, bytes) and certificate.lstrip().startswith(b"-----"):
        return certificate.decode()
    if isinstance(certificate, bytes):
        try:
            certificate = x509.load_der_x509_certificate(certificate)
        except ValueError:
            raise CertificateValidation("The certificate is neither PEM nor DER.") from None
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _ca(record) -> CaCertificate:
    return CaCertificate(
        id=record.certificate_id,
        arn=record.arn,
        pem=record.certificate_pem,
        certificate=ca_x509(record),
        status=record.status,
        auto_registration_status=getattr(record, "auto_registration_status", DISABLE),
        mode=getattr(record, "certificate_mode", DEFAULT),
        registration_config=dict(record.registration_config or {}),
    )


def _device(record) -> DeviceCertificate:
    return DeviceCertificate(
        id=record.certificate_id,
        arn=record.arn,
        pem=record.certificate_pem,
        status=record.status,
        ca_certificate_id=record.ca_certificate_id,
    )


def _policy(record) -> Policy:
    document = record.document
    if isinstance(document, str | bytes):
        document = json.loads(document)
    return Policy(name=record.name, arn=record.arn, document=document, version_id=str(record.default_version_id))


def _rule(record) -> TopicRule:
    return TopicRule(
        name=record.rule_name,
        arn=record.arn,
        sql=record.sql,
        sql_version=record.aws_iot_sql_version,
        actions=list(record.actions),
        error_action=record.error_action or None,
        disabled=record.rule_disabled,
        topic_pattern=record.topic_pattern,
    )


class Registry:
    """AWS IoT state of one account in one region, as the broker and the rules engine need it."""

    def __init__(self, state: RegionState, account: str, region: str) -> None:
        self.state = state
        self.account = account
        self.region = region

    @property
    def backend(self):
        """moto's IoTBackend (things, policies, attachments), for what the helpers below do not cover."""
        return iot_backend(self.account, self.region)

    # -- CAs ----------------------------------------------------------------------------------------

    def ca(self, ca_certificate_id: str) -> CaCertificate | None:
        record = self.backend.ca_certificates.get(ca_certificate_id)
        return _ca(record) if record is not None else None

    def cas(self) -> list[CaCertificate]:
        return [_ca(record) for record in list(self.backend.ca_certificates.values())]

    def issuing_ca(self, cert: x509.Certificate) -> CaCertificate | None:
        """The registered CA whose key signed ``cert`` (ACTIVE ones first), or None."""
        candidates = [ca for ca in self.cas() if ca.certificate.subject == cert.issuer]
        for ca in sorted(candidates, key=lambda ca: ca.status != ACTIVE):
            try:
                cert.verify_directly_issued_by(ca.certificate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ca
        return None

    def regions_with_issuer(self, cert: x509.Certificate) -> list[str]:
        """The other regions of the account where a CA that signed ``cert`` is registered: a device pointed
        at this region's endpoint with a CA registered elsewhere is refused, as on AWS, and this says why."""
        found = []
        for region, backend in sorted(iot_backends_in_use(self.account).items()):
            if region == self.region:
                continue
            for record in list(backend.ca_certificates.values()):
                try:
                    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(record.certificate_pem.encode()))
                except (ValueError, TypeError, InvalidSignature):
                    continue
                found.append(region)
                break
        return found

    # -- device certificates ------------------------------------------------------------------------

    def certificate(self, certificate_id: str) -> DeviceCertificate | None:
        record = self.backend.certificates.get(certificate_id)
        return _device(record) if record is not None else None

    def register_certificate(
        self,
        certificate: x509.Certificate | bytes | str,
        *,
        ca_certificate_id: str,
        status: str = PENDING_ACTIVATION,
    ) -> DeviceCertificate:
        """Register a device certificate (parsed, DER or PEM) under its CA, JITR's first step; idempotent."""
        with self.state.lock:
            record = register_device_certificate(
                self.backend, _pem(certificate), ca_certificate_id=ca_certificate_id, status=status
            )
            return _device(record)

    # -- principals, policies, things -----------------------------------------------------------------

    def policies_for(self, principal_arn: str) -> list[Policy]:
        """The policies attached to a principal (a certificate ARN); their order carries no meaning.

        A fleet has many more attachments than policies: each policy's attachment is then looked up, rather
        than every attachment of every certificate scanned on each connect.
        """
        backend = self.backend
        attached = backend.principal_policies
        if len(backend.policies) < len(attached):
            found = [attached.get((principal_arn, name)) for name in list(backend.policies)]
            return [_policy(pair[1]) for pair in found if pair is not None]
        snapshot = list(attached.items())  # a snapshot: API threads may be attaching
        return [_policy(policy) for (target, _name), (_principal, policy) in snapshot if target == principal_arn]

    def is_attached(self, principal_arn: str, thing_name: str) -> bool:
        """Whether the thing is attached to the principal (a certificate ARN)."""
        return (principal_arn, thing_name) in self.backend.principal_things

    def things_for(self, principal_arn: str) -> list[str]:
        """The names of the things attached to a principal (a certificate ARN)."""
        return self.backend.principal_things.things_of(principal_arn)

    def thing(self, name: str) -> Thing | None:
        record = self.backend.things.get(iot_arn(self.region, self.account, f"thing/{name}"))
        if record is None:
            return None
        thing_type = record.thing_type.thing_type_name if record.thing_type else None
        return Thing(
            name=record.thing_name, arn=record.arn, attributes=dict(record.attributes), thing_type_name=thing_type
        )

    # -- provisioning templates, topic rules --------------------------------------------------------

    def provisioning_template(self, name: str) -> ProvisioningTemplate | None:
        return self.state.templates.get(name)

    def topic_rules(self, *, include_disabled: bool = False) -> list[TopicRule]:
        """The topic rules CreateTopicRule registered, enabled ones only unless asked."""
        rules = [_rule(record) for record in list(self.backend.rules.values())]
        return [rule for rule in rules if include_disabled or not rule.disabled]

    def topic_rule(self, name: str) -> TopicRule | None:
        record = self.backend.rules.get(name)
        return _rule(record) if record is not None else None
