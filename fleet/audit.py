"""``jitr audit``'s checks: pure functions from what the account holds to findings.

Device Defender's audit checks by their names (AWS-FACTS.md, device-defender-audit-checks), with Device
Defender's severities, and three of the kit's own (``JITR_...`` / ``THING_...``): each :class:`Finding`
says which check, how bad, which resource, why and how to fix it. Reading the account is
:mod:`fleet.audit_scan`; nothing here makes a call.

What counts as a finding where Device Defender's wording leaves room:

- expiring: an ACTIVE certificate whose notAfter is within ``days`` (30 by default), or past;
- key quality: RSA under 2048 bits, an EC curve other than P-256/P-384/P-521, or any other key type;
- shared: one certificate attached to more than one thing;
- overly permissive: an Allow statement whose action is ``*`` or ``iot:*``, or that allows an MQTT action
  (Connect, Publish, Subscribe, Receive, RetainPublish) on every resource of its kind (``*``, ``client/*``,
  ``topic/*``, ``topicfilter/*``, ``topic/#``...);
- potential misconfiguration: a Deny statement on a topic or topic filter with an MQTT wildcard (``+``,
  ``#``), which IoT policies read as plain characters, so the Deny is narrower than it looks;
- revoked (against the CRLs given): an ACTIVE device certificate whose serial its issuer's CRL lists; an
  ACTIVE CA registration whose certificate the CRL of its own issuer lists; ACTIVE device certificates
  issued by an intermediate CA that a CRL lists (one finding per intermediate, with the count);
- logging: AWS IoT logging (v2) never configured, all logs disabled, or the default level DISABLED;
- the kit's: a certificate PENDING_ACTIVATION longer than ``pending_minutes`` (a JITR activation or a
  fleet provisioning request that never completed), an ACTIVE CA with auto-registration on and neither a
  JITP template nor a topic rule on its registration events, a thing without a certificate.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

CRITICAL, HIGH, MEDIUM, LOW = "CRITICAL", "HIGH", "MEDIUM", "LOW"
SEVERITY_ORDER = {CRITICAL: 0, HIGH: 1, MEDIUM: 2, LOW: 3}

CA_EXPIRING = "CA_CERTIFICATE_EXPIRING_CHECK"
DEVICE_EXPIRING = "DEVICE_CERTIFICATE_EXPIRING_CHECK"
CA_KEY_QUALITY = "CA_CERTIFICATE_KEY_QUALITY_CHECK"
DEVICE_KEY_QUALITY = "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK"
DEVICE_SHARED = "DEVICE_CERTIFICATE_SHARED_CHECK"
POLICY_PERMISSIVE = "IOT_POLICY_OVERLY_PERMISSIVE_CHECK"
POLICY_MISCONFIGURED = "IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK"
REVOKED_CA_ACTIVE = "REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK"
REVOKED_DEVICE_ACTIVE = "REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK"
INTERMEDIATE_REVOKED = "INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK"
LOGGING_DISABLED = "LOGGING_DISABLED_CHECK"
PENDING_STUCK = "JITR_PENDING_ACTIVATION_CHECK"
CA_UNHANDLED = "CA_AUTO_REGISTRATION_UNHANDLED_CHECK"
THING_WITHOUT_CERTIFICATE = "THING_WITHOUT_CERTIFICATE_CHECK"

SEVERITY = {
    CA_EXPIRING: MEDIUM,
    DEVICE_EXPIRING: MEDIUM,
    CA_KEY_QUALITY: CRITICAL,
    DEVICE_KEY_QUALITY: CRITICAL,
    DEVICE_SHARED: CRITICAL,
    POLICY_PERMISSIVE: CRITICAL,
    POLICY_MISCONFIGURED: MEDIUM,
    REVOKED_CA_ACTIVE: CRITICAL,
    REVOKED_DEVICE_ACTIVE: MEDIUM,
    INTERMEDIATE_REVOKED: CRITICAL,
    LOGGING_DISABLED: LOW,
    PENDING_STUCK: MEDIUM,
    CA_UNHANDLED: MEDIUM,
    THING_WITHOUT_CERTIFICATE: LOW,
}
CHECKS = tuple(SEVERITY)

MIN_RSA_BITS = 2048
GOOD_CURVES = ("secp256r1", "secp384r1", "secp521r1")
MQTT_ACTIONS = {"iot:connect", "iot:publish", "iot:subscribe", "iot:receive", "iot:retainpublish"}
EVERYTHING_RE = re.compile(r"^(\*|arn:aws[a-z-]*:iot:[^:]*:[^:]*:(\*|(client|topic|topicfilter)/(\*|#)))$")
TOPIC_RE = re.compile(r":(topic|topicfilter)/(?P<topic>.*)$")
REGISTRATION_TOPIC = "$aws/events/certificates/registered/"


@dataclass(frozen=True)
class Finding:
    check: str
    resource_type: str
    resource: str
    why: str
    fix: str

    @property
    def severity(self) -> str:
        return SEVERITY[self.check]

    def as_dict(self) -> dict[str, str]:
        return {
            "check": self.check,
            "severity": self.severity,
            "resourceType": self.resource_type,
            "resource": self.resource,
            "why": self.why,
            "fix": self.fix,
        }


# -- certificates -----------------------------------------------------------------------------------


def key_problem(cert: x509.Certificate) -> str | None:
    """Why the certificate's key is weak, or None."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return None if key.key_size >= MIN_RSA_BITS else f"its RSA key has {key.key_size} bits (at least 2048)"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return None if key.curve.name in GOOD_CURVES else f"its EC key is on {key.curve.name}"
    return f"its key is a {type(key).__name__}"


