"""``jitr local …``: run the local AWS IoT Core and deploy SAM stacks into it."""

from __future__ import annotations

import json
import math
import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from ca import config
from ca.cli.common import JsonOption, emit, handle_errors
from ca.errors import InvalidInputError, NotFoundError
from ca.files import FileSpec, write_files

app = typer.Typer(
    help="Run a local emulator of AWS IoT Core and deploy the kit's stack into it.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

DEFAULT_STATE = Path(".jitr-local")
ENDPOINT_FILE = "endpoint.json"
StateOption = Annotated[Path, typer.Option("--state-dir", help="Where the emulator keeps its endpoint CA and logs.")]


def parse_quotas(values: list[str]) -> dict[str, float]:
    """``API=TPS`` values; ``aws-defaults`` stands for AWS's default quotas (later values override it)."""
    from emulator.api.default_quotas import AWS_DEFAULT_QUOTAS, AWS_DEFAULTS_NAME

    quotas: dict[str, float] = {}
    for value in values:
        if value == AWS_DEFAULTS_NAME:
            quotas.update(AWS_DEFAULT_QUOTAS)
            continue
        name, _, rate = value.partition("=")
        try:
            quotas[name] = float(rate)
        except ValueError:
            raise InvalidInputError(f"Invalid quota {value!r}; use API=TPS, such as UpdateCertificate=10.") from None
        if not name or quotas[name] <= 0:
            raise InvalidInputError(f"Invalid quota {value!r}; use API=TPS with a positive rate.")
    return quotas


def parse_retry_delays(value: str) -> tuple[float, float]:
    """``SECONDS,SECONDS``: the waits before Lambda's two retries of a failed asynchronous invocation."""
    parts = [part.strip() for part in value.split(",")]
    try:
        delays = tuple(float(part) for part in parts)
    except ValueError:
        delays = ()
    if len(delays) != 2 or not all(math.isfinite(delay) and delay >= 0 for delay in delays):
        raise InvalidInputError(
            f"Invalid Lambda retry delays {value!r}; use two numbers of seconds, such as 60,120 (AWS's)."
        )
    return delays


def parse_overrides(values: list[str]) -> dict[str, str]:
    overrides = {}
    for value in values:
        for item in value.split():
            name, sep, setting = item.partition("=")
            if not sep or not name:
                raise InvalidInputError(f"Invalid parameter override {item!r}; use Name=Value.")
            overrides[name] = setting
    return overrides


@app.command()
@handle_errors
def up(
    api_port: Annotated[int, typer.Option("--api-port", help="AWS API port on 127.0.0.1 (0 picks a free one).")] = 0,
    mqtt_port: Annotated[int, typer.Option("--mqtt-port", help="MQTT/TLS port on 127.0.0.1 (0 picks a free one).")] = 0,
    state_dir: StateOption = DEFAULT_STATE,
    quota: Annotated[
        list[str] | None,
        typer.Option(
            "--quota",
            metavar="API=TPS",
            help="Per-API rate limit, API=TPS (repeatable), e.g. UpdateCertificate=10; 'aws-defaults' sets AWS's "
            "default quotas (RegisterCertificate 10/s, CreateThing 15/s, ...).",
        ),
    ] = None,
    jitp_drops: Annotated[
        bool, typer.Option("--jitp-drops-first-connect", help="Drop the first connect under JITP too (clients retry).")
    ] = False,
    lambda_retry_delays: Annotated[
        str,
        typer.Option(
            "--lambda-retry-delays",
            metavar="SECONDS,SECONDS",
            help="Waits before Lambda's two retries of a failed asynchronous invocation (what an IoT rule "
            "makes); AWS waits about a minute and two, e.g. 1,2 to see retries sooner.",
        ),
    ] = "60,120",
    as_json: JsonOption = False,
) -> None:
    """Start the emulator on loopback and run until interrupted (Ctrl-C).

    It prints where the AWS API and the MQTT broker listen; point boto3, the AWS CLI and jitr at
    it with AWS_ENDPOINT_URL, and devices at the MQTT port with the endpoint CA as root. Log groups
    are files in STATE/logs: what a Lambda function prints is in aws_lambda_<function>.log.
    """
    from emulator.local import LocalIot, Options

    options = Options(
        state_dir=state_dir,
        api_port=api_port,
        mqtt_port=mqtt_port,
        quotas=parse_quotas(quota or []),
        jitp_drops_first_connect=jitp_drops,
        lambda_retry_delays=parse_retry_delays(lambda_retry_delays),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalIot(options) as iot:
        info = iot.info()
        write_files(state_dir, {ENDPOINT_FILE: FileSpec(json.dumps(info, indent=2).encode())}, overwrite=True)
        exports = "\n".join(f"  export {k}={v}" for k, v in iot.environment().items())
        emit(
            info,
            as_json,
            f"AWS IoT Core emulator running (Ctrl-C stops it).\n"
            f"  AWS API:  {info['aws_endpoint_url']}\n"
            f"  MQTT/TLS: {info['mqtt_host']}:{info['mqtt_port']} (root CA {info['endpoint_ca']})\n"
            f"  Logs:     {Path(info['state_dir']) / 'logs'} (a file per log group: aws_lambda_<function>.log)\n"
            f"Point your shell at it:\n{exports}",
        )
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass


@app.command()
@handle_errors
def env(state_dir: StateOption = DEFAULT_STATE) -> None:
    """Print shell exports for a running emulator (eval "$(jitr local env)")."""
    path = state_dir / ENDPOINT_FILE
    if not path.exists():
        raise NotFoundError(
            f"No emulator state in {state_dir}; start one with 'jitr local up --state-dir {state_dir}'."
        )
    info = json.loads(path.read_text())
    values = {
        "AWS_ENDPOINT_URL": info["aws_endpoint_url"],
        "AWS_REGION": info["region"],
        "AWS_DEFAULT_REGION": info["region"],
        "AWS_ACCESS_KEY_ID": "emulator",
        "AWS_SECRET_ACCESS_KEY": "emulator",
        "JITR_MQTT_ENDPOINT": f"{info['mqtt_host']}:{info['mqtt_port']}",
        "JITR_ROOT_CA": info["endpoint_ca"],
    }
    typer.echo("\n".join(f"export {k}={v}" for k, v in values.items()))


def _deployer():
    if not os.environ.get(config.ENV_AWS_ENDPOINT_URL):
        raise InvalidInputError(
            "AWS_ENDPOINT_URL is not set: 'jitr local' deploys only into the emulator (start it with 'jitr local up', "
            'then eval "$(jitr local env)"); use sam deploy for AWS.'
        )
    from ca.aws_access import make_session
    from emulator.stack import StackDeployer

    session = make_session()
    account = session.client("sts").get_caller_identity()["Account"]
    return StackDeployer(session, account_id=account)


@app.command()
@handle_errors
def deploy(
    stack: Annotated[str, typer.Option("--stack", help="Stack name.")],
    template: Annotated[Path, typer.Option("--template", help="The SAM template.")] = Path("sam/template.yaml"),
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--parameter-overrides", metavar="NAME=VALUE", help="Template parameters, Name=Value (repeatable)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create the template's resources in the emulator (replacing an existing stack of that name)."""
    record = _deployer().deploy(template, stack, parse_overrides(overrides or []))
    lines = "\n".join(f"  {k}: {v}" for k, v in record["outputs"].items())
    emit(record, as_json, f"Deployed stack {stack} ({len(record['resources'])} resources) into the emulator.\n{lines}")


@app.command()
@handle_errors
def destroy(
    stack: Annotated[str, typer.Option("--stack", help="Stack name.")],
    as_json: JsonOption = False,
) -> None:
    """Delete what 'jitr local deploy' created for the stack."""
    record = _deployer().destroy(stack)
    emit({"stack": stack, "deleted": [r["logicalId"] for r in record["resources"]]}, as_json, f"Deleted stack {stack}.")


@app.command()
@handle_errors
def outputs(
    stack: Annotated[str, typer.Option("--stack", help="Stack name.")],
    as_json: JsonOption = False,
) -> None:
    """Print a deployed stack's outputs."""
    record = _deployer().record(stack)
    if record is None:
        raise NotFoundError(f"There is no stack {stack} in the emulator.")
    emit(record["outputs"], as_json, "\n".join(f"{k}\t{v}" for k, v in record["outputs"].items()))
