"""``jitr fleet …``: a deployed stack and its fleet: describe the stack, find the endpoint, register a
minted batch up front, admit serials to the provisioning API (:mod:`cli.fleet_admit`), set up fleet
provisioning by claim (:mod:`cli.fleet_claim`), reset the fleet.

describe, endpoint and reset are what ``deploy.sh`` and ``delete.sh`` call. A stack is looked up in
CloudFormation, or in the local emulator when AWS_ENDPOINT_URL is set (where ``jitr local deploy``
keeps its record). register is :mod:`fleet.register`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from base import config
from base.certificates import certificate_id, load_certificate
from base.errors import InvalidInputError, JitrError, NotFoundError
from base.files import read_bytes
from base.names import check_stack_name
from ca.store import PkiStore
from cli import fleet_admit, fleet_claim, fleet_logging, fleet_website
from cli.common import JsonOption, ManifestOption, emit
from cli.progress import ProgressBar
from cli.wiring import stack_source
from cloud.iot import IotApi
from cloud.iot_account import IotAccount
from cloud.pacing import Pacer
from cloud.s3 import S3Api, bucket_exists, empty_bucket
from cloud.session import make_session
from cloud.stacks import StackInfo
from fleet.claim import claim_templates, remove_claims
from fleet.devices import FAILED, manifest_ca
from fleet.register import register_fleet
from fleet.requests import (
    DEFAULT_CONCURRENCY,
    DEFAULT_POLICY,
    SHARED_WARNING,
    RegisterReport,
    RegisterRequest,
)
from fleet.reset import (
    check_archive_bucket,
    plan_manifest_reset,
    plan_reset,
    provisioned_things,
    reset_fleet,
    reset_manifest,
    reset_provisioned,
    stack_ca_id,
)

app = typer.Typer(
    help="Describe a deployed stack, find its endpoint, register a minted batch up front, admit serials to the "
    "provisioning API, set up provisioning by claim, upload the web page, and reset a fleet.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

app.command("admit")(fleet_admit.admit)
app.command("claim")(fleet_claim.claim)
app.command("logging")(fleet_logging.logging_command)
app.command("website")(fleet_website.website)

StackOption = Annotated[str, typer.Option("--stack", help="The stack name (deploy.sh's STACK).")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def lookup_stack(name: str) -> StackInfo | None:
    """The stack in the stack source the CLI's wiring chose (CloudFormation, or the local emulator)."""
    check_stack_name(name)  # before any call: CloudFormation would answer a ValidationError, not "no stack"
    return stack_source(make_session()).stack(name)


@app.command()
def describe(stack: StackOption, as_json: JsonOption = False) -> None:
    """Print whether STACK is deployed, its parameters and its outputs (exists: false if it is not)."""
    info = lookup_stack(stack)
    if info is None:
        emit({"stack": stack, "exists": False, "parameters": {}, "outputs": {}}, as_json, f"No stack {stack}.")
        return
    lines = [f"{stack}: {info.status}"] + [f"  {k}: {v}" for k, v in {**info.parameters, **info.outputs}.items()]
    emit(info.as_dict(), as_json, "\n".join(lines))


@app.command()
def endpoint(as_json: JsonOption = False) -> None:
    """Print the ATS data endpoint devices connect to (HOST, or HOST:PORT on the local emulator)."""
    address = IotApi.connect().data_endpoint()
    emit({"endpoint": address}, as_json, address)


