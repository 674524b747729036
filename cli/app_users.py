"""``jitr app``: what a phone app does for its user: sign up and in, bind a device, watch it, command it.

The work is in :mod:`user` (settings and tokens, the users API, MQTT over WebSocket) and
:mod:`cloud.user_pool` (Cognito); this module only wires them to options.
"""

from __future__ import annotations

import json
import os
import queue
import time
from typing import Annotated

import typer

from base.errors import InvalidInputError, NotFoundError
from base.names import check_stack_name
from cli.common import JsonOption, RootCaOption, emit
from cli.wiring import stack_source
from cloud.session import make_session
from cloud.user_pool import UserPool
from user import account as accounts
from user.devices import UsersApi
from user.live import LiveConnection

app = typer.Typer(
    help="The phone app's part: sign up, sign in, bind your device, watch its telemetry, send it commands.",
    no_args_is_help=True,
)

StackOption = Annotated[
    str | None,
    typer.Option("--stack", help="Set the app up for this stack's users API (read from its outputs); once is enough."),
]
EmailOption = Annotated[str, typer.Option("--email", help="Your e-mail address: your user name.")]


def _settings(stack: str | None, api: str | None, client_id: str | None, region: str | None) -> accounts.Account:
    if stack is not None:
        if api or client_id:
            raise InvalidInputError("Give --stack, or --api with --client-id and --region, not both.")
        info = stack_source(make_session()).stack(check_stack_name(stack))
        if info is None:
            raise NotFoundError(f"There is no stack {stack}.")
        outputs = info.outputs
        if not outputs.get("UsersApiUrl"):
            raise NotFoundError(
                f"Stack {stack} has no users API: deploy it with USERS=true PROVISIONING=api ./deploy.sh."
            )
        api, client_id = outputs["UsersApiUrl"], outputs["UserPoolClientId"]
        region = outputs["UserPoolId"].split("_", 1)[0]
    return accounts.settings(api, client_id, region)


def _pool(account: accounts.Account) -> UserPool:
    return UserPool(account.client_id, account.region, make_session(region=account.region))


def _password(confirm: bool) -> str:
    secret = os.environ.get(accounts.ENV_APP_PASSWORD)
    if secret:
        return secret
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm))


def _api() -> UsersApi:
    account = accounts.settings(None, None, None)
    return UsersApi(account.api, accounts.id_token(account, _pool))


@app.command()
def setup(
    stack: StackOption = None,
    api: Annotated[str | None, typer.Option("--api", help="Or: the users API's URL (the UsersApiUrl output).")] = None,
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="With --api: the user pool's app client id (UserPoolClientId).")
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="With --api: the user pool's region.")] = None,
) -> None:
    """Point the app at a users API: a stack's (--stack), or as a phone app is configured (--api, --client-id,
    --region). 'signup' and 'login' take --stack too; this is for the other way, or to switch."""
    if stack is None and api is None:
        raise InvalidInputError("Give --stack STACK, or --api URL --client-id ID --region R.")
    account = _settings(stack, api, client_id, region)
    path = accounts.save(account)
    typer.echo(f"The app now uses {account.api} (settings in {path}).")


@app.command()
def signup(email: EmailOption, stack: StackOption = None) -> None:
    """Create your account in the stack's user pool (the password from JITR_APP_PASSWORD, or asked)."""
    account = _settings(stack, None, None, None)
    confirmed = _pool(account).sign_up(email, _password(confirm=True))
    accounts.save(account)
    if confirmed:
        typer.echo(f"Account {email} created; sign in with: jitr app login --email {email}")
    else:
        typer.echo(f"Account {email} created. Enter the code e-mailed to you: jitr app confirm --email {email} CODE")


@app.command()
def confirm(email: EmailOption, code: Annotated[str, typer.Argument(help="The code Cognito e-mailed you.")]) -> None:
    """Confirm your account with the code e-mailed to you."""
    _pool(accounts.settings(None, None, None)).confirm(email, code.strip())
    typer.echo(f"Account {email} confirmed; sign in with: jitr app login --email {email}")


