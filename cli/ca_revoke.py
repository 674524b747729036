"""``jitr ca revoke`` and ``jitr ca crl``: revocation in the CA's store, and the CRL the CA signs.

Registered on the ``ca`` sub-app by :mod:`cli.ca_app`; the work is :mod:`ca.revocation` (pure) and
:class:`ca.store.PkiStore` (the record).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization

from base import config
from base.certificates import certificate_id, load_certificate
from base.errors import InvalidInputError
from base.files import FileSpec, read_bytes, write_files
from ca.revocation import REASONS, build_crl, issued_by, parse_serial, revocation_of
from ca.revocation_aws import describe_aws, revoke_in_aws
from ca.store import PkiStore
from cli.common import DirOption, JsonOption, PassphraseEnvOption, emit, open_store
from cloud.iot import IotApi


def revoke(
    cert: Annotated[
        Path | None, typer.Argument(help="The certificate to revoke (a PEM file; a chain file's first one).")
    ] = None,
    serial: Annotated[
        str | None, typer.Option("--serial", help="Instead of CERT: the serial (hex) of a certificate minted in --dir.")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help=f"RFC 5280 reason: {', '.join(REASONS)}.")] = "unspecified",
    aws: Annotated[
        bool,
        typer.Option(
            "--aws", help="Also in AWS IoT: a device certificate REVOKED; the intermediate's registration INACTIVE."
        ),
    ] = False,
    directory: DirOption = Path(config.DEFAULT_PKI_DIR),
    as_json: JsonOption = False,
) -> None:
    """Record that a certificate of this CA is revoked; 'jitr ca crl' then lists it.

    CERT must be signed by the CA in --dir (the CA that signs devices, or its root for the intermediate).
    Revoking a certificate again changes nothing. The record is PKI/revocations.json. With --aws the
    device certificate is set REVOKED in AWS IoT (for good), or, for the intermediate, its CA registration
    INACTIVE with auto-registration off, and the devices still ACTIVE under it are counted.
    """
    if (cert is None) == (serial is None):
        raise InvalidInputError("Say what to revoke: a certificate file, or --serial S, one of the two.")
    store = PkiStore(directory)
    signer, root = store.signer_certificate(), store.root_certificate()
    if cert is not None:
        target = load_certificate(read_bytes(cert, "certificate file"), str(cert))
        issuers = [ca for ca in (signer, root) if issued_by(target, ca)]
        if not issuers:
            raise InvalidInputError(
                f"{cert} ({target.subject.rfc4514_string()}) was not issued by the CA in {directory}; "
                "a CA can revoke only what it signed."
            )
        issuer = issuers[0]
    else:
        target, issuer = store.minted_with_serial(parse_serial(serial or "")), signer
    now = dt.datetime.now(dt.UTC)
    number, revoked = store.revocations()
    known = next((r for r in revoked if r.serial == target.serial_number), None)
    if known is None:
        known = revocation_of(target, issuer, now=now, reason=reason)
        store.save_revocations(number, [*revoked, known])
        message = f"Revoked {known.subject} (serial {known.serial:x}, {known.reason}); run 'jitr ca crl' to publish it."
    else:
        message = f"{known.subject} (serial {known.serial:x}) was already revoked on {known.revoked_at:%Y-%m-%d}."
    report = known.as_json()
    if aws:
        result = revoke_in_aws(IotApi.connect(), target)
        report |= {key: value for key, value in result.items() if key != "certificateId"}
        message = f"{message}\n{describe_aws(result)}"
    emit(report, as_json, message)


def crl(
    out: Annotated[Path, typer.Option("--out", help="Where the CRL goes (PEM; --der for DER).")],
    directory: DirOption = Path(config.DEFAULT_PKI_DIR),
    days: Annotated[int, typer.Option("--days", min=1, help="Days until the CRL's nextUpdate.")] = 30,
    root: Annotated[
        bool, typer.Option("--root", help="The root's CRL (for a revoked intermediate), not the signing CA's.")
    ] = False,
    der: Annotated[bool, typer.Option("--der", help="Write DER instead of PEM.")] = False,
    passphrase_env: PassphraseEnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the CRL the CA signs: every certificate revoked under it, a CRL number that only grows.

    'openssl crl -in FILE -noout -text' reads it; 'openssl verify -crl_check -CRLfile FILE' refuses the
    revoked certificates. The signing CA's key is needed (--passphrase-env for an encrypted one).
    """
    store, secret = open_store(directory, passphrase_env)
    issuer = store.root_issuer(secret) if root else store.signer(secret)
    number, revoked = store.revocations()
    mine = [r for r in revoked if r.issuer_id == certificate_id(issuer.certificate)]
    now = dt.datetime.now(dt.UTC)
    document = build_crl(issuer, mine, number=number + 1, now=now, days=days)
    encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
    write_files(out.parent, {out.name: FileSpec(document.public_bytes(encoding))}, overwrite=True)
    store.save_revocations(number + 1, revoked)
    summary = {"crl": str(out), "crlNumber": number + 1, "issuer": issuer.certificate.subject.rfc4514_string()}
    summary |= {"revoked": len(mine), "nextUpdate": (document.next_update_utc or now).isoformat()}
    emit(summary, as_json, f"Wrote {out}: CRL number {number + 1} of {summary['issuer']}, {len(mine)} revoked.")
