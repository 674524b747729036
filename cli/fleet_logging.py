"""``jitr fleet logging``: AWS IoT's own logs on (deploy.sh) or off again (delete.sh) for a stack's account.

Registered on the ``fleet`` sub-app by :mod:`cli.fleet_app`; the work is :mod:`fleet.iot_logging`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from base.errors import NotFoundError
from base.names import check_stack_name
from cli.common import JsonOption, emit
from cli.wiring import stack_source
from cloud.iot_account import IotAccount
from cloud.session import make_session
from fleet.iot_logging import ensure_logging, release_logging

StackOption = Annotated[str, typer.Option("--stack", help="The stack name (deploy.sh's STACK).")]


def logging_command(
    stack: StackOption,
    off: Annotated[bool, typer.Option("--off", help="Turn it off, if it uses this stack's role (delete.sh).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Turn AWS IoT's v2 logging on (level ERROR, the stack's IotLoggingRole) unless it is on already.

    Logging is one setting per account and region: a configuration that is on is left as it is,
    whoever made it. deploy.sh runs this; delete.sh runs it with --off, which turns logging off only
    when it uses this stack's role (which goes with the stack). Device Defender's
    LOGGING_DISABLED_CHECK (jitr audit) is what it answers.
    """
    check_stack_name(stack)
    info = stack_source(make_session()).stack(stack)
    if info is None:
        if off:  # the stack is gone already: its role with it; nothing of ours to turn off
            emit({"stack": stack, "logging": "unchanged"}, as_json, f"There is no stack {stack}; logging unchanged.")
            return
        raise NotFoundError(f"There is no stack {stack}: deploy it first (./deploy.sh ...).")
    role = info.outputs.get("IotLoggingRoleArn")
    if not role:
        raise NotFoundError(f"The stack {stack} has no IotLoggingRoleArn output; redeploy it with deploy.sh.")
    if off:
        done = release_logging(IotAccount.connect(), role)
        said = "is now off (it used this stack's role)" if done else "does not use this stack's role; unchanged"
        emit({"stack": stack, "logging": "disabled" if done else "unchanged"}, as_json, f"AWS IoT logging {said}.")
        return
    outcome = ensure_logging(IotAccount.connect(), role)
    said = "was on already; left as it is" if outcome == "kept" else f"is now on (ERROR, role {role})"
    emit({"stack": stack, "logging": outcome, "roleArn": role}, as_json, f"AWS IoT logging {said}.")
