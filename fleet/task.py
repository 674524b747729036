"""Registering a fleet with one bulk registration task (``jitr fleet register --method task``).

AWS IoT's StartThingRegistrationTask takes a provisioning template and a newline-delimited JSON
file in S3, one device's parameter values a line, and registers the devices itself. The kit writes
that file beside the manifest, uploads it, starts the task, follows its progress, and reads back its
reports: RESULTS and ERRORS files of JSON lines whose ``offset`` is the 0-based line of the input
file (the line format is taken from AWS's samples and read tolerantly). Only one task runs per
account at a time; Ctrl-C stops the task.

The template registers the certificate with the CA certificate (a parameter default, so the lines
stay short), creates the thing with its type, group and attributes, attaches the existing device
policy, and sets the certificate ACTIVE.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from base.errors import AwsError, InvalidInputError
from base.files import FileSpec, write_files
from ca.jitp_template import template_body
from cloud.iot import IotApi
from cloud.s3 import S3Api, fetch_url
from fleet.devices import FAILED, REGISTERED, Device, Outcome
from fleet.requests import ProgressReporter, RegisterRequest, Setup

KEY_PREFIX = "jitr-fleet-register"
INPUT_FILE = "registration-task-input.jsonl"
TERMINAL = ("Completed", "Failed", "Cancelled")
RESULTS, ERRORS = "RESULTS", "ERRORS"


def _attribute_parameter(name: str) -> str:
    return f"Attribute_{name}"


def common_attributes(devices: list[Device]) -> list[str]:
    """The attribute names every device has (the template declares one parameter each)."""
    names = set(devices[0].attributes)
    for device in devices[1:]:
        names &= set(device.attributes)
    return sorted(names)


def task_template(setup: Setup, attributes: list[str]) -> dict[str, Any]:
    """The provisioning template the task runs for each line."""
    parameters: dict[str, Any] = {"ThingName": {"Type": "String"}}
    certificate: dict[str, Any] = {"Status": "ACTIVE"}
    if setup.shared:
        certificate["CertificateId"] = setup.shared[0]
    else:
        parameters["CertificatePem"] = {"Type": "String"}
        certificate["CertificatePem"] = {"Ref": "CertificatePem"}
        if setup.ca_pem is not None:
            parameters["CACertificatePem"] = {"Type": "String", "Default": setup.ca_pem}
            certificate["CACertificatePem"] = {"Ref": "CACertificatePem"}
    thing: dict[str, Any] = {"ThingName": {"Ref": "ThingName"}}
    if attributes:
        for name in attributes:
            parameters[_attribute_parameter(name)] = {"Type": "String"}
        thing["AttributePayload"] = {name: {"Ref": _attribute_parameter(name)} for name in attributes}
    if setup.thing_type:
        thing["ThingTypeName"] = setup.thing_type
    if setup.group:
        thing["ThingGroups"] = [setup.group]
    return {
        "Parameters": parameters,
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": thing,
                "OverrideSettings": {
                    "AttributePayload": "MERGE",
                    "ThingTypeName": "REPLACE",
                    "ThingGroups": "DO_NOTHING",
                },
            },
            "certificate": {"Type": "AWS::IoT::Certificate", "Properties": certificate},
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": setup.policy}},
        },
    }


def input_lines(devices: list[Device], setup: Setup, attributes: list[str]) -> bytes:
    """The task's input file: one JSON object of parameter values a device, in ``devices``' order."""
    lines = []
    for device in devices:
        values = {"ThingName": device.thing_name}
        if not setup.shared:
            values["CertificatePem"] = device.certificate_pem
        for name in attributes:
            values[_attribute_parameter(name)] = device.attributes[name]
        lines.append(json.dumps(values, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def read_reports(api: IotApi, task_id: str, report_type: str) -> list[dict]:
    """Every line of a task's RESULTS or ERRORS reports."""
    lines = []
    for link in api.registration_task_reports(task_id, report_type):
        for raw in fetch_url(link).splitlines():
            if raw.strip():
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    continue  # a line the kit cannot read says nothing about a device
    return lines


def _offset(line: dict) -> int | None:
    value = line.get("offset", line.get("Offset"))
    return value if isinstance(value, int) else None


def outcomes_from_reports(devices: list[Device], results: list[dict], errors: list[dict], ending: str) -> list[Outcome]:
    """Each device's outcome from the report lines naming its offset; ``ending`` explains the missing ones."""
    succeeded = {_offset(line) for line in results}
    failed = {_offset(line): line for line in errors}
    outcomes = []
    for offset, device in enumerate(devices):
        if offset in failed:
            line = failed[offset]
            reason = str(line.get("errorMessage") or line.get("message") or "the task reported an error")
            outcomes.append(Outcome(device.line, device.thing_name, device.certificate_id, FAILED, reason.rstrip(".")))
        elif offset in succeeded:
            outcomes.append(Outcome(device.line, device.thing_name, device.certificate_id, REGISTERED))
        else:
            outcomes.append(Outcome(device.line, device.thing_name, device.certificate_id, FAILED, ending))
    return outcomes


def wait_for_task(
    api: IotApi,
    task_id: str,
    *,
    poll: float,
    progress: ProgressReporter,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Follow the task until it ends (its last description); Ctrl-C stops it."""
    reported = 0
    try:
        while True:
            described = api.describe_registration_task(task_id)
            done = int(described.get("successCount") or 0) + int(described.get("failureCount") or 0)
            if done > reported:
                progress.advance(done - reported)
                reported = done
            if described.get("status") in TERMINAL:
                return described
            sleep(poll)
    except KeyboardInterrupt:
        api.stop_registration_task(task_id)
        raise


def register_by_task(
    api: IotApi,
    s3: S3Api | None,
    request: RegisterRequest,
    setup: Setup,
    devices: list[Device],
    *,
    progress: ProgressReporter,
) -> tuple[list[Outcome], str]:
    """Register ``devices`` with one thing registration task; their outcomes and the task id."""
    if s3 is None:
        raise AwsError("The task method needs S3 for its input file.")
    attributes = common_attributes(devices)
    body = input_lines(devices, setup, attributes)
    folder = Path(request.manifest).parent
    write_files(folder, {INPUT_FILE: FileSpec(body)}, overwrite=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    key = f"{KEY_PREFIX}/{Path(request.manifest).parent.name or 'batch'}-{stamp}.jsonl"
    if request.bucket is None or request.role_arn is None:  # RegisterRequest refuses a task without them
        raise InvalidInputError("--method task needs --bucket and --role-arn.")
    s3.ensure_bucket(request.bucket)
    s3.put_object(request.bucket, key, body)
    task_id = api.start_registration_task(
        template_body=template_body(task_template(setup, attributes)),
        bucket=request.bucket,
        key=key,
        role_arn=request.role_arn,
    )
    described = wait_for_task(api, task_id, poll=request.poll_interval, progress=progress)
    results, errors = read_reports(api, task_id, RESULTS), read_reports(api, task_id, ERRORS)
    status, message = described.get("status"), (described.get("message") or "").rstrip(".")
    ending = f"task {task_id} ended {status}{f' ({message})' if message else ''} without reporting this device"
    return outcomes_from_reports(devices, results, errors, ending), task_id
