"""``jitr fleet admit``: the serials (and tokens) the stack's provisioning API accepts.

Registered on the ``fleet`` sub-app by :mod:`cli.fleet_app`; the work is :mod:`fleet.admission`, the
table :mod:`cloud.fleet_table`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from base.errors import InvalidInputError, NotFoundError
from base.names import check_stack_name
from cli.common import JsonOption, emit
from cli.progress import ProgressBar
from cli.wiring import stack_source
from cloud.fleet_table import fleet_table_of
from cloud.session import make_session
from fleet.admission import DEFAULT_CONCURRENCY, check_prefix, numbered_serials, serials_from_file
from fleet.admission import admit as admit_serials


def admit(
    stack: Annotated[str, typer.Option("--stack", help="The stack name (deploy.sh's STACK).")],
    serials_file: Annotated[
        Path | None, typer.Option("--serials", help="A file of serials, one a line (# comments allowed).")
    ] = None,
    serial: Annotated[list[str] | None, typer.Option("--serial", help="One serial (repeatable).")] = None,
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Admit N numbered serials: PREFIX000001 ...")
    ] = None,
    prefix: Annotated[str, typer.Option("--prefix", help="With --count: the serials' prefix.")] = "",
    start: Annotated[int, typer.Option("--start", min=0, help="With --count: the first number.")] = 1,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where the tokens go (0600 JSON, written once); default STACK-tokens-TIME.json."),
    ] = None,
    rotate_token: Annotated[
        bool, typer.Option("--rotate-token", help="Give serials admitted already new tokens (and enable them again).")
    ] = False,
    disable: Annotated[
        str | None, typer.Option("--disable", metavar="SERIAL", help="Refuse every request for SERIAL from now on.")
    ] = None,
    list_rows: Annotated[bool, typer.Option("--list", help="List the admitted serials and their state.")] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Rows written at a time.")
    ] = DEFAULT_CONCURRENCY,
    as_json: JsonOption = False,
) -> None:
    """Admit device serials to the stack's provisioning API, each with a token it enrolls with.

    Each serial gets a random token, and a binding code for its user (print it on the device or its box:
    'jitr app bind' needs it). The fleet table keeps only their hashes, and both are written once, to a
    0600 file for the factory line (--json also prints them). A serial admitted already
    is refused unless --rotate-token, which gives it a new token (its binding code stays) and enables it
    again after it was disabled (by --disable, or by too many wrong tokens). Nothing is admitted when any step fails.
    """
    choices = [serials_file is not None, bool(serial), count is not None, disable is not None, list_rows]
    if sum(choices) != 1:
        raise InvalidInputError(
            "Say what to do, one of: --serials FILE, --serial S (repeatable), --count N [--prefix P], "
            "--disable SERIAL, --list."
        )
    check_stack_name(stack)
    session = make_session()
    info = stack_source(session).stack(stack)
    if info is None:
        raise NotFoundError(f"There is no stack {stack}: deploy it first (PROVISIONING=api ./deploy.sh ...).")
    table = fleet_table_of(session, info.outputs, stack, connections=concurrency)
    if list_rows:
        rows = [row.as_dict() for row in table.rows()]
        lines = [
            f"{r['serial']}: {r['status']}{' (disabled)' if r['disabled'] else ''}"
            + (f", {r['failures']} wrong tokens" if r["failures"] else "")
            for r in rows
        ]
        emit({"stack": stack, "devices": rows}, as_json, "\n".join(lines) or f"No serial is admitted to {stack}.")
        return
    if disable is not None:
        if not table.disable(disable):
            raise NotFoundError(f"Serial {disable} is not admitted to {stack}.")
        emit({"stack": stack, "serial": disable, "disabled": True}, as_json, f"Serial {disable} is disabled.")
        return
    if serials_file is not None:
        serials = serials_from_file(serials_file)
    elif count is not None:
        serials = numbered_serials(check_prefix(prefix), count, start=start)
    else:
        serials = list(serial or [])
    path = out or Path(f"{stack}-tokens-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with ProgressBar("admitting", len(serials), quiet=as_json, min_total=21) as bar:
        admitted = admit_serials(
            table,
            stack,
            serials,
            path,
            rotate=rotate_token,
            now=int(time.time()),
            concurrency=concurrency,
            progress=bar,
        )
    rotated = sum(item.rotated for item in admitted)
    emit(
        {
            "stack": stack,
            "file": str(path),
            "admitted": len(admitted) - rotated,
            "rotated": rotated,
            "devices": [
                {"serial": item.serial, "token": item.token, "bindingCode": item.binding_code} for item in admitted
            ],
        },
        as_json,
        f"Admitted {len(admitted) - rotated} serials"
        + (f" and gave {rotated} new tokens" if rotated else "")
        + f" to {stack}; their tokens are in {path} (mode 0600, not kept anywhere else).",
    )
