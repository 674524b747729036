"""Reading the account for ``jitr audit``: paginated, a page of certificates at a time, in bounded memory.

The order: logging options, topic rules, the registered CAs (with their PEMs, which also verify the CRLs
given), policies, then the certificates page by page (ListCertificates, or ListCertificatesByCA for a
stack's CA): each ACTIVE one described (its PEM: expiry, key, revocation) and its things listed (shared
certificates), in a thread pool; PENDING_ACTIVATION ones judged by their creation date. Then the things,
page by page: those no certificate was attached to. Only the names of things that have a certificate are
kept across pages (to find the things without one); PEMs are dropped as soon as they are judged.

AWS IoT has no bulk read of certificates: DescribeCertificate and ListPrincipalThings are called once per
ACTIVE certificate, so on AWS (10 DescribeCertificate a second by default) a large fleet takes hours; the
calls are retried when throttled (``cloud.iot``).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from base.certificates import load_certificate
from base.errors import InvalidInputError
from cloud.iot_account import IotAccount
from fleet.audit import (
    CrlIndex,
    Finding,
    ca_certificate_findings,
    ca_handled,
    device_certificate_findings,
    intermediate_finding,
    logging_finding,
    pending_finding,
    policy_findings,
    shared_finding,
    sort_findings,
    thing_finding,
)

DEFAULT_CONCURRENCY = 8
PAGE_SIZE = 250


@dataclass
class AuditScope:
    """What to audit: the whole account, or one stack's CA, device policy and things."""

    ca_certificate_id: str | None = None
    device_policy: str | None = None
    stack: str | None = None


@dataclass
class AuditReport:
    findings: list[Finding]
    scanned: Counter = field(default_factory=Counter)
    unverified_crls: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        by_check = Counter(f.check for f in self.findings)
        return {
            "clean": self.clean,
            "scanned": dict(self.scanned),
            "summary": dict(sorted(by_check.items())),
            "findings": [finding.as_dict() for finding in self.findings],
        }


def audit(
    iot: IotAccount,
    *,
    crls: Iterable[x509.CertificateRevocationList] = (),
    issuers: Iterable[x509.Certificate] = (),
    scope: AuditScope | None = None,
    days: int = 30,
    pending_minutes: int = 10,
    concurrency: int = DEFAULT_CONCURRENCY,
    now: dt.datetime | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> AuditReport:
    """Run every check against the account ``iot`` reads; ``progress(n)`` after each certificate."""
    scope = scope or AuditScope()
    now = now or dt.datetime.now(dt.UTC)
    findings: list[Finding] = []
    scanned: Counter = Counter()
    logging = logging_finding(iot.v2_logging_options())
    if logging:
        findings.append(logging)
    rule_sqls = list(iot.topic_rule_sqls().values())
    index = CrlIndex(crls)
    ca_records = _cas(iot, scope)
    unverified = index.trust([cert for _, cert in ca_records] + list(issuers))
    if unverified:
        names = ", ".join(crl.issuer.rfc4514_string() for crl in unverified)
        raise InvalidInputError(
            f"Cannot verify the CRL of {names}: its issuer is not a registered CA; give its certificate with --issuer."
        )
    revoked_intermediates: dict[bytes, str] = {}
    for description, cert in ca_records:
        scanned["caCertificates"] += 1
        handled = ca_handled(description, rule_sqls)
        findings += ca_certificate_findings(description, cert, now=now, days=days, crls=index, handled=handled)
        if index.revoked(cert):
            revoked_intermediates[cert.subject.public_bytes()] = str(description["certificateId"])
    for policy in iot.list_policies():
        name = policy["policyName"]
        if scope.device_policy is not None and name != scope.device_policy:
            continue
        scanned["policies"] += 1
        document = iot.policy_document(name)
        if document is not None:
            findings += policy_findings(name, document)
    attached_things: set[str] = set()
    under_revoked: Counter = Counter()
    lock = threading.Lock()

    def judge(summary: dict) -> list[Finding]:
        """One ACTIVE certificate: its PEM's findings, and whether it is shared."""
        found: list[Finding] = []
        cert_id = str(summary["certificateId"])
        described = iot.describe_certificate(cert_id)
        if described is None or described.get("status") != "ACTIVE":
            return found
        cert = load_certificate(described["certificatePem"].encode(), f"certificate {cert_id}")
        found += device_certificate_findings(cert_id, cert, now=now, days=days, crls=index)
        intermediate = revoked_intermediates.get(cert.issuer.public_bytes())
        things = iot.list_principal_things(str(summary["certificateArn"]))
        shared = shared_finding(cert_id, things)
        if shared:
            found.append(shared)
        with lock:
            attached_things.update(things)
            if intermediate:
                under_revoked[intermediate] += 1
        return found

    with ThreadPoolExecutor(concurrency, thread_name_prefix="audit") as pool:
        for page in iot.certificate_pages(page_size=PAGE_SIZE, ca_certificate_id=scope.ca_certificate_id):
            active = []
            for summary in page:
                scanned["certificates"] += 1
                status = summary.get("status")
                if status == "ACTIVE":
                    active.append(summary)
                    continue
                pending = pending_finding(summary, now=now, pending_minutes=pending_minutes)
                if pending:
                    findings.append(pending)
                progress(1)
            for result in pool.map(judge, active):  # one page in flight: memory bounded by the page
                findings += result
                progress(1)
    findings += [intermediate_finding(ca_id, count) for ca_id, count in sorted(under_revoked.items())]
    for page in iot.thing_pages(page_size=PAGE_SIZE):
        for thing in page:
            if scope.stack is not None and not _in_stack(thing, scope):
                continue
            scanned["things"] += 1
            # not on a scanned ACTIVE certificate: perhaps on an INACTIVE one, or (with --stack) one outside it
            if thing["thingName"] not in attached_things and not iot.list_thing_principals(thing["thingName"]):
                findings.append(thing_finding(thing["thingName"]))
    return AuditReport(sort_findings(findings), scanned)


def _cas(iot: IotAccount, scope: AuditScope) -> list[tuple[dict, x509.Certificate]]:
    records = []
    for summary in iot.list_ca_certificates():
        ca_id = summary["certificateId"]
        if scope.ca_certificate_id is not None and ca_id != scope.ca_certificate_id:
            continue
        answer = iot.describe_ca(ca_id)
        if answer is None:
            continue
        description = dict(answer["certificateDescription"])
        description["registrationConfig"] = answer.get("registrationConfig") or {}
        cert = load_certificate(description["certificatePem"].encode(), f"CA certificate {ca_id}")
        records.append((description, cert))
    return records


def _in_stack(thing: dict, scope: AuditScope) -> bool:
    attributes = thing.get("attributes") or {}
    return attributes.get("provisioningStack") == scope.stack or (
        scope.ca_certificate_id is not None and attributes.get("caCertificateId") == scope.ca_certificate_id
    )
