"""``jitr device mint`` and ``jitr device sign-csr``: device identities from the CA."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ca.batch import FORMATS, BatchRequest, mint_batch, names_from_file, numbered_names
from ca.certificates import certificate_id, load_csr, to_pem
from ca.cli.common import DirOption, JsonOption, PassphraseEnvOption, emit, handle_errors, open_store
from ca.config import DEFAULT_PKI_DIR
from ca.errors import InvalidInputError
from ca.files import FileSpec, read_bytes, write_files
from ca.keys import KeyType
from ca.mint import mint_device
from ca.names import check_country

app = typer.Typer(help="Mint device certificates and sign device CSRs.", no_args_is_help=True)

CountryOption = Annotated[
    str | None, typer.Option("--country", help="Country (C) of the device certificates; default: the CA's country.")
]


@app.command()
@handle_errors
def mint(
    directory: DirOption = Path(DEFAULT_PKI_DIR),
    thing: Annotated[
        str | None, typer.Option("--thing", help="Mint one device: its thing name (the certificate CN).")
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", help="Mint a batch of COUNT devices named PREFIX + number.")
    ] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Batch: thing-name prefix, such as 'sensor-'.")] = None,
    names: Annotated[Path | None, typer.Option("--names", help="Batch: a file of thing names, one a line.")] = None,
    country: CountryOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder; default DIR/devices (one) or DIR/batches/NAME (batch).")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Batch: worker processes.")] = os.cpu_count() or 1,
    fmt: Annotated[
        str,
        typer.Option("--format", help="Batch: 'files' (key, certificate, chain per device) or 'jsonl' (one manifest)."),
    ] = "files",
    days: Annotated[
        int | None, typer.Option("--days", min=1, help="Validity in days (capped at the CA's own).")
    ] = None,
    key_type: Annotated[KeyType, typer.Option("--key-type", help="Device key algorithm.")] = KeyType.EC_P256,
    passphrase_env: PassphraseEnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mint device identities: a key (0600), a certificate (CN = thing name) and the chain file
    the device presents on first connect (its certificate, then its CA's).

    One device with --thing; a batch with --count and --prefix, or with --names FILE. A batch
    writes a manifest (JSON lines) and is written whole or not at all.
    """
    batch = count is not None or prefix is not None or names is not None
    if thing is not None and batch:
        raise InvalidInputError("Give either --thing (one device) or --count/--prefix or --names (a batch), not both.")
    if thing is None and not batch:
        raise InvalidInputError("Say what to mint: --thing NAME, --count N --prefix P, or --names FILE.")
    if fmt not in FORMATS:
        raise InvalidInputError(f"Unknown format {fmt!r}; use files or jsonl.")
    store, secret = open_store(directory, passphrase_env)
    metadata = store.metadata()
    country = check_country(country) if country else metadata.country
    days = days or metadata.device_days
    issuer = store.signer(secret)  # decrypts the key: a wrong passphrase fails here, before anything is written
    now = dt.datetime.now(dt.UTC)
    if thing is not None:
        identity = mint_device(issuer, thing, country=country, now=now, days=days, key_type=key_type)
        out = out or directory / "devices"
        written = write_files(out, identity.files())
        summary = identity.summary() | {"files": [str(p) for p in written]}
        emit(summary, as_json, f"Minted {thing} ({summary['certificateId']}):\n  " + "\n  ".join(summary["files"]))
        return
    if names is not None:
        if count is not None or prefix is not None:
            raise InvalidInputError("Give either --names FILE or --count with --prefix, not both.")
        things = names_from_file(names)
        label = names.stem
    else:
        if count is None or prefix is None:
            raise InvalidInputError("A numbered batch needs both --count and --prefix.")
        things = numbered_names(prefix, count)
        label = prefix.rstrip("-_:") or "batch"
    out = out or directory / "batches" / label
    request = BatchRequest(out=out, fmt=fmt, country=country, days=days, key_type=key_type, workers=workers)
    with _progress(len(things), quiet=as_json) as advance:
        result = mint_batch(
            things,
            ca_cert_pem=to_pem(issuer.certificate),
            ca_key_pem=store.signer_key_pem(),
            passphrase=secret,
            request=request,
            now=now,
            progress=advance,
        )
    rate = result.count / result.seconds if result.seconds else float(result.count)
    emit(
        {
            "count": result.count,
            "manifest": str(result.manifest),
            "seconds": round(result.seconds, 3),
            "devicesPerSecond": round(rate, 1),
            "format": fmt,
        },
        as_json,
        f"Minted {result.count} devices in {result.seconds:.1f} s ({rate:,.0f}/s); manifest: {result.manifest}",
    )


class _progress:
    """A rich progress bar on stderr (silent for --json or when stderr is not a terminal)."""

    def __init__(self, total: int, *, quiet: bool) -> None:
        self.total = total
        self.bar = (
            None
            if quiet
            else Progress(
                TextColumn("minting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
            )
        )

    def __enter__(self):
        if self.bar is None:
            return lambda n: None
        self.bar.start()
        task = self.bar.add_task("mint", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command("sign-csr")
@handle_errors
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
        country=check_country(country) if country else metadata.country,
        now=dt.datetime.now(dt.UTC),
        days=days or metadata.device_days,
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
