"""``jitr local …``: run the local AWS IoT Core and deploy SAM stacks into it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import shlex
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from base import config
from base.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from base.files import FileSpec, write_files
from cli.common import JsonOption, emit
from cloud.session import session_region

app = typer.Typer(
    help="Run a local emulator of AWS IoT Core and deploy the kit's stack into it.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

DEFAULT_STATE = Path(".jitr-local")
ENDPOINT_FILE = "endpoint.json"
LOCK_FILE = "lock"  # held (flock) by the running 'jitr local up' of a state directory
StateOption = Annotated[
    Path,
    typer.Option("--state-dir", help="Where the emulator keeps its state (emulator.snapshot), endpoint CA and logs."),
]


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


SAM_OVERRIDE_RE = re.compile(r"ParameterKey=([^,]+),ParameterValue=(.*)")


def parse_overrides(values: list[str]) -> dict[str, str]:
    """``Name=Value`` items, as ``sam deploy --parameter-overrides`` takes them: several after one flag or
    in one blank-separated string, or ``ParameterKey=Name,ParameterValue=Value``."""
    overrides = {}
    for value in values:
        for item in value.split():
            sam = SAM_OVERRIDE_RE.fullmatch(item)
            name, sep, setting = (sam.group(1), "=", sam.group(2)) if sam else item.partition("=")
            if not sep or not name:
                raise InvalidInputError(f"Invalid parameter override {item!r}; use Name=Value.")
            overrides[name] = setting
    return overrides


@contextlib.contextmanager
def _state_lock(state_dir: Path) -> Iterator[None]:
    """Hold the state directory's lock while an emulator runs on it: a second one is refused, not let overwrite it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / LOCK_FILE).open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _recorded(state_dir).get("pid", "unknown")
            raise AlreadyExistsError(
                f"An emulator (pid {pid}) is already running on {state_dir}; stop it, or start this one with "
                "another --state-dir."
            ) from None
        try:
            yield
        finally:
            (state_dir / ENDPOINT_FILE).unlink(missing_ok=True)  # exports of a stopped emulator are stale
            fcntl.flock(lock, fcntl.LOCK_UN)


