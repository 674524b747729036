"""Thing registration tasks (bulk registration), which moto lacks.

StartThingRegistrationTask reads the newline-delimited JSON input file from the emulator's S3 and,
in a background thread, runs the task's template once for each line: the line holds one device's
parameter values (``{"ThingName": "sensor-1", "CertificatePem": "-----BEGIN…"}``), and the
template registers the certificate, creates the thing, the policy and both attachments, and sets
the certificate's status, in the order JITP uses (AWS-FACTS.md). Its reports are S3 objects of
JSON lines, one a device, ``offset`` being the line's 0-based position in the input file:

- RESULTS: ``{"offset": 0, "response": {"ResourceArns": {"certificate": …, "thing": …, "policy": …}}}``
- ERRORS: ``{"offset": 3, "errorMessage": "…"}``

ListThingRegistrationTaskReports answers presigned links to them, as AWS does: any HTTP GET reads
them. AWS keeps the reports in a bucket of its own; here that bucket is in the account moto gives an
unknown access key (the default account), where the presigned links find it.
DescribeThingRegistrationTask counts successes and failures as the task runs;
StopThingRegistrationTask cancels it between two lines; ListThingRegistrationTasks lists them.

Only one task runs at a time in an account and region (InvalidRequestException for another). The
calls a task makes spend the account's quotas like API callers' do; the task waits for its quota
rather than failing lines (what AWS does there is unconfirmed). The report line format follows AWS's
bulk-registration samples (unconfirmed: readers should tolerate other members).

Each line runs through the same :class:`emulator.iot.template_runner.TemplateRunner` as JITP; here the
parameters come from the input line (:class:`TaskLines`), and the certificate from ``CertificatePem``
or ``CertificateId``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from moto.core.utils import utcnow

from base.errors import JitrError
from emulator.api.calls import Call, page
from emulator.api.middleware import account_of
from emulator.api.provisioning_templates import check_body
from emulator.api.quotas import Quotas
from emulator.iot.template_runner import ProvisioningError, TemplateRunner, resolve_parameters
from emulator.store.backends import s3_backend
from emulator.store.errors import InvalidRequest, ResourceNotFound, choice
from emulator.store.records import (
    CANCELLED,
    CANCELLING,
    COMPLETED,
    ERRORS,
    FAILED,
    IN_PROGRESS,
    RESULTS,
    RUNNING,
    STATUSES,
    RegistrationTask,
)

log = logging.getLogger(__name__)

REPORT_BUCKET = "jitr-emulator-thing-registration-reports"  # AWS keeps reports in a bucket of its own
REPORT_LINES = 1000  # lines an S3 report object holds
PRESIGN_KEY = "jitr-emulator"  # the access key the report links are signed with (moto does not check it)
LINK_EXPIRY = 3600
PACE_INTERVAL = 0.005  # seconds between two looks at a spent quota
BUCKET_RE = re.compile(r"^[a-zA-Z0-9._-]{3,256}$")
KEY_RE = re.compile(r"^[a-zA-Z0-9!_.*'()/-]{1,1024}$")


# -- the task in the background ---------------------------------------------------------------------------


def _pacer(quotas: Quotas | None, account: str, region: str, cancel: threading.Event) -> Callable[[str], None]:
    def pace(operation: str) -> None:
        while quotas is not None and not quotas.allow(operation, account, region):
            if cancel.wait(PACE_INTERVAL):
                return  # stopping: finish this line quickly

    return pace


class _Reports:
    """Report lines, written to S3 a chunk at a time."""

    def __init__(self, s3, task: RegistrationTask, region: str) -> None:
        self.s3, self.task = s3, task
        self.pending: dict[str, list[bytes]] = {RESULTS: [], ERRORS: []}
        if REPORT_BUCKET not in s3.buckets:
            s3.create_bucket(REPORT_BUCKET, region)

    def add(self, kind: str, line: dict[str, Any]) -> None:
        self.pending[kind].append(json.dumps(line, separators=(",", ":")).encode())
        if len(self.pending[kind]) >= REPORT_LINES:
            self.flush(kind)

    def flush(self, kind: str) -> None:
        lines = self.pending[kind]
        if not lines:
            return
        key = f"{self.task.task_id}/{kind.lower()}/{len(self.task.reports[kind]) + 1:05d}.jsonl"
        self.s3.put_object(REPORT_BUCKET, key, b"\n".join(lines) + b"\n")
        self.task.reports[kind].append(key)
        self.pending[kind] = []


def report_store():
    """The S3 backend that holds the reports: the account moto gives the access key the links are signed with."""
    return s3_backend(account_of({}, PRESIGN_KEY))


@functools.lru_cache(maxsize=8)
def _presigner(api_url: str):
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=PRESIGN_KEY, aws_secret_access_key=PRESIGN_KEY, region_name="us-east-1"
    )
    return session.client("s3", endpoint_url=api_url)


def report_link(api_url: str, key: str) -> str:
    return _presigner(api_url).generate_presigned_url(
        "get_object", Params={"Bucket": REPORT_BUCKET, "Key": key}, ExpiresIn=LINK_EXPIRY
    )


class TaskLines:
    """A task's template, run for one input line's parameter values at a time."""

    def __init__(self, template: Mapping[str, Any], runner: TemplateRunner) -> None:
        self.template = template
        self.runner = runner

    def run(self, parameters: Mapping[str, Any]) -> dict[str, str]:
        """Register one device; the ARNs of what it made (``certificate``, ``thing``, ``policy``)."""
        for name, spec in (self.template.get("Parameters") or {}).items():
            if not isinstance(parameters.get(name), str) and not (isinstance(spec, dict) and "Default" in spec):
                raise ProvisioningError(f"The line gives no string value for {name}, which the template declares.")
        values = resolve_parameters(self.template, {k: v for k, v in parameters.items() if isinstance(v, str)})
        return self.runner.run(self.template, values).arns()


def run_task(task: RegistrationTask, runner: TaskLines, s3, region: str) -> None:
    """Run every line of the task's input file (in ``s3``, the account's S3 backend); the task's counters
    and reports tell how it went."""
    try:
        body = s3.get_object(task.bucket, task.key).value
        lines = body.decode().splitlines()
    except Exception as exc:  # moto's MissingBucket, MissingKey; a file that is not text
        _finish(task, FAILED, f"The input file s3://{task.bucket}/{task.key} cannot be read: {exc}.")
        return
    task.total = sum(1 for line in lines if line.strip())
    reports = _Reports(report_store(), task, region)
    for offset, line in enumerate(lines):
        if task.cancel.is_set():
            break
        if not line.strip():
            continue
        try:
            parameters = json.loads(line)
            if not isinstance(parameters, dict):
                raise ProvisioningError("The line is not a JSON object of parameter values.")
            reports.add(RESULTS, {"offset": offset, "response": {"ResourceArns": runner.run(parameters)}})
            task.success += 1
        except (JitrError, ValueError) as exc:  # the emulator's AWS errors, template errors, bad JSON
            reports.add(ERRORS, {"offset": offset, "errorMessage": str(exc)})
            task.failure += 1
        except Exception as exc:  # a bug in the runner: report the line, keep the traceback in the log
            log.exception("registration task %s failed on line %d", task.task_id, offset)
            reports.add(ERRORS, {"offset": offset, "errorMessage": f"Internal failure: {exc}"})
            task.failure += 1
        task.modified = utcnow()
    reports.flush(RESULTS)
    reports.flush(ERRORS)
    if task.cancel.is_set():
        _finish(task, CANCELLED, "The task was stopped.")
    else:
        _finish(task, COMPLETED, "")


def _finish(task: RegistrationTask, status: str, message: str) -> None:
    task.message = message
    task.modified = utcnow()
    task.status = status


# -- the API handlers -------------------------------------------------------------------------------------------


def find_task(call: Call, task_id: str) -> RegistrationTask:
    task = call.state.registration_tasks.get(task_id)
    if task is None:
        raise ResourceNotFound(f"Thing registration task {task_id} does not exist.")
    return task


def start_thing_registration_task(call: Call) -> dict[str, Any]:
    body = check_body(call.text("templateBody", required=True))
    bucket = call.text("inputFileBucket", required=True)
    key = call.text("inputFileKey", required=True)
    role = call.text("roleArn", required=True, max_length=2048)
    if not BUCKET_RE.match(bucket):
        raise InvalidRequest(f"inputFileBucket {bucket!r} is not a bucket name.")
    if not KEY_RE.match(key):
        raise InvalidRequest(f"inputFileKey {key!r} is not an S3 key AWS IoT accepts ([a-zA-Z0-9!_.*'()-/]+).")
    if len(role) < 20:
        raise InvalidRequest("roleArn must be the ARN of a role that can read the input file.")
    now = utcnow()
    task = RegistrationTask(str(uuid.uuid4()), body, bucket, key, role, created=now, modified=now)
    with call.state.lock:
        running = [other.task_id for other in call.state.registration_tasks.values() if other.status in RUNNING]
        if running:
            raise InvalidRequest(
                f"Thing registration task {running[0]} is still running; only one runs at a time in an account."
            )
        call.state.registration_tasks[task.task_id] = task
    pace = _pacer(call.settings.quotas, call.account, call.region, task.cancel)
    runner = TaskLines(json.loads(body), TemplateRunner(call.backend, call.state.lock, pace))
    s3 = s3_backend(call.account)
    threading.Thread(
        target=run_task, args=(task, runner, s3, call.region), name=f"registration-task-{task.task_id}", daemon=True
    ).start()
    return {"taskId": task.task_id}


def describe_thing_registration_task(call: Call) -> dict[str, Any]:
    return find_task(call, call.path["taskId"]).description()


def list_thing_registration_tasks(call: Call) -> dict[str, Any]:
    size = call.query_int("maxResults", 250, low=1, high=250)
    status = choice(call.query.get("status"), STATUSES, "status")
    tasks = sorted(call.state.registration_tasks.values(), key=lambda task: task.created, reverse=True)
    ids = [task.task_id for task in tasks if status is None or task.status == status]
    items, token = page(ids, call.query.get("nextToken"), size)
    answer: dict[str, Any] = {"taskIds": items}
    if token:
        answer["nextToken"] = token
    return answer


def list_thing_registration_task_reports(call: Call) -> dict[str, Any]:
    kind = choice(call.query.get("reportType"), (RESULTS, ERRORS), "reportType")
    if kind is None:
        raise InvalidRequest("reportType is required (RESULTS or ERRORS).")
    size = call.query_int("maxResults", 250, low=1, high=250)
    task = find_task(call, call.path["taskId"])
    keys, token = page(list(task.reports[kind]), call.query.get("nextToken"), size)
    items = [report_link(call.settings.api_url, key) for key in keys] if call.settings.api_url else []
    answer: dict[str, Any] = {"resourceLinks": items, "reportType": kind}
    if token:
        answer["nextToken"] = token
    return answer


def stop_thing_registration_task(call: Call) -> dict[str, Any]:
    with call.state.lock:
        task = find_task(call, call.path["taskId"])
        if task.status == IN_PROGRESS:
            task.status = CANCELLING
            task.modified = utcnow()
            task.cancel.set()
    return {}


HANDLERS = {
    "StartThingRegistrationTask": start_thing_registration_task,
    "DescribeThingRegistrationTask": describe_thing_registration_task,
    "ListThingRegistrationTasks": list_thing_registration_tasks,
    "ListThingRegistrationTaskReports": list_thing_registration_task_reports,
    "StopThingRegistrationTask": stop_thing_registration_task,
}
