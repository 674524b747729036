"""``jitr device mint`` and ``jitr device sign-csr``: device identities from the CA; ``enroll`` (one from the
provisioning API, :mod:`cli.device_enroll`); ``provision`` (one by claim over MQTT, :mod:`cli.device_provision`);
``rotate`` (a new certificate over MQTT, :mod:`cli.device_rotate`); ``connect``, ``simulate`` and ``check``."""

from __future__ import annotations

import datetime as dt
import json
import os
import traceback
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from base.backoff import Backoff
from base.certificates import to_pem
from base.config import DEFAULT_PKI_DIR
from base.errors import InvalidInputError
from base.files import write_files
from base.keys import KeyType
from base.names import check_country
from ca.batch import FORMATS, BatchRequest, mint_batch, names_from_file, numbered_names
from ca.mint import mint_device
from ca.profiles import check_crl_url
from cli.common import (
    CountryOption,
    CrlUrlOption,
    DirOption,
    EndpointOption,
    JsonOption,
    ManifestOption,
    PassphraseEnvOption,
    RootCaOption,
    debug_enabled,
    emit,
    open_store,
)
from cli.common import passphrase as read_passphrase
from cli.device_enroll import enroll_command, enroll_for_simulation
from cli.device_provision import provision_command
from cli.device_report import check_table, count_devices, describe_result, describe_summary
from cli.device_rotate import rotate_command
from cli.device_sign import sign_csr
from cli.progress import ProgressBar
from device.check import check_manifest
from device.client import ConnectOptions, DeviceResult, Listen, Messages, run_device
from device.endpoint import parse_endpoint
from device.errors import DevicesFailedError, UnexpectedDeviceError
from device.identity import chain_warning, identity_from_files
from device.simulate import simulate_manifest