def expiry_problem(cert: x509.Certificate, now: dt.datetime, days: int) -> str | None:
    left = cert.not_valid_after_utc - now
    if left <= dt.timedelta(0):
        return f"it expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    if left <= dt.timedelta(days=days):
        return f"it expires on {cert.not_valid_after_utc:%Y-%m-%d}, in {left.days} days"
    return None


@dataclass(frozen=True)
class _Kind:
    """What the three certificate checks say of one kind of certificate (device or CA)."""

    resource_type: str
    label: str
    expiring: str
    weak: str
    revoked: str
    expiring_fix: str
    weak_fix: str
    still_active: str


_DEVICE = _Kind(
    "DeviceCertificate", "device", DEVICE_EXPIRING, DEVICE_KEY_QUALITY, REVOKED_DEVICE_ACTIVE,
    "Rotate it (jitr device rotate) before it expires, then retire the old one.",
    "Rotate it to an EC P-256 (or RSA 2048+) key; revoke the old certificate.",
    "AWS IoT still has it ACTIVE",
)  # fmt: skip
_CA = _Kind(
    "CaCertificate", "CA", CA_EXPIRING, CA_KEY_QUALITY, REVOKED_CA_ACTIVE,
    "Register its successor (jitr ca register) and move devices to it before it expires.",
    "Make a CA with a strong key (jitr ca init), register it, and retire this one.",
    "its registration is ACTIVE",
)  # fmt: skip


def _certificate_findings(
    kind: _Kind, resource: str, cert: x509.Certificate, revoke_fix: str, *, now: dt.datetime, days: int, crls: CrlIndex
) -> list[Finding]:
    """Expiry, key quality and revocation of one ACTIVE certificate."""
    found = []
    for check, problem, fix in (
        (kind.expiring, expiry_problem(cert, now, days), kind.expiring_fix),
        (kind.weak, key_problem(cert), kind.weak_fix),
    ):
        if problem:
            found.append(
                Finding(check, kind.resource_type, resource, f"An ACTIVE {kind.label} certificate: {problem}.", fix)
            )
    revoked = crls.revoked(cert)
    if revoked:
        why = f"Its serial {cert.serial_number:x} is on {revoked}'s CRL, and {kind.still_active}."
        found.append(Finding(kind.revoked, kind.resource_type, resource, why, revoke_fix))
    return found


def device_certificate_findings(
    certificate_id: str,
    cert: x509.Certificate,
    *,
    now: dt.datetime,
    days: int,
    crls: CrlIndex,
) -> list[Finding]:
    """The findings of one ACTIVE device certificate, from its PEM."""
    fix = (
        f"aws iot update-certificate --certificate-id {certificate_id} --new-status REVOKED (or jitr ca revoke --aws)."
    )
    return _certificate_findings(_DEVICE, certificate_id, cert, fix, now=now, days=days, crls=crls)