@app.command()
def reset(
    stack: Annotated[
        str | None, typer.Option("--stack", help="The stack name (deploy.sh's STACK): reset its CA's whole fleet.")
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="Reset only the batch 'jitr fleet register' registered from this manifest."),
    ] = None,
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
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="With --manifest: devices removed at a time.")
    ] = DEFAULT_CONCURRENCY,
    as_json: JsonOption = False,
) -> None:
    """Delete the stack's fleet: its CA's certificates, their things and JITP policies, and the CA registration.

    Each certificate under the CA is set INACTIVE, detached and deleted; a thing is deleted once no
    other certificate uses it; the stack's device policy is detached from whatever holds it. The CA
    is the stack's CaCertificateId parameter, or the CA in --dir once the stack is gone. With
    --bucket, every object version in the stack's archive bucket is deleted afterwards, so the stack
    itself can be deleted; any other bucket is refused before anything is touched. Certificates of
    other CAs, and things they use, are left alone. Running it again is a no-op.

    The things the stack's provisioning API or fleet provisioning by claim registered (attribute
    provisioningStack = the stack) and every certificate attached to them are deleted too, and so are
    the templates 'jitr fleet claim' made for the stack, their claim and rotation policies and the
    claim certificates.

    A stack with a web page (USERS=true) has its hosting bucket emptied as well (the site's files only).

    With --manifest instead of --stack, only a batch registered up front goes: the manifest's
    certificates (under a CA or without one) and its things that no other certificate uses; the CA,
    the thing type, the group and the device policy stay.
    """
    if (stack is None) == (manifest is None):
        raise InvalidInputError(
            "Say what to reset: --stack STACK (the whole fleet of the stack's CA) or --manifest FILE (one batch "
            "registered with 'jitr fleet register'), one of the two."
        )
    if manifest is not None:
        if bucket is not None or keep_ca:
            raise InvalidInputError("--bucket and --keep-ca go with --stack, not with --manifest.")
        _reset_batch(manifest, yes=yes, concurrency=concurrency, as_json=as_json)
        return
    assert stack is not None  # the check above: --stack or --manifest, and --manifest has returned
    info = lookup_stack(stack)
    s3 = make_session().client("s3") if bucket is not None else None
    bucket_gone = bucket is not None and info is None and not bucket_exists(s3, bucket)
    if bucket is not None and not bucket_gone:
        check_archive_bucket(stack, info, bucket)  # before anything is deleted
    store = PkiStore(directory) if directory is not None else None
    folder_ca = certificate_id(store.signer_certificate()) if store is not None and store.exists() else None
    ca_id = stack_ca_id(stack, info, folder_ca)
    api = IotAccount.connect() if ca_id is not None or info is not None else None
    plan = plan_reset(api, ca_id) if api is not None and ca_id is not None else None
    provisioned = provisioned_things(api, stack) if api is not None else []  # the API's, and claim's
    claims = claim_templates(api, info) if api is not None and info is not None else []
    emptying = None if bucket_gone else bucket
    site = info.hosting_bucket if info is not None else None  # the web page's: a stack cannot delete a full bucket
    if not yes and (
        (plan is not None and not plan.is_empty(keep_ca=keep_ca))
        or emptying is not None
        or provisioned
        or claims
        or site is not None
    ):
        if plan is not None:
            question = plan.question(keep_ca=keep_ca, bucket=emptying)
        elif emptying is not None:
            question = f"This deletes every object version in bucket {emptying}; continue?"
        else:
            question = "This resets the stack's fleet; continue?"
        if provisioned:
            question = (
                f"{question[:-1]} It also deletes the {len(provisioned)} devices the provisioning API or fleet "
                "provisioning by claim registered?"
            )
        if claims:
            question = f"{question[:-1]} And the templates {', '.join(claims)} with their claim certificates?"
        if site is not None:
            question = f"{question[:-1]} It also empties the web page's bucket {site}?"
        if not typer.confirm(question, err=True):
            typer.echo("Aborted; nothing was deleted.", err=True)
            raise typer.Exit(1)
    report: dict = {"stack": stack, "caCertificateId": ca_id}
    if plan is not None and api is not None and ca_id is not None:
        with ProgressBar("deleting", len(plan.certificates), quiet=as_json, min_total=21) as advance:
            policy = info.device_policy if info is not None else None
            report |= reset_fleet(api, ca_id, keep_ca=keep_ca, stack_policy=policy, progress=advance)
    if provisioned and api is not None:
        with ProgressBar("deleting", len(provisioned), quiet=as_json, min_total=21) as advance:
            report["provisioningApi"] = reset_provisioned(api, provisioned, progress=advance)
    if info is not None and api is not None and claims:
        report["claims"] = remove_claims(api, claims)
    report["bucket"] = bucket
    report["objectsDeleted"] = (empty_bucket(s3, emptying) or 0) if emptying is not None else 0
    report["bucketGone"] = bucket_gone
    if site is not None:
        report["hostingBucket"] = site
        report["siteObjectsDeleted"] = empty_bucket(s3 or make_session().client("s3"), site) or 0
    emit(report, as_json, _summary(report, keep_ca=keep_ca))


def _reset_batch(manifest: Path, *, yes: bool, concurrency: int, as_json: bool) -> None:
    api = IotApi.connect(pacer=Pacer(), connections=concurrency)
    fleet = plan_manifest_reset(api, manifest)
    if not yes and not fleet.is_empty() and not typer.confirm(fleet.question(), err=True):
        typer.echo("Aborted; nothing was deleted.", err=True)
        raise typer.Exit(1)
    with ProgressBar("deleting", len(fleet.certificates), quiet=as_json, min_total=21) as advance:
        report = reset_manifest(api, fleet, concurrency=concurrency, progress=advance)
    emit(
        report,
        as_json,
        f"Batch {manifest}: deleted {len(report['certificatesDeleted'])} certificates and "
        f"{len(report['thingsDeleted'])} things (kept {len(report['thingsKept'])} that other certificates use).",
    )


# -- register ---------------------------------------------------------------------------------------------------


