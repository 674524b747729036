"""The ``jitr`` command: one Typer app composed of sub-apps."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import app_users, audit, ca_app, demo, device_app, fleet_app
from cli.common import JitrGroup, handle_signals, set_debug
from cli.local_app import app as local_app

app = typer.Typer(
    name="jitr",
    cls=JitrGroup,
    help="A certificate authority and automation kit for AWS IoT Core Just-in-Time Registration and Provisioning.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.add_typer(ca_app.app, name="ca")
app.add_typer(device_app.app, name="device")
app.add_typer(local_app, name="local")
app.add_typer(fleet_app.app, name="fleet")
app.add_typer(app_users.app, name="app")
app.command("demo")(demo.demo)
app.command("audit")(audit.audit_command)


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-sentence errors.")] = False,
) -> None:
    """Create a CA, mint device certificates, register the CA with AWS IoT, and run the loop locally."""
    set_debug(debug)


def run() -> None:
    """Console-script entry point."""
    handle_signals()
    app()
