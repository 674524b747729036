"""What every command shares: the error edge, output, options, passphrases."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from base import config
from base.errors import ExitStatus, InvalidInputError, JitrError
from ca.store import PkiStore
from cloud.session import aws_failure

DEBUG_ENV = "JITR_DEBUG"

DirOption = Annotated[
    Path,
    typer.Option("--dir", envvar=config.ENV_PKI_DIR, help="The CA directory (certs/, private/, ca.json)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]
ManifestOption = Annotated[
    Path,
    typer.Option(
        "--manifest",
        exists=True,
        dir_okay=False,
        help="A mint manifest (manifest.jsonl, written by 'jitr device mint --count').",
    ),
]
CountryOption = Annotated[
    str | None, typer.Option("--country", help="Country (C) of the device certificates; default: the CA's country.")
]
CrlUrlOption = Annotated[
    str | None,
    typer.Option("--crl-url", help="Put this CRL distribution point (where 'jitr ca crl' output is published) in it."),
]
PassphraseEnvOption = Annotated[
    str | None,
    typer.Option(
        "--passphrase-env",
        metavar="VAR",
        help="Name of the environment variable holding the CA key passphrase (never the passphrase itself).",
    ),
]


_debug = False


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwound like Ctrl-C, so every command cleans up the same way."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, _frame) -> None:
    raise Terminated(signum)


def handle_signals() -> None:
    """SIGTERM and SIGHUP raise :class:`Terminated` in the main thread, as SIGINT raises KeyboardInterrupt."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_terminated)


def set_debug(enabled: bool) -> None:
    """Set by the --debug option at every invocation (JITR_DEBUG=1 turns it on too)."""
    global _debug
    _debug = enabled


def debug_enabled() -> bool:
    return _debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")


@contextlib.contextmanager
def error_edge() -> Iterator[None]:
    """The CLI's one error edge: a JitrError becomes one sentence on stderr and its exit code, a
    signal 128 + its number, an AWS or file failure outside the kit's seams a sentence too; anything
    else is a bug and keeps its traceback. ``--debug`` (or JITR_DEBUG=1) shows every traceback."""
    try:
        yield
    except JitrError as exc:
        if debug_enabled():
            raise
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        typer.echo(f"Interrupted ({signal.Signals(signum).name}); nothing half-written was left behind.", err=True)
        raise typer.Exit(128 + signum) from None
    except (typer.Exit, typer.Abort, typer.TyperException):  # Click's own exits and usage errors
        raise
    except Exception as exc:
        # a boto3 call outside the kit's seams (an endpoint down, a refusal; botocore's timeouts are
        # OSErrors too), or a file that cannot be read or written
        failure = aws_failure(exc)
        if debug_enabled() or (failure is None and not isinstance(exc, OSError)):
            raise
        if failure is not None:
            typer.echo(f"Error: {failure}", err=True)
            raise typer.Exit(int(failure.exit_code)) from None
        assert isinstance(exc, OSError)
        typer.echo(f"Error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}.", err=True)
        raise typer.Exit(int(ExitStatus.ERROR)) from None


class JitrGroup(TyperGroup):
    """The ``jitr`` group: every command of every sub-app runs inside :func:`error_edge`."""

    def invoke(self, ctx: Any) -> Any:  # Click's Context (typer vendors its own Click)
        with error_edge():
            return super().invoke(ctx)


def emit(data: dict | list, as_json: bool, human: str) -> None:
    """Print ``data`` as JSON for scripts, or ``human`` for people."""
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        typer.echo(human)


def passphrase(var: str | None, *, required: bool = False, what: str = "the CA keys") -> bytes | None:
    """The passphrase held by the environment variable ``var`` (or JITR_CA_PASSPHRASE)."""
    name = var or config.ENV_CA_PASSPHRASE
    value = os.environ.get(name)
    if not value:
        if required:
            raise InvalidInputError(f"Environment variable {name} is empty; it must hold the passphrase for {what}.")
        return None
    return value.encode()


def open_store(directory: Path, var: str | None) -> tuple[PkiStore, bytes | None]:
    """The CA in ``directory`` and its key passphrase: --passphrase-env, else the variable named at init."""
    probe = PkiStore(directory)
    name = var or probe.metadata().passphrase_env or config.ENV_CA_PASSPHRASE
    return PkiStore(directory, passphrase_var=name), passphrase(name)


EndpointOption = Annotated[
    str, typer.Option("--endpoint", help="The MQTT endpoint HOST[:PORT] (port 8883 by default; 443 uses ALPN).")
]
RootCaOption = Annotated[
    Path | None,
    typer.Option(
        "--root-ca",
        exists=True,
        dir_okay=False,
        help="Trust this CA for the endpoint (the emulator's endpoint-ca.pem); default: the system store, "
        "which has Amazon Root CA 1.",
    ),
]


def connect_line(
    endpoint: str, cert: Path, key: Path, *, topic_root: str | None = None, root_ca: Path | str | None = None
) -> str:
    """The ``jitr device connect`` command that connects a device with the identity just saved."""
    words = ["jitr", "device", "connect", "--endpoint", endpoint, "--cert", str(cert), "--key", str(key)]
    if topic_root:
        words += ["--topic-root", topic_root]
    if root_ca:
        words += ["--root-ca", str(root_ca)]
    return shlex.join(words)
