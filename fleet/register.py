"""Registering a minted fleet up front (``jitr fleet register``), for manufacturers who do not want
devices to register themselves on first connect.

Every device of a mint manifest gets, in AWS IoT, its certificate registered (under the CA, or
without one for multi-account registration), a thing named after it (thing type, group, and
attributes from the certificate subject), the device policy and the thing attached, and only then
its certificate ACTIVE: a device never holds an ACTIVE certificate that is not fully set up.

Two methods:

- ``api`` (default): those calls, one device per thread in ``concurrency`` threads. Each AWS API
  has its own per-account quota (RegisterCertificate and UpdateCertificate 10 a second by default),
  so a throttled call waits and is retried through a :class:`cloud.pacing.Pacer` the threads share,
  never dropping a device: the run sits at the quota ceiling.
- ``task``: one StartThingRegistrationTask does the same from a file in S3
  (:mod:`fleet.task`).

Lines that cannot be registered (not JSON, a bad thing name, a certificate the CA did not sign,
expired, or whose CN is not the thing name, a duplicate) are reported as failed with the reason,
and the others are registered. The results go to a JSON file beside the manifest; a re-run skips
the devices it records as registered whose certificate is still ACTIVE in AWS IoT, which costs one
listing of certificates instead of calls per device.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from cryptography import x509

from base.certificates import certificate_id, to_pem
from base.errors import AwsError, InvalidInputError
from base.files import FileSpec, write_files
from base.names import OWNER_ATTRIBUTE
from ca.jitp_template import device_policy
from cloud.iot import IotApi
from cloud.s3 import S3Api
from fleet.devices import FAILED, REGISTERED, SKIPPED, Device, Outcome, load_devices
from fleet.requests import (
    SHARED_WARNING,
    ProgressReporter,
    RegisterReport,
    RegisterRequest,
    Setup,
    SilentProgress,
)
from fleet.task import register_by_task

# -- what an earlier run did --------------------------------------------------------------------------------


def previously_registered(results: Path) -> dict[str, str]:
    """Thing name -> certificate id of the devices an earlier run's results file records as done."""
    try:
        data = json.loads(Path(results).read_bytes())
        entries = data["devices"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {
        entry["thingName"]: entry["certificateId"]
        for entry in entries
        if isinstance(entry, dict) and entry.get("status") in (REGISTERED, SKIPPED) and entry.get("certificateId")
    }


def active_certificates(api: IotApi, ca_certificate_id: str | None) -> set[str]:
    """The ids of the ACTIVE certificates under the CA (of the whole account without one)."""
    listing = api.list_certificates_by_ca(ca_certificate_id) if ca_certificate_id else api.list_certificates()
    return {cert["certificateId"] for cert in listing if cert.get("status") == "ACTIVE"}


def split_done(
    devices: list[Device], done: dict[str, str], active: set[str], *, shared_id: str | None = None
) -> tuple[list[Device], list[Outcome]]:
    """Devices still to register, and skipped outcomes for those already registered and still ACTIVE."""
    pending, skipped = [], []
    for device in devices:
        cert_id = shared_id or device.certificate_id
        if done.get(device.thing_name) == cert_id and cert_id in active:
            skipped.append(Outcome(device.line, device.thing_name, cert_id, SKIPPED, "registered by an earlier run"))
        else:
            pending.append(device)
    return pending, skipped


# -- the api method -------------------------------------------------------------------------------------------


def foreign_owner(api: IotApi, thing_name: str, certificate_arn: str, ca_id: str | None) -> str | None:
    """Why an existing thing is another CA's (its owner attribute, or a certificate on it), or None."""
    owner = (api.thing_attributes(thing_name) or {}).get(OWNER_ATTRIBUTE)
    if owner and owner != ca_id:
        return f"refused: the thing {thing_name} belongs to CA {owner}"
    for principal in api.list_thing_principals(thing_name):
        if principal == certificate_arn or ":cert/" not in principal:
            continue
        other = api.certificate_ca(principal.rsplit("/", 1)[1])
        if other != ca_id:
            return f"refused: the thing {thing_name} has certificate {principal.rsplit('/', 1)[1]} of CA {other}"
    return None


def prepare(api: IotApi, request: RegisterRequest) -> dict[str, bool]:
    """Create the thing type, the group and the device policy unless they exist; which were created."""
    created = {}
    if request.thing_type:
        created["thingType"] = api.ensure_thing_type(request.thing_type)
    if request.group:
        created["thingGroup"] = api.ensure_thing_group(request.group)
    created["policy"] = api.ensure_policy(request.policy, json.dumps(device_policy(), separators=(",", ":")))
    return created


def register_device(api: IotApi, setup: Setup, device: Device) -> Outcome:
    """The calls for one device, in order; activation last. Every step tolerates what already exists."""
    cert_id = setup.shared[0] if setup.shared else device.certificate_id
    try:
        if setup.shared:
            arn = setup.shared[1]
        else:
            cert_id, arn, _ = api.register_certificate(device.certificate_pem, ca_pem=setup.ca_pem)
        # The attributes hold the certificate's serial, so CreateThing succeeds again only for this very
        # certificate: an existing thing is checked for another CA's owner attribute or certificates.
        created = api.create_thing(device.thing_name, thing_type=setup.thing_type, attributes=device.attributes)
        refusal = None if created else foreign_owner(api, device.thing_name, arn, setup.ca_id)
        if refusal:  # the certificate stays registered INACTIVE, attached to nothing
            return Outcome(device.line, device.thing_name, cert_id, FAILED, refusal)
        if setup.group:
            api.add_thing_to_group(setup.group, device.thing_name)
        if not setup.shared:
            api.attach_policy(setup.policy, arn)
        api.attach_thing_principal(device.thing_name, arn)
        if not setup.shared and not api.update_certificate(cert_id, "ACTIVE"):
            raise AwsError(f"Certificate {cert_id} was deleted while it was being registered.")
    except AwsError as exc:
        return Outcome(device.line, device.thing_name, cert_id, FAILED, str(exc).rstrip("."))
    note = None if created else "the thing existed already with another type or attributes; it was kept as it is"
    return Outcome(device.line, device.thing_name, cert_id, REGISTERED, note)


def run_bounded(
    items: Iterable[Device], work: Callable[[Device], Outcome], concurrency: int, progress: ProgressReporter
) -> list[Outcome]:
    """``work`` on every item in ``concurrency`` threads, at most a few items a thread in flight."""
    outcomes: list[Outcome] = []
    window = concurrency * 4
    iterator: Iterator[Device] = iter(items)
    with ThreadPoolExecutor(concurrency, thread_name_prefix="jitr-register") as pool:
        pending: set[Future] = set()
        for item in iterator:
            pending.add(pool.submit(work, item))
            if len(pending) >= window:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                outcomes.extend(_collected(finished, progress))
        outcomes.extend(_collected(pending, progress))
    return outcomes


def _collected(futures: Iterable[Future], progress: ProgressReporter) -> list[Outcome]:
    done = [future.result() for future in futures]
    progress.advance(len(done))
    return done


def register_by_api(
    api: IotApi, setup: Setup, devices: list[Device], request: RegisterRequest, progress: ProgressReporter
) -> list[Outcome]:
    return run_bounded(devices, lambda device: register_device(api, setup, device), request.concurrency, progress)


def register_shared(api: IotApi, setup: Setup, first: Device) -> Setup:
    """Register the shared certificate once (INACTIVE until the things are attached) with the policy."""
    cert_id, arn, _ = api.register_certificate(first.certificate_pem, ca_pem=setup.ca_pem)
    api.attach_policy(setup.policy, arn)
    return Setup(setup.ca_pem, setup.policy, setup.thing_type, setup.group, shared=(cert_id, arn), ca_id=setup.ca_id)


# -- the run ----------------------------------------------------------------------------------------------------


def register_fleet(
    api: IotApi,
    request: RegisterRequest,
    *,
    ca: x509.Certificate | None,
    now: dt.datetime,
    s3: S3Api | None = None,
    progress: ProgressReporter | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RegisterReport:
    """Register the manifest's devices (see the module docstring); the results file is written too."""
    progress = progress or SilentProgress()
    started = clock()
    if ca is None and not request.without_ca:
        raise InvalidInputError("Registering under a CA needs its certificate: give --dir, or use --without-ca.")
    devices, outcomes = load_devices(request.manifest, ca=ca, now=now)
    under_ca = None if request.without_ca else ca
    ca_id = certificate_id(under_ca) if under_ca is not None else None
    setup = Setup(
        ca_pem=to_pem(under_ca).decode() if under_ca is not None else None,
        policy=request.policy,
        thing_type=request.thing_type,
        group=request.group,
        ca_id=ca_id,
    )
    warnings = [SHARED_WARNING] if request.shared_certificate else []
    done = previously_registered(request.results_path)
    shared_id = devices[0].certificate_id if request.shared_certificate and devices else None
    active = active_certificates(api, ca_id) if done and devices else set()
    pending, skipped = split_done(devices, done, active, shared_id=shared_id)
    outcomes += skipped
    created: dict[str, bool] = {}
    task_id = None
    progress.start(len(pending))
    if pending:
        created = prepare(api, request)
        if request.shared_certificate:
            setup = register_shared(api, setup, devices[0])
        if request.method == "api":
            outcomes += register_by_api(api, setup, pending, request, progress)
        else:
            task_outcomes, task_id = register_by_task(api, s3, request, setup, pending, progress=progress)
            outcomes += task_outcomes
        if setup.shared and any(outcome.status == REGISTERED for outcome in outcomes):
            api.update_certificate(setup.shared[0], "ACTIVE")  # last, once the things are attached
    outcomes.sort(key=lambda outcome: outcome.line)
    pacer = getattr(api, "pacer", None)
    report = RegisterReport(
        request,
        outcomes,
        clock() - started,
        throttles=pacer.throttles() if pacer is not None else {},
        created=created,
        warnings=warnings,
        task_id=task_id,
    )
    write_results(report)
    return report


def write_results(report: RegisterReport) -> Path:
    path = report.request.results_path
    body = json.dumps(report.as_dict(), indent=1).encode() + b"\n"
    write_files(path.parent, {path.name: FileSpec(body)}, overwrite=True)
    return path
