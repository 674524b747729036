"""``jitr device enroll``: a device with a serial and a token gets its certificate from the provisioning API;
and ``simulate --enroll``'s first half, a whole admitted batch enrolling.

Registered on the ``device`` sub-app by :mod:`cli.device_app`; the work is :mod:`device.enroll` and
:mod:`device.enroll_batch`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from base.errors import InvalidInputError
from base.keys import KeyType
from cli.common import JsonOption, connect_line, emit
from cli.progress import ProgressBar
from device.enroll import ask_config, enroll, provisioning_requests
from device.enroll_batch import enroll_batch, read_tokens
from device.errors import DevicesFailedError

ROOT_CA_ENV = "JITR_ROOT_CA"  # set by 'jitr local env': the emulator's endpoint CA, named in the connect line


def enroll_command(
    serial: Annotated[str, typer.Option("--serial", help="The device's serial (its thing name).")],
    token: Annotated[
        str,
        typer.Option(
            "--token", envvar="JITR_DEVICE_TOKEN", help="The device's token from 'jitr fleet admit' (or the variable)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Where the key (private/, 0600) and certificate (certs/) go.")],
    api: Annotated[
        str | None, typer.Option("--api", help="The provisioning API URL (the stack's ProvisioningApiUrl).")
    ] = None,
    config_url: Annotated[
        str | None,
        typer.Option("--config-url", help="Ask this URL's GET /config first which region (and API) to use."),
    ] = None,
    country: Annotated[str | None, typer.Option("--country", help="With --config-url: the device's country.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="With --config-url: its state or province.")] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Re-issue: a new key and certificate for a registered device.")
    ] = False,
    key_type: Annotated[KeyType, typer.Option("--key-type", help="The key made on the device.")] = KeyType.EC_P256,
    as_json: JsonOption = False,
) -> None:
    """Make a key on the device, send its CSR with the serial and token, save the certificate AWS IoT issued.

    With --config-url (and --country), GET /config says which region's API and IoT endpoint the
    device belongs to. 429 and 5xx answers, and no answer, are retried with backoff and jitter; a
    refusal (wrong token, unknown serial, already registered) stops at once with the API's sentence
    (exit 18). --replace re-issues: the old certificate is retired once the new one works.
    Prints the 'jitr device connect' line to run next.
    """
    if config_url is None and (country or state):
        raise InvalidInputError("--country and --state go with --config-url.")
    requests = provisioning_requests(
        on_retry=(lambda _why: None) if as_json else lambda why: typer.echo(f"retrying: {why}", err=True)
    )
    region = None
    if config_url is not None:
        if not country:
            raise InvalidInputError("--config-url needs --country (two letters, such as DE).")
        found = ask_config(requests, config_url, country, state)
        api, region = api or found.provisioning_url, found.region
        if not as_json:
            typer.echo(f"{country.upper()}{'-' + state.upper() if state else ''} uses {found.region}: {api}", err=True)
    if api is None:
        raise InvalidInputError("Say where to enroll: --api URL, or --config-url URL --country CC.")
    enrolled = enroll(requests, api, serial, token, out, replace=replace, key_type=key_type)
    line = connect_line(
        enrolled.iot_endpoint,
        enrolled.certificate,
        enrolled.key,
        topic_root=enrolled.topic_root,
        root_ca=os.environ.get(ROOT_CA_ENV),
    )
    result = enrolled.as_dict() | {"configRegion": region, "connect": line}
    emit(
        result,
        as_json,
        f"{'Re-issued' if replace else 'Enrolled'} {enrolled.thing_name} in {enrolled.region} "
        f"(certificate {enrolled.certificate_id[:12]}...). Connect with:\n  {line}",
    )


def enroll_for_simulation(tokens: Path, api: str, out: Path, *, concurrency: int, as_json: bool) -> Path:
    pairs = read_tokens(tokens)
    with ProgressBar("enrolling", len(pairs), quiet=as_json) as bar:
        requests = provisioning_requests()
        summary = enroll_batch(requests, api, pairs, out, concurrency=concurrency, progress=lambda _ok: bar())
    if not as_json:
        typer.echo(f"Enrolled {summary.enrolled} of {summary.devices} devices into {out}.", err=True)
        for example in summary.examples:
            typer.echo(f"  {example}", err=True)
    if summary.manifest is None:
        raise DevicesFailedError(f"None of the {summary.devices} devices of {tokens} enrolled.")
    if summary.enrolled < summary.devices:
        typer.echo(f"Connecting the {summary.enrolled} that enrolled.", err=True)
    return summary.manifest