def ca_certificate_findings(
    ca: Mapping[str, Any], cert: x509.Certificate, *, now: dt.datetime, days: int, crls: CrlIndex, handled: bool
) -> list[Finding]:
    """The findings of one registered CA (DescribeCACertificate's description), ACTIVE ones only."""
    ca_id = str(ca["certificateId"])
    if ca.get("status") != "ACTIVE":
        return []
    fix = (
        f"aws iot update-ca-certificate --certificate-id {ca_id} --new-status INACTIVE "
        "--new-auto-registration-status DISABLE (or jitr ca revoke --aws)."
    )
    found = _certificate_findings(_CA, ca_id, cert, fix, now=now, days=days, crls=crls)
    if ca.get("autoRegistrationStatus") == "ENABLE" and not handled:
        found.append(
            Finding(CA_UNHANDLED, "CaCertificate", ca_id,
                    "Auto-registration is on, but no JITP template and no topic rule on its registration events: "
                    "its devices would stay PENDING_ACTIVATION.",
                    "Deploy the stack for it (./deploy.sh), or register it with a JITP template (jitr ca register "
                    "--jitp), or turn auto-registration off.")
        )  # fmt: skip
    return found


def ca_handled(ca: Mapping[str, Any], rule_sqls: Iterable[str]) -> bool:
    """Whether a CA's auto-registered certificates go anywhere: a JITP template, or a rule on its events."""
    config = ca.get("registrationConfig") or {}
    if config.get("templateBody") or config.get("templateName"):
        return True
    topics = (REGISTRATION_TOPIC + str(ca["certificateId"]), f"{REGISTRATION_TOPIC}+", f"{REGISTRATION_TOPIC}#")
    return any(topic in sql for sql in rule_sqls for topic in topics)