@app.command()
def login(email: EmailOption, stack: StackOption = None) -> None:
    """Sign in; the tokens are kept (0600) for the commands below, and renewed when they expire."""
    account = _settings(stack, None, None, None)
    now = time.time()
    tokens = _pool(account).sign_in(email, _password(confirm=False))
    path = accounts.save(account.signed_in(tokens, email, now))
    typer.echo(f"Signed in as {email} (tokens in {path}, mode 0600).")


@app.command()
def logout() -> None:
    """Forget the sign-in and the app's settings."""
    path = accounts.config_path()
    path.unlink(missing_ok=True)
    typer.echo(f"Signed out ({path} removed).")


@app.command()
def bind(
    thing: Annotated[str, typer.Argument(help="Your device's name (its serial).")],
    code: Annotated[str, typer.Option("--code", help="The binding code printed on the device or its box.")],
    as_json: JsonOption = False,
) -> None:
    """Make a registered device yours (one owner per device)."""
    answer = _api().bind(thing, code)
    emit(answer, as_json, f"{thing} is yours.")


@app.command()
def unbind(thing: Annotated[str, typer.Argument(help="Your device's name.")], as_json: JsonOption = False) -> None:
    """Give a device up. Credentials you got before still reach it until they expire (an hour at most)."""
    emit(_api().unbind(thing), as_json, f"{thing} is no longer yours.")


@app.command()
def devices(as_json: JsonOption = False) -> None:
    """List your devices."""
    found = _api().devices()
    emit({"devices": found}, as_json, "\n".join(d["thingName"] for d in found) or "You have no device bound.")


@app.command()
def registered(thing: Annotated[str, typer.Argument(help="A device's name.")], as_json: JsonOption = False) -> None:
    """Whether a device has registered (it exists with an ACTIVE certificate); exit 1 if not yet."""
    done = _api().registered(thing)
    emit({"thingName": thing, "registered": done}, as_json, f"{thing} is {'' if done else 'not yet '}registered.")
    if not done:
        raise typer.Exit(1)


@app.command()
def watch(
    thing: Annotated[str, typer.Argument(help="Your device's name.")],
    count: Annotated[int, typer.Option("--count", min=1, help="Stop after this many messages.")] = 0,
    seconds: Annotated[float, typer.Option("--seconds", min=0.1, help="Stop after this long.")] = 0.0,
    root_ca: RootCaOption = None,
) -> None:
    """Print the device's telemetry as it arrives (MQTT over WebSocket with your temporary credentials).

    One JSON line per message: {"topic", "payload"}. Ctrl-C stops it; so do --count and --seconds.
    """
    credentials = _api().credentials([thing])
    deadline = time.monotonic() + seconds if seconds else None
    received = 0
    with LiveConnection(credentials, root_ca=root_ca) as live:
        live.subscribe(credentials.telemetry_topic(thing))
        typer.echo(f"Watching {thing}...", err=True)
        while (not count or received < count) and (deadline is None or time.monotonic() < deadline):
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            try:
                message = live.messages.get(timeout=wait)
            except queue.Empty:  # look at the clock and the connection again
                if live.closed.is_set():
                    raise NotFoundError(f"AWS IoT closed the connection while watching {thing}.") from None
                continue
            received += 1
            typer.echo(json.dumps({"topic": message.topic, "payload": _decoded(message.payload)}))


@app.command()
def send(
    thing: Annotated[str, typer.Argument(help="Your device's name.")],
    payload: Annotated[str, typer.Argument(help="The command, a JSON document.")],
    name: Annotated[str, typer.Option("--name", help="The command's name: the last level of its topic.")] = "app",
    root_ca: RootCaOption = None,
) -> None:
    """Send the device a command (to <topic root>/THING/commands/NAME, which 'jitr device connect --listen' prints)."""
    try:
        document = json.loads(payload)
    except ValueError as exc:
        raise InvalidInputError(f"The command is not JSON: {exc}.") from None
    if not name or any(c in name for c in "/+#"):
        raise InvalidInputError(f"--name {name!r} must be one topic level, without '/', '+' or '#'.")
    credentials = _api().credentials([thing])
    topic = credentials.command_topic(thing, name)
    with LiveConnection(credentials, root_ca=root_ca) as live:
        live.publish(topic, json.dumps(document).encode())
    typer.echo(f"Sent to {topic}.")


def _decoded(payload: bytes) -> object:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")
