"""``jitr demo``: the kit's loop, step by step with timings, on this machine only."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from ca import manifest
from ca.batch import BatchRequest, mint_batch, numbered_names
from ca.certificates import certificate_id, load_certificates, to_pem
from ca.cli.common import handle_errors
from ca.errors import AlreadyExistsError
from ca.files import create_file, write_files
from ca.issue import Issuer, issue_root, make_name
from ca.keys import generate_key, private_key_pem
from ca.mint import mint_device
from ca.store import CaMaterial, CaMetadata, PkiStore
from ca.verify import verify_chain

MARKER = ".jitr-demo"  # only folders carrying it are wiped by a re-run


class Steps:
    """Prints each step with how long it took."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.number = 0

    def run(self, title: str, action: Callable[[], str]) -> None:
        self.number += 1
        began = time.perf_counter()
        detail = action()
        typer.echo(f"[{self.number}] {title:<48} {time.perf_counter() - began:7.3f} s  {detail}")

    def total(self) -> float:
        return time.perf_counter() - self.started


def _fresh(directory: Path) -> None:
    if directory.exists():
        if not (directory / MARKER).exists():
            raise AlreadyExistsError(f"{directory} exists and was not made by 'jitr demo'; choose another --dir.")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    create_file(directory / MARKER, b"made by jitr demo; a re-run replaces this folder\n")


@handle_errors
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo writes (replaced on each run).")] = Path(
        "demo-output"
    ),
    devices: Annotated[int, typer.Option("--devices", min=1, help="Devices in the demo batch.")] = 1000,
) -> None:
    """Run the loop locally: a CA with an intermediate, devices minted and verified."""
    _fresh(directory)
    pki = PkiStore(directory / "pki")
    steps = Steps()
    now = dt.datetime.now(dt.UTC)
    state: dict = {}

    def create_ca() -> str:
        root_key, inter_key = generate_key("ec-p256"), generate_key("ec-p256")
        root = issue_root(root_key, make_name("jitr-kit Demo Root", org="Demo", country="DE"), now=now, days=3650)
        inter = Issuer(root, root_key).issue_intermediate(
            inter_key.public_key(),
            make_name("jitr-kit Demo Intermediate", org="Demo", country="DE"),
            now=now,
            days=3650,
        )
        pki.create(
            CaMaterial(root, root_key, inter, inter_key),
            CaMetadata("ec-p256", "DE", "Demo", "intermediate", None, 3650),
            None,
        )
        state["issuer"] = pki.signer(None)
        return f"intermediate {certificate_id(inter)[:16]}… signs devices"

    def mint_one() -> str:
        identity = mint_device(state["issuer"], "demo-device-1", country="DE", now=now, days=365)
        write_files(directory / "devices", identity.files())
        state["one"] = directory / "devices" / manifest.chain_path("demo-device-1")
        return f"{state['one']}"

    def mint_many() -> str:
        result = mint_batch(
            numbered_names("demo-", devices),
            ca_cert_pem=to_pem(state["issuer"].certificate),
            ca_key_pem=private_key_pem(state["issuer"].key),
            passphrase=None,
            request=BatchRequest(out=directory / "fleet", fmt="files", workers=2),
            now=now,
        )
        state["manifest"] = result.manifest
        return f"{result.count} devices, {result.count / result.seconds:,.0f}/s -> {result.manifest}"

    def verify_all() -> str:
        root = pki.root_certificate()
        chain = load_certificates(state["one"].read_bytes())
        verify_chain(chain[0], root=root, intermediates=chain[1:])
        count = 0
        for entry in manifest.read_manifest(state["manifest"]):
            certs = load_certificates(entry.chain_pem())
            verify_chain(certs[0], root=root, intermediates=certs[1:])
            count += 1
        return f"{count + 1} chains verify up to the root"

    steps.run("Create a root CA and an intermediate", create_ca)
    steps.run("Mint one device (key, certificate, chain)", mint_one)
    steps.run(f"Mint a batch of {devices} devices", mint_many)
    steps.run("Verify every device chain (RFC 5280)", verify_all)
    typer.echo(f"Done in {steps.total():.2f} s. Everything is in {directory}/.")