@app.command()
def register(
    manifest: ManifestOption,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            envvar=config.ENV_PKI_DIR,
            help="The CA folder whose signing CA signed the batch; default: the ca.pem beside the manifest.",
        ),
    ] = None,
    thing_type: Annotated[
        str | None, typer.Option("--thing-type", help="Thing type of every thing (created if missing).")
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="Thing group to add every thing to (created if missing).")
    ] = None,
    policy: Annotated[
        str,
        typer.Option(
            "--policy", help="Policy attached to every certificate (created with the kit's device policy if missing)."
        ),
    ] = DEFAULT_POLICY,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="api: the API calls per device, concurrently; task: one bulk StartThingRegistrationTask (needs "
            "--bucket and --role-arn).",
        ),
    ] = "api",
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="api: devices registered at a time.")
    ] = DEFAULT_CONCURRENCY,
    without_ca: Annotated[
        bool,
        typer.Option("--without-ca", help="RegisterCertificateWithoutCA: for accounts where the CA is not registered."),
    ] = False,
    shared_certificate: Annotated[
        bool,
        typer.Option(
            "--shared-certificate",
            help="Register the first device's certificate once and attach it to every thing (Device Defender "
            "flags shared certificates).",
        ),
    ] = False,
    bucket: Annotated[
        str | None, typer.Option("--bucket", help="task: S3 bucket for the task's input file (created if missing).")
    ] = None,
    role_arn: Annotated[
        str | None, typer.Option("--role-arn", help="task: the IAM role AWS IoT reads the input file with.")
    ] = None,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0.01, help="task: seconds between two looks at the task.")
    ] = 2.0,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results", help="Where the per-device results go (JSON); default: registration.json beside the manifest."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Register every device of a mint manifest in AWS IoT up front, without waiting for its first connect.

    For each device: its certificate registered under the CA (or without one), a thing named after it
    with the thing type, group and attributes from the certificate subject, the policy and the thing
    attached, and the certificate ACTIVE last. Throttled calls back off and are retried, never
    dropped, so the run goes as fast as the account's API quotas allow (about 10 devices a second
    with AWS's defaults). Lines that cannot be registered are reported with the reason and the others
    registered; the exit code is 1 when any failed. Running it again skips the devices already
    registered. 'jitr fleet reset --manifest' removes the batch again.
    """
    request = RegisterRequest(
        manifest=manifest,
        method=method,
        thing_type=thing_type,
        group=group,
        policy=policy,
        concurrency=concurrency,
        without_ca=without_ca,
        shared_certificate=shared_certificate,
        results=results,
        bucket=bucket,
        role_arn=role_arn,
        poll_interval=poll_interval,
    )
    ca = _batch_ca(manifest, directory, required=not without_ca)
    api = IotApi.connect(pacer=Pacer(), connections=concurrency)
    s3 = S3Api.connect() if method == "task" else None
    if shared_certificate:
        typer.echo(f"Warning: {SHARED_WARNING}", err=True)
    with ProgressBar("registering", quiet=as_json) as bar:
        report = register_fleet(api, request, ca=ca, now=dt.datetime.now(dt.UTC), s3=s3, progress=bar)
    emit(report.summary(), as_json, _register_summary(report))
    if report.count(FAILED):
        raise JitrError(
            f"{report.count(FAILED)} of {len(report.outcomes)} devices were not registered; "
            f"the reasons are in {report.request.results_path}."
        )


def _batch_ca(manifest: Path, directory: Path | None, *, required: bool):
    """The CA that signed the batch: the signing CA of --dir, else the ca.pem beside the manifest."""
    if directory is not None:
        return PkiStore(directory).signer_certificate()
    beside = manifest_ca(manifest)
    if beside.is_file():
        return load_certificate(read_bytes(beside, "CA certificate"), str(beside))
    if required:
        raise NotFoundError(
            f"No CA certificate beside {manifest} and no --dir: say which CA signed the batch with --dir PKI "
            "(or register without a CA with --without-ca)."
        )
    return None


def _register_summary(report: RegisterReport) -> str:
    lines = [
        f"Registered {report.count('registered')} devices, skipped {report.count('skipped')} already registered, "
        f"failed {report.count(FAILED)} ({report.seconds:.1f} s, {report.rate:,.1f} devices/s"
        + (f", {sum(report.throttles.values())} throttled calls retried" if report.throttles else "")
        + ")."
    ]
    failures = [outcome for outcome in report.outcomes if outcome.status == FAILED]
    for outcome in failures[:10]:
        lines.append(f"  line {outcome.line} ({outcome.thing_name or '?'}): {outcome.reason}")
    if len(failures) > 10:
        lines.append(f"  ... and {len(failures) - 10} more")
    lines.append(f"Results: {report.request.results_path}")
    return "\n".join(lines)


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
    if "provisioningApi" in report:
        api = report["provisioningApi"]
        fleet += (
            f"\nProvisioning API: deleted {len(api['certificatesDeleted'])} certificates and "
            f"{len(api['thingsDeleted'])} things it had registered."
        )
    if "claims" in report:
        claims = report["claims"]
        fleet += (
            f"\nProvisioning by claim: deleted templates {', '.join(claims['templates']) or 'none'}, "
            f"{len(claims['policies'])} policies and {len(claims['certificates'])} claim certificates."
        )
    if "hostingBucket" in report:
        fleet += f"\nEmptied the web page's bucket {report['hostingBucket']}: {report['siteObjectsDeleted']} objects."
    if report["bucket"] is None:
        return fleet
    if report["bucketGone"]:
        return f"{fleet}\nBucket {report['bucket']} is already gone."
    return f"{fleet}\nEmptied {report['bucket']}: deleted {report['objectsDeleted']} object versions and markers."