def pending_finding(summary: Mapping[str, Any], *, now: dt.datetime, pending_minutes: int) -> Finding | None:
    """A certificate PENDING_ACTIVATION longer than ``pending_minutes`` (ListCertificates' summary)."""
    if summary.get("status") != "PENDING_ACTIVATION":
        return None
    created = summary.get("creationDate")
    if not isinstance(created, dt.datetime):
        return None
    created = created if created.tzinfo else created.replace(tzinfo=dt.UTC)
    age = now - created
    if age < dt.timedelta(minutes=pending_minutes):
        return None
    minutes = int(age.total_seconds() // 60)
    return Finding(
        PENDING_STUCK, "DeviceCertificate", str(summary["certificateId"]),
        f"PENDING_ACTIVATION for {minutes} minutes: its JITR activation (or a fleet provisioning request) never "
        "completed, and AWS IoT refuses the device until it does.",
        "Read the activation function's log for the certificate id (a refused or failed decision); a certificate "
        "nobody will register can be deleted.",
    )  # fmt: skip


def shared_finding(certificate_id: str, things: list[str]) -> Finding | None:
    if len(things) < 2:
        return None
    shown = ", ".join(sorted(things)[:5]) + (" ..." if len(things) > 5 else "")
    return Finding(
        DEVICE_SHARED, "DeviceCertificate", certificate_id,
        f"One certificate is attached to {len(things)} things ({shown}): whoever holds its key is each of them.",
        "Give each device its own certificate; detach this one from all but its own thing.",
    )  # fmt: skip


def thing_finding(thing: str) -> Finding:
    return Finding(
        THING_WITHOUT_CERTIFICATE, "Thing", thing, "The thing has no certificate attached: no device can be it.",
        "Delete it if it is left over (jitr fleet reset), or attach its device's certificate.",
    )  # fmt: skip


def intermediate_finding(issuer: str, count: int) -> Finding:
    return Finding(
        INTERMEDIATE_REVOKED, "CaCertificate", issuer,
        f"{count} ACTIVE device certificates were issued by a CA certificate that its issuer's CRL revokes.",
        "Revoke the devices' certificates in AWS IoT (jitr ca revoke --aws on the intermediate sets its "
        "registration INACTIVE) and re-issue them under a new intermediate.",
    )  # fmt: skip


# -- policies, logging --------------------------------------------------------------------------------


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def policy_findings(name: str, document: str) -> list[Finding]:
    """The findings of one IoT policy's default version."""
    try:
        parsed = json.loads(document)
    except ValueError:
        return []
    statements = _as_list(parsed.get("Statement", [])) if isinstance(parsed, dict) else []
    found: list[Finding] = []
    permissive = misconfigured = False
    for statement in statements:
        if not isinstance(statement, dict):
            continue
        actions = {str(a).lower() for a in _as_list(statement.get("Action", []))}
        resources = [str(r) for r in _as_list(statement.get("Resource", []))]
        if statement.get("Effect") == "Allow" and not permissive:
            broad = actions & {"*", "iot:*"}
            everything = [r for r in resources if EVERYTHING_RE.match(r)]
            if broad or (actions & MQTT_ACTIONS and everything):
                what = "iot:*" if broad else f"{', '.join(sorted(actions & MQTT_ACTIONS))} on {everything[0]}"
                why = f"It allows {what}: any device with it can act as any other."
                found.append(
                    Finding(POLICY_PERMISSIVE, "Policy", name, why,
                            "Scope it with policy variables: client/${iot:Connection.Thing.ThingName} and "
                            "topics under the thing's own name (the stack's device policy does).")
                )  # fmt: skip
                permissive = True
        if statement.get("Effect") == "Deny" and not misconfigured:
            wild = [r for r in resources if (m := TOPIC_RE.search(r)) and ("+" in m["topic"] or "#" in m["topic"])]
            if wild:
                found.append(
                    Finding(POLICY_MISCONFIGURED, "Policy", name,
                            f"A Deny on {wild[0]}: IoT policies read + and # as plain characters, not as MQTT "
                            "wildcards, so the Deny misses the topics it seems to cover.",
                            "Use * in policy resources to match topics (topic/a/*), or deny the exact topics.")
                )  # fmt: skip
                misconfigured = True
    return found


def logging_finding(options: Mapping[str, Any] | None) -> Finding | None:
    if options is None:
        why = "AWS IoT logging was never configured"
    elif options.get("disableAllLogs"):
        why = "AWS IoT logging is configured with every log disabled"
    elif options.get("defaultLogLevel") == "DISABLED":
        why = "AWS IoT logging's default level is DISABLED"
    else:
        return None
    return Finding(
        LOGGING_DISABLED, "Account", "AWS IoT logging", f"{why}: failed connects and rule errors leave no trace.",
        "jitr fleet logging --stack STACK (deploy.sh does it) sets v2 logging at ERROR with the stack's role.",
    )  # fmt: skip


# -- CRLs ---------------------------------------------------------------------------------------------


class CrlIndex:
    """The revoked serials of the CRLs given, by issuer name; only CRLs whose signature verifies against a
    certificate of the issuer they name count (:meth:`trust`)."""

    def __init__(self, crls: Iterable[x509.CertificateRevocationList] = ()) -> None:
        self.crls = list(crls)
        self._by_issuer: dict[bytes, tuple[str, set[int]]] = {}

    def trust(self, issuers: Iterable[x509.Certificate]) -> list[x509.CertificateRevocationList]:
        """Keep the CRLs signed by one of ``issuers``; the ones none of them signed."""
        unverified = []
        issuers = list(issuers)
        for crl in self.crls:
            signer = next((cert for cert in issuers if cert.subject == crl.issuer and _signed_by(crl, cert)), None)
            if signer is None:
                unverified.append(crl)
                continue
            serials = {entry.serial_number for entry in crl}
            name = crl.issuer.public_bytes()
            held = self._by_issuer.get(name)
            self._by_issuer[name] = (crl.issuer.rfc4514_string(), serials | (held[1] if held else set()))
        return unverified

    def revoked(self, cert: x509.Certificate) -> str | None:
        """The name of the issuer whose CRL lists ``cert``, or None."""
        held = self._by_issuer.get(cert.issuer.public_bytes())
        if held is not None and cert.serial_number in held[1]:
            return held[0]
        return None

    def __bool__(self) -> bool:
        return bool(self._by_issuer)


def _signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return False
    return crl.is_signature_valid(key)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], CHECKS.index(f.check), f.resource))
