"""``jitr fleet …``: a deployed stack and its fleet: describe the stack, find the endpoint, reset the fleet.

These are what ``deploy.sh`` and ``delete.sh`` call. A stack is looked up in CloudFormation, or in
the local emulator when AWS_ENDPOINT_URL is set (where ``jitr local deploy`` keeps its record).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from ca import config
from ca.aws import IotApi, make_session
from ca.certificates import certificate_id
from ca.cli.common import JsonOption, emit, handle_errors
from ca.fleet import (
    StackInfo,
    bucket_exists,
    check_archive_bucket,
    empty_bucket,
    plan_reset,
    reset_fleet,
    stack_ca_id,
    stack_from_cloudformation,
)
from ca.store import PkiStore

app = typer.Typer(help="Describe a deployed stack, find its endpoint, and reset its fleet.", no_args_is_help=True)

StackOption = Annotated[str, typer.Option("--stack", help="The stack name (deploy.sh's STACK).")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def lookup_stack(name: str) -> StackInfo | None:
    """The stack in CloudFormation, or in the emulator when AWS_ENDPOINT_URL points at it."""
    session = make_session()
    if os.environ.get(config.ENV_AWS_ENDPOINT_URL):
        from emulator.stack import StackDeployer

        record = StackDeployer(session).record(name)
        if record is None:
            return None
        return StackInfo(name, "DEPLOYED", record.get("parameters") or {}, record.get("outputs") or {})
    return stack_from_cloudformation(session.client("cloudformation"), name)


@app.command()
@handle_errors
def describe(stack: StackOption, as_json: JsonOption = False) -> None:
    """Print whether STACK is deployed, its parameters and its outputs (exists: false if it is not)."""
    info = lookup_stack(stack)
    if info is None:
        emit({"stack": stack, "exists": False, "parameters": {}, "outputs": {}}, as_json, f"No stack {stack}.")
        return
    lines = [f"{stack}: {info.status}"] + [f"  {k}: {v}" for k, v in {**info.parameters, **info.outputs}.items()]
    emit(info.as_dict(), as_json, "\n".join(lines))


@app.command()
@handle_errors
def endpoint(as_json: JsonOption = False) -> None:
    """Print the ATS data endpoint devices connect to (HOST, or HOST:PORT on the local emulator)."""
    address = IotApi.connect().data_endpoint()
    emit({"endpoint": address}, as_json, address)


@app.command()
@handle_errors
def reset(
    stack: StackOption,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", envvar=config.ENV_PKI_DIR, help="The stack's CA folder (used when the stack is gone)."),
    ] = None,
    bucket: Annotated[
        str | None,
        typer.Option("--bucket", help="Also empty this archive bucket (it must be the stack's ArchiveBucketName)."),
    ] = None,
    yes: YesOption = False,
    keep_ca: Annotated[bool, typer.Option("--keep-ca", help="Keep the CA registered (and auto-registering).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete the stack's fleet: its CA's certificates, their things and JITP policies, and the CA registration.

    Each certificate under the CA is set INACTIVE, detached and deleted; a thing is deleted once no
    other certificate uses it; the stack's device policy is detached from whatever holds it. The CA
    is the stack's CaCertificateId parameter, or the CA in --dir once the stack is gone. With
    --bucket, every object version in the stack's archive bucket is deleted afterwards, so the stack
    itself can be deleted; any other bucket is refused before anything is touched. Certificates of
    other CAs, and things they use, are left alone. Running it again is a no-op.
    """
    info = lookup_stack(stack)
    s3 = make_session().client("s3") if bucket is not None else None
    bucket_gone = bucket is not None and info is None and not bucket_exists(s3, bucket)
    if bucket is not None and not bucket_gone:
        check_archive_bucket(stack, info, bucket)  # before anything is deleted
    store = PkiStore(directory) if directory is not None else None
    folder_ca = certificate_id(store.signer_certificate()) if store is not None and store.exists() else None
    ca_id = stack_ca_id(stack, info, folder_ca)
    api = IotApi.connect() if ca_id is not None else None
    plan = plan_reset(api, ca_id) if ca_id is not None else None
    emptying = None if bucket_gone else bucket
    if not yes and ((plan is not None and not plan.is_empty(keep_ca=keep_ca)) or emptying is not None):
        if plan is not None:
            question = plan.question(keep_ca=keep_ca, bucket=emptying)
        else:
            question = f"This deletes every object version in bucket {emptying}; continue?"
        if not typer.confirm(question, err=True):
            typer.echo("Aborted; nothing was deleted.", err=True)
            raise typer.Exit(1)
    report: dict = {"stack": stack, "caCertificateId": ca_id}
    if plan is not None:
        with _progress(len(plan.certificates), quiet=as_json) as advance:
            policy = info.device_policy if info is not None else None
            report |= reset_fleet(api, ca_id, keep_ca=keep_ca, stack_policy=policy, progress=advance)
    report["bucket"] = bucket
    report["objectsDeleted"] = (empty_bucket(s3, emptying) or 0) if emptying is not None else 0
    report["bucketGone"] = bucket_gone
    emit(report, as_json, _summary(report, keep_ca=keep_ca))


def _summary(report: dict, *, keep_ca: bool) -> str:
    if report["caCertificateId"] is None:
        fleet = f"No CA is known for stack {report['stack']} (no deployed stack, no CA in --dir): no fleet to reset."
    else:
        ca = "kept" if keep_ca else ("deleted" if report["caDeleted"] else "already gone")
        fleet = (
            f"Stack {report['stack']}, CA {report['caCertificateId']}: deleted "
            f"{len(report['certificatesDeleted'])} certificates and {len(report['thingsDeleted'])} things "
            f"(kept {len(report['thingsKept'])} that other certificates use); CA registration {ca}."
        )
    if report["bucket"] is None:
        return fleet
    if report["bucketGone"]:
        return f"{fleet}\nBucket {report['bucket']} is already gone."
    return f"{fleet}\nEmptied {report['bucket']}: deleted {report['objectsDeleted']} object versions and markers."


class _progress:
    """A rich progress bar on stderr for long resets (silent for --json or when stderr is not a terminal)."""

    def __init__(self, total: int, *, quiet: bool) -> None:
        self.bar = None
        if not quiet and total > 20:
            self.bar = Progress(
                TextColumn("deleting"), BarColumn(), MofNCompleteColumn(), transient=True, console=Console(stderr=True)
            )
        self.total = total

    def __enter__(self):
        if self.bar is None:
            return lambda n: None
        self.bar.start()
        task = self.bar.add_task("reset", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
