"""``jitr device sign-csr``: a certificate for a device whose key never leaves it. Registered on the ``device``
sub-app by :mod:`cli.device_app`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from base.certificates import certificate_id, load_csr, to_pem
from base.config import DEFAULT_PKI_DIR
from base.files import FileSpec, read_bytes, write_files
from base.names import check_country
from ca.profiles import check_crl_url
from cli.common import CountryOption, CrlUrlOption, DirOption, JsonOption, PassphraseEnvOption, emit, open_store


def sign_csr(
    csr: Annotated[Path, typer.Option("--csr", help="The device's certificate signing request (PEM or DER).")],
    directory: DirOption = Path(DEFAULT_PKI_DIR),
    out: Annotated[Path | None, typer.Option("--out", help="Write the certificate here (default: stdout).")] = None,
    chain: Annotated[
        bool, typer.Option("--chain", help="Append the CA certificate (the chain file a device presents).")
    ] = False,
    country: CountryOption = None,
    days: Annotated[
        int | None, typer.Option("--days", min=1, help="Validity in days (capped at the CA's own).")
    ] = None,
    crl_url: CrlUrlOption = None,
    passphrase_env: PassphraseEnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign a device CSR, for devices whose key never leaves them.

    The CSR's signature must verify and its CN must be a valid thing name; the CSR's country is
    kept, else the CA's is used.
    """
    request = load_csr(read_bytes(csr, "CSR file"), str(csr))
    store, secret = open_store(directory, passphrase_env)
    metadata = store.metadata()
    issuer = store.signer(secret)
    cert = issuer.sign_csr(
        request,
        country=check_country(country) if country is not None else metadata.country,
        now=dt.datetime.now(dt.UTC),
        days=days or metadata.device_days,
        crl_url=check_crl_url(crl_url) if crl_url is not None else None,
    )
    pem = to_pem(cert) + (to_pem(issuer.certificate) if chain else b"")
    if out is not None:
        write_files(out.parent, {out.name: FileSpec(pem)})
    if as_json:
        emit(
            {"certificateId": certificate_id(cert), "certificatePem": pem.decode(), "out": str(out) if out else None},
            True,
            "",
        )
    elif out is None:
        typer.echo(pem.decode(), nl=False)
    else:
        typer.echo(f"Signed {out} ({certificate_id(cert)}).")