def _running(state_dir: Path) -> bool:
    """Whether a 'jitr local up' holds the state directory's lock now."""
    path = state_dir / LOCK_FILE
    if not path.exists():
        return False
    with path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def _recorded(state_dir: Path) -> dict:
    try:
        value = json.loads((state_dir / ENDPOINT_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _export_lines(info: dict, indent: str = "") -> str:
    from emulator.local import shell_environment

    return "\n".join(f"{indent}export {k}={shlex.quote(str(v))}" for k, v in shell_environment(info).items())


REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


def check_region(region: str) -> str:
    """``region`` if it is shaped like an AWS region (eu-central-1), else a usage error."""
    if not REGION_RE.match(region):
        raise InvalidInputError(f"{region!r} is not an AWS region name such as us-east-1 or eu-central-1.")
    return region


@app.command()
def up(
    api_port: Annotated[
        int,
        typer.Option(
            "--api-port",
            help="AWS API port on 127.0.0.1, for every region (0: the last run's if free, else any free one).",
        ),
    ] = 0,
    mqtt_port: Annotated[
        int,
        typer.Option(
            "--mqtt-port",
            help="The first region's MQTT/TLS port on 127.0.0.1 (0: the last run's if free, else any free one).",
        ),
    ] = 0,
    apigateway_port: Annotated[
        int,
        typer.Option(
            "--apigateway-port",
            help="Port on 127.0.0.1 where the first region's HTTP and REST APIs are served (0: the last run's if "
            "free, else any free one).",
        ),
    ] = 0,
    state_dir: StateOption = DEFAULT_STATE,
    region: Annotated[
        list[str] | None,
        typer.Option(
            "--region",
            metavar="REGION",
            help="An AWS region the emulator serves (repeatable: each gets an MQTT endpoint, functions and API "
            "Gateway of its own, as each AWS region has; the first is what 'jitr local env' exports unless asked "
            "for another); default: AWS_REGION, AWS_DEFAULT_REGION, the profile's region, else us-east-1. A device "
            "whose CA is registered in another region is refused by the region's broker, as on AWS.",
        ),
    ] = None,
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
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Start empty: the state of earlier runs (STATE/emulator.snapshot and emulator.objects) is set "
            "aside as emulator.snapshot.old and emulator.objects.old, not loaded.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Start the emulator on loopback and run until interrupted (Ctrl-C).

    What it holds (CAs, certificates, things, policies, rules, templates, S3 objects, functions, stacks,
    tables, parameters, roles, user pools) is kept in STATE/emulator.snapshot, S3 objects in
    STATE/emulator.objects (SQLite, so the archive does not fill memory): saved every 2 seconds while
    it changes and at a clean stop (Ctrl-C, SIGTERM), and loaded at the next start, which listens on the
    same ports when they are free. After a SIGKILL at most the last 2 seconds of changes are lost. A
    snapshot that is damaged or not the user's own is refused (exit 1) and left in place.

    It prints where the AWS API, the MQTT broker and API Gateway listen; point boto3, the AWS CLI and jitr at
    it with AWS_ENDPOINT_URL, and devices at the MQTT port with the endpoint CA as root. Log groups
    are files in STATE/logs (STATE/regions/REGION/logs for a second region): what a Lambda function prints is in
    aws_lambda_<function>.log. One emulator
    a state directory: a second 'jitr local up' on it is refused (exit 4) while the first runs.
    """
    from emulator.local import LocalIot, Options

    regions = list(dict.fromkeys(check_region(name) for name in (region or [session_region()])))
    options = Options(
        state_dir=state_dir,
        api_port=api_port,
        mqtt_port=mqtt_port,
        apigateway_port=apigateway_port,
        quotas=parse_quotas(quota or []),
        jitp_drops_first_connect=jitp_drops,
        lambda_retry_delays=parse_retry_delays(lambda_retry_delays),
        region=regions[0],
        more_regions=tuple(regions[1:]),
        persist=True,
        fresh=fresh,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with _state_lock(state_dir), LocalIot(options) as iot:
        info = iot.info() | {"pid": os.getpid()}
        write_files(state_dir, {ENDPOINT_FILE: FileSpec(json.dumps(info, indent=2).encode())}, overwrite=True)
        exports = _export_lines(info, "  ")
        emit(
            info,
            as_json,
            f"AWS IoT Core emulator running (Ctrl-C stops it).\n"
            f"  AWS API:  {info['aws_endpoint_url']} (every region)\n"
            f"  Websites: {info['website_endpoint_url']} (S3 website buckets: http://BUCKET.s3-website-REGION.localhost:"
            f"{info['website_endpoint_url'].rsplit(':', 1)[1]}/)\n"
            + "".join(_region_lines(region, served) for region, served in info["regions"].items())
            + f"  State:    {info.get('snapshot')} (kept across restarts; --fresh starts empty)\n"
            f'Point your shell at it (or eval "$(jitr local env{_state_arg(state_dir)})"):\n{exports}',
        )
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass


def _region_lines(region: str, served: dict) -> str:
    return (
        f"  {region}:\n"
        f"    MQTT/TLS:    {served['mqtt_host']}:{served['mqtt_port']} (root CA {served['endpoint_ca']})\n"
        f"    API Gateway: {served['apigateway_url']}/API_ID/STAGE/... (stack outputs give each API's URL)\n"
        f"    Logs:        {served['logs']} (a file per log group: aws_lambda_<function>.log)\n"
    )


@app.command()
def env(
    state_dir: StateOption = DEFAULT_STATE,
    region: Annotated[
        str | None,
        typer.Option("--region", help="The served region to export (its MQTT endpoint); default: the first one."),
    ] = None,
) -> None:
    """Print shell exports for a running emulator (eval "$(jitr local env)"); exit 3 when none runs on STATE."""
    from emulator.local import for_region

    start = f"start one with 'jitr local up{_state_arg(state_dir)}'"
    if not _running(state_dir):
        raise NotFoundError(f"No emulator is running on {state_dir}; {start}.")
    info = _recorded(state_dir)
    if not {"aws_endpoint_url", "region", "mqtt_host", "mqtt_port", "endpoint_ca"} <= set(info):
        raise NotFoundError(f"The emulator on {state_dir} has not written {ENDPOINT_FILE} yet; try again in a moment.")
    typer.echo(_export_lines(for_region(info, check_region(region)) if region else info))


def _state_arg(state_dir: Path) -> str:
    return "" if state_dir == DEFAULT_STATE else f" --state-dir {shlex.quote(str(state_dir))}"


def _deployer():
    if not os.environ.get(config.ENV_AWS_ENDPOINT_URL):
        raise InvalidInputError(
            "AWS_ENDPOINT_URL is not set: 'jitr local' deploys only into the emulator (start it with 'jitr local up', "
            'then eval "$(jitr local env)"); use sam deploy for AWS.'
        )
    from cloud.session import make_session
    from emulator.cloudformation.deploy import StackDeployer

    session = make_session()
    account = session.client("sts").get_caller_identity()["Account"]
    return StackDeployer(session, account_id=account)


@app.command()
def deploy(
    stack: Annotated[str, typer.Option("--stack", help="Stack name.")],
    template: Annotated[Path, typer.Option("--template", help="The SAM template.")] = Path("sam/template.yaml"),
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--parameter-overrides",
            metavar="NAME=VALUE",
            help="Template parameters, Name=Value: several after the flag as with sam deploy "
            "(--parameter-overrides A=1 B=2), or the flag repeated.",
        ),
    ] = None,
    more_overrides: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[NAME=VALUE]...", help="More parameter overrides, as sam deploy takes them.", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create the template's resources in the emulator; an existing stack of that name is updated as CloudFormation
    updates it: what is unchanged stays as it is, what changed is replaced, what is gone is removed.

    Parameters are checked as CloudFormation checks them (AllowedPattern, AllowedValues, lengths, values
    without a Default) before anything is created or replaced.
    """
    given = parse_overrides([*(overrides or []), *(more_overrides or [])])
    record = _deployer().deploy(template, stack, given)
    lines = "\n".join(f"  {k}: {v}" for k, v in record["outputs"].items())
    emit(record, as_json, f"Deployed stack {stack} ({len(record['resources'])} resources) into the emulator.\n{lines}")


@app.command()
def destroy(
    stack: Annotated[str, typer.Option("--stack", help="Stack name.")],
    as_json: JsonOption = False,
) -> None:
    """Delete what 'jitr local deploy' created for the stack."""
    record = _deployer().destroy(stack)
    emit({"stack": stack, "deleted": [r["logicalId"] for r in record["resources"]]}, as_json, f"Deleted stack {stack}.")


@app.command()
def outputs(
    stack: Annotated[str, typer.Option("--stack", help="Stack name.")],
    as_json: JsonOption = False,
) -> None:
    """Print a deployed stack's outputs."""
    record = _deployer().record(stack)
    if record is None:
        raise NotFoundError(f"There is no stack {stack} in the emulator.")
    emit(record["outputs"], as_json, "\n".join(f"{k}\t{v}" for k, v in record["outputs"].items()))