app = typer.Typer(
    help="Mint device certificates, sign CSRs, enroll over HTTPS, provision by claim and rotate over MQTT, and "
    "connect, simulate or check devices.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command()
def mint(
    directory: DirOption = Path(DEFAULT_PKI_DIR),
    thing: Annotated[
        str | None, typer.Option("--thing", help="Mint one device: its thing name (the certificate CN).")
    ] = None,
    count: Annotated[
        int | None,
        typer.Option("--count", help="Mint a batch of COUNT devices (1 to 100,000,000) named PREFIX + number."),
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
    crl_url: CrlUrlOption = None,
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
    crl_url = check_crl_url(crl_url) if crl_url is not None else None
    store, secret = open_store(directory, passphrase_env)
    metadata = store.metadata()
    country = check_country(country) if country is not None else metadata.country
    days = days or metadata.device_days
    issuer = store.signer(secret)  # decrypts the key: a wrong passphrase fails here, before anything is written
    now = dt.datetime.now(dt.UTC)
    if thing is not None:
        identity = mint_device(issuer, thing, country=country, now=now, days=days, key_type=key_type, crl_url=crl_url)
        out = out or directory / "devices"
        written = write_files(out, identity.files())
        summary = identity.summary() | {"files": [str(p) for p in written]}
        emit(summary, as_json, f"Minted {thing} ({summary['certificateId']}):\n  " + "\n  ".join(summary["files"]))
        return
    if names is not None:
        if count is not None or prefix is not None:
            raise InvalidInputError("Give either --names FILE or --count with --prefix, not both.")
        things: Collection[str] = names_from_file(names)
        label = names.stem
    else:
        if count is None or prefix is None:
            raise InvalidInputError("A numbered batch needs both --count and --prefix.")
        things = numbered_names(prefix, count)
        label = prefix.rstrip("-_:") or "batch"
    out = out or directory / "batches" / label
    request = BatchRequest(out, fmt, country, days, key_type, workers, crl_url=crl_url)
    with ProgressBar("minting", len(things), quiet=as_json) as advance:
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


app.command("sign-csr")(sign_csr)
app.command("enroll")(enroll_command)
app.command("provision")(provision_command)
app.command("rotate")(rotate_command)

# -- jitr device connect / simulate / check: the device side (device/) ------------------------------

TopicRootOption = Annotated[
    str,
    typer.Option(
        "--topic-root",
        help="Publish to ROOT/<thing>/telemetry. A stack's devices use its DeviceTopicRoot output, devices/<stack>: "
        "their policy allows only that root, and only that stack's archive rule hears it.",
    ),
]
ConcurrencyOption = Annotated[int, typer.Option("--concurrency", min=1, help="Devices connecting at the same time.")]
BaseOption = Annotated[float, typer.Option("--base", min=0.001, help="Backoff: the first retry waits up to BASE s.")]
CapOption = Annotated[float, typer.Option("--cap", min=0.001, help="Backoff: no wait longer than CAP s.")]
AttemptsOption = Annotated[int, typer.Option("--attempts", min=1, help="Connection attempts before giving up.")]
RefusalsOption = Annotated[
    int,
    typer.Option(
        "--refusals", min=0, help="CONNACK 'not authorized' answers retried before the certificate counts as refused."
    ),
]


def _print_command(topic: str, payload: bytes) -> None:
    try:
        document: object = json.loads(payload)
    except ValueError:
        document = payload.decode("utf-8", "replace")
    typer.echo(json.dumps({"topic": topic, "command": document}))


def _connect_options(base: float, cap: float, attempts: int, refusals: int) -> ConnectOptions:
    return ConnectOptions(backoff=Backoff(base=base, cap=cap, attempts=attempts), refusals_tolerated=refusals)


@app.command()
def connect(
    endpoint: EndpointOption,
    cert: Annotated[
        Path,
        typer.Option("--cert", exists=True, dir_okay=False, help="The chain file: device certificate, then its CA's."),
    ],
    key: Annotated[Path, typer.Option("--key", exists=True, dir_okay=False, help="The device's private key.")],
    root_ca: RootCaOption = None,
    key_passphrase_env: Annotated[
        str | None,
        typer.Option(
            "--passphrase-env",
            metavar="VAR",
            help="An encrypted --key: the environment variable holding its passphrase (never the passphrase itself).",
        ),
    ] = None,
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="MQTT client id; default: the thing name (certificate CN).")
    ] = None,
    topic: Annotated[str | None, typer.Option("--topic", help="Default: <topic root>/<thing>/telemetry.")] = None,
    topic_root: TopicRootOption = "devices",
    message: Annotated[
        str | None, typer.Option("--message", help="The payload; default: a JSON sample with a sequence number.")
    ] = None,
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the payload from standard input.")] = False,
    count: Annotated[int, typer.Option("--count", min=0, help="Messages to publish (QoS 1); 0 only connects.")] = 1,
    interval: Annotated[float, typer.Option("--interval", min=0, help="Seconds between messages.")] = 1.0,
    listen: Annotated[
        bool,
        typer.Option(
            "--listen", help="Also print the commands sent to the device (<topic root>/<thing>/commands/#), as JSON."
        ),
    ] = False,
    listen_seconds: Annotated[
        float | None,
        typer.Option("--listen-seconds", min=0, help="With --listen: stop this long after the last publish."),
    ] = None,
    base: BaseOption = 1.0,
    cap: CapOption = 30.0,
    attempts: AttemptsOption = 10,
    refusals: RefusalsOption = 1,
    as_json: JsonOption = False,
) -> None:
    """Connect as a device, retrying while its certificate is activated (JITR/JITP), then publish.

    TLS with the chain (device certificate, then its CA's) and SNI; a dropped or (once) refused
    connection is retried with exponential backoff and full jitter. --stdin reads one payload from
    standard input. Permanent failures stop at once with their own exit code: 10 server not trusted, 11 key not the
    certificate's, 12 certificate refused, 13 publish denied by policy, 14 never activated, 15 endpoint
    unreachable, 16 certificate expired, 17 connection rejected.
    """
    if message is not None and stdin:
        raise InvalidInputError("Give either --message or --stdin, not both.")
    if listen_seconds is not None and not listen:
        raise InvalidInputError("--listen-seconds goes with --listen.")
    payload = typer.get_binary_stream("stdin").read() if stdin else (message.encode() if message is not None else None)
    secret = None
    if key_passphrase_env is not None:
        secret = read_passphrase(key_passphrase_env, required=True, what="the device key")
    identity = identity_from_files(cert, key, passphrase=secret, passphrase_var=key_passphrase_env)
    if (note := chain_warning(identity)) and not as_json:
        typer.echo(note, err=True)
    result = run_device(
        identity,
        parse_endpoint(endpoint),
        root_ca=root_ca,
        client_id=client_id,
        messages=Messages(count=count, topic=topic, topic_root=topic_root, payload=payload, interval=interval),
        options=_connect_options(base, cap, attempts, refusals),
        on_attempt=None if as_json else lambda attempt: typer.echo(attempt.describe(), err=True),
        listen=Listen(_print_command, listen_seconds) if listen else None,
    )
    if as_json or result.ok:
        emit(result.to_dict(), as_json, describe_result(result))
    result.raise_for_error()


@app.command()
def simulate(
    endpoint: EndpointOption,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", exists=True, dir_okay=False, help="A mint manifest (manifest.jsonl) to connect."),
    ] = None,
    enroll_tokens: Annotated[
        Path | None,
        typer.Option(
            "--enroll",
            exists=True,
            dir_okay=False,
            metavar="TOKENS",
            help="Instead of --manifest: enroll every device of this tokens file ('jitr fleet admit') through --api "
            "first, into --out, then connect them.",
        ),
    ] = None,
    api: Annotated[str | None, typer.Option("--api", help="With --enroll: the provisioning API URL.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="With --enroll: where the enrolled identities go.")] = None,
    root_ca: RootCaOption = None,
    count: Annotated[int | None, typer.Option("--count", min=1, help="Only the first COUNT devices.")] = None,
    concurrency: ConcurrencyOption = 64,
    messages: Annotated[int, typer.Option("--messages", min=0, help="Messages each device publishes.")] = 1,
    topic_root: TopicRootOption = "devices",
    base: BaseOption = 1.0,
    cap: CapOption = 30.0,
    attempts: AttemptsOption = 10,
    refusals: RefusalsOption = 1,
    as_json: JsonOption = False,
) -> None:
    """First-connect many devices of a manifest at once: each self-registers and publishes MESSAGES.

    With --enroll TOKENS --api URL --out DIR, the devices of an admitted batch enroll through the
    provisioning API first (each makes its key), and those that got a certificate are connected.
    Prints devices/s, p50/p95 time to first publish, messages sent and failures by reason; exits 20
    if any device failed.
    """
    if (manifest is None) == (enroll_tokens is None):
        raise InvalidInputError("Say which devices: --manifest FILE, or --enroll TOKENS --api URL --out DIR.")
    if enroll_tokens is not None:
        if api is None or out is None:
            raise InvalidInputError("--enroll needs --api URL (the provisioning API) and --out DIR.")
        manifest = enroll_for_simulation(enroll_tokens, api, out, concurrency=min(concurrency, 16), as_json=as_json)
    assert manifest is not None  # one of the two, checked above
    with ProgressBar("first connects", count_devices(manifest, count), quiet=as_json) as bar:
        summary = simulate_manifest(
            manifest,
            endpoint,
            root_ca=root_ca,
            count=count,
            concurrency=concurrency,
            messages=messages,
            topic_root=topic_root,
            options=_connect_options(base, cap, attempts, refusals),
            progress=_with_tracebacks(bar.count_result),
        )
    emit(summary.to_dict(), as_json, describe_summary(summary))
    if summary.failed:
        raise DevicesFailedError(f"{summary.failed} of {summary.devices} devices failed.")


def _with_tracebacks(progress: Callable[[DeviceResult], None]) -> Callable[[DeviceResult], None]:
    """``progress``, and with --debug the traceback of every device that failed on a bug (on stderr)."""
    if not debug_enabled():
        return progress

    def report(result: DeviceResult) -> None:
        progress(result)
        if isinstance(result.error, UnexpectedDeviceError) and result.error.__cause__ is not None:
            trace = "".join(traceback.format_exception(result.error.__cause__))
            typer.echo(f"{result.thing_name}: unexpected failure\n{trace}", err=True)

    return report


@app.command()
def check(
    manifest: ManifestOption,
    endpoint: EndpointOption,
    root_ca: RootCaOption = None,
    concurrency: ConcurrencyOption = 64,
    publish: Annotated[bool, typer.Option("--publish", help="Also publish one message (tests the policy).")] = False,
    topic_root: TopicRootOption = "devices",
    base: BaseOption = 0.5,
    cap: CapOption = 2.0,
    attempts: AttemptsOption = 3,
    refusals: RefusalsOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Test that every thing of a manifest connects: a table of which do and which do not, and why.

    Exits 20 if any thing does not connect.
    """
    with ProgressBar("checking", count_devices(manifest), quiet=as_json) as bar:
        report = check_manifest(
            manifest,
            endpoint,
            root_ca=root_ca,
            concurrency=concurrency,
            publish=publish,
            topic_root=topic_root,
            options=_connect_options(base, cap, attempts, refusals),
            progress=_with_tracebacks(bar.count_result),
        )
    if as_json:
        emit(report.to_dict(), True, "")
    else:
        Console(soft_wrap=False).print(check_table(report))
    if not report.ok:
        raise DevicesFailedError(f"{len(report.failing)} of {len(report.rows)} things do not connect.")
