"""``jitr audit``: the account checked as Device Defender's audit checks it, plus the kit's own checks.

The checks are :mod:`fleet.audit`; reading the account is :mod:`fleet.audit_scan`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509

from base.certificates import load_certificates
from base.errors import MalformedError, NotFoundError
from base.files import read_bytes
from base.names import check_stack_name
from cli.common import JsonOption, emit
from cli.progress import ProgressBar
from cli.wiring import stack_source
from cloud.iot_account import IotAccount
from cloud.session import make_session
from fleet.audit import SEVERITY
from fleet.audit_scan import DEFAULT_CONCURRENCY, AuditReport, AuditScope, audit

SHOWN_PER_CHECK = 10


def audit_command(
    stack: Annotated[
        str | None,
        typer.Option("--stack", help="Audit this stack's CA, device policy and things (default: the whole account)."),
    ] = None,
    crl: Annotated[
        list[Path] | None,
        typer.Option("--crl", exists=True, dir_okay=False, help="A CRL (PEM or DER) to check against (repeatable)."),
    ] = None,
    issuer: Annotated[
        list[Path] | None,
        typer.Option(
            "--issuer", exists=True, dir_okay=False, help="A CRL issuer's certificate, if not a registered CA."
        ),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="Certificates expiring within DAYS are findings.")] = 30,
    pending_minutes: Annotated[
        int, typer.Option("--pending-minutes", min=0, help="PENDING_ACTIVATION longer than this is a finding.")
    ] = 10,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Certificates read at a time.")
    ] = DEFAULT_CONCURRENCY,
    as_json: JsonOption = False,
) -> None:
    """Check the account (AWS or the emulator) as Device Defender's audit does; exit 1 with findings.

    Device Defender's checks: CA_/DEVICE_CERTIFICATE_EXPIRING_CHECK (within --days),
    CA_/DEVICE_CERTIFICATE_KEY_QUALITY_CHECK, DEVICE_CERTIFICATE_SHARED_CHECK (one certificate on
    several things), IOT_POLICY_OVERLY_PERMISSIVE_CHECK, IOT_POLICY_POTENTIAL_MISCONFIGURATION_CHECK,
    REVOKED_CA_CERTIFICATE_STILL_ACTIVE_CHECK, REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK and
    INTERMEDIATE_CA_REVOKED_FOR_ACTIVE_DEVICE_CERTIFICATES_CHECK (against the --crl files, whose
    signatures must verify), LOGGING_DISABLED_CHECK. The kit's own: JITR_PENDING_ACTIVATION_CHECK,
    CA_AUTO_REGISTRATION_UNHANDLED_CHECK, THING_WITHOUT_CERTIFICATE_CHECK.

    Each finding says the check, its severity, the resource, why and how to fix it. Certificates are
    read a page at a time (DescribeCertificate and ListPrincipalThings per ACTIVE certificate, which
    on AWS's default quotas takes a while for a big fleet). Exit 0 when clean, 1 with findings.
    """
    scope = AuditScope()
    if stack is not None:
        check_stack_name(stack)
        info = stack_source(make_session()).stack(stack)
        if info is None:
            raise NotFoundError(f"There is no stack {stack} to audit.")
        scope = AuditScope(ca_certificate_id=info.ca_certificate_id, device_policy=info.device_policy, stack=stack)
    crls = [_load_crl(path) for path in crl or []]
    issuers = [cert for path in issuer or [] for cert in load_certificates(read_bytes(path, "issuer"), str(path))]
    with ProgressBar("auditing certificates", None, quiet=as_json) as bar:
        bar.start(None)
        report = audit(
            IotAccount.connect(),
            crls=crls,
            issuers=issuers,
            scope=scope,
            days=days,
            pending_minutes=pending_minutes,
            concurrency=concurrency,
            progress=bar.advance,
        )
    emit(report.as_dict(), as_json, _human(report))
    if not report.clean:
        raise typer.Exit(1)


def _load_crl(path: Path) -> x509.CertificateRevocationList:
    data = read_bytes(path, "CRL")
    try:
        return x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise MalformedError(f"{path} is not a CRL (PEM or DER).") from exc


def _human(report: AuditReport) -> str:
    scanned = ", ".join(f"{count} {what}" for what, count in sorted(report.scanned.items())) or "nothing"
    if report.clean:
        return f"Clean: no finding ({scanned} audited)."
    lines = [f"{len(report.findings)} findings ({scanned} audited):"]
    shown: Counter = Counter()
    by_check = Counter(f.check for f in report.findings)
    for finding in report.findings:
        shown[finding.check] += 1
        if shown[finding.check] == 1:
            lines.append(f"\n{finding.check} ({SEVERITY[finding.check]}): {by_check[finding.check]}")
            lines.append(f"  fix: {finding.fix}")
        if shown[finding.check] <= SHOWN_PER_CHECK:
            lines.append(f"  {finding.resource_type} {finding.resource}: {finding.why}")
        elif shown[finding.check] == SHOWN_PER_CHECK + 1:
            lines.append(f"  ... and {by_check[finding.check] - SHOWN_PER_CHECK} more (--json lists them all)")
    return "\n".join(lines)
