"""``jitr fleet claim``: fleet provisioning by claim, set up for a stack in one step.

Registered on the ``fleet`` sub-app by :mod:`cli.fleet_app`; the work is :mod:`fleet.claim`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from base.errors import NotFoundError
from base.names import check_stack_name, check_template_name
from cli.common import JsonOption, emit
from cli.wiring import stack_source
from cloud.functions import allow_iot_hook
from cloud.iot import IotApi
from cloud.session import make_session
from fleet.claim import set_up_claim


def claim(
    stack: Annotated[str, typer.Option("--stack", help="The stack name (deploy.sh's STACK).")],
    template: Annotated[str, typer.Option("--template", help="The provisioning template's name.")],
    hook: Annotated[
        str | None,
        typer.Option("--hook", metavar="FUNCTION", help="A Lambda function that allows or refuses each device."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where the claim certificate and key go; default claim-TEMPLATE/.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Set up fleet provisioning by claim: a template, a claim policy, a claim certificate and its key.

    The template names each thing after the device's SerialNumber parameter (never taking over a thing
    that exists), attaches the stack's device policy and makes the certificate ACTIVE. The claim
    policy lets the claim certificate connect and use this template's provisioning topics only. The
    certificate and its key (mode 0600) are written to --out for the factory to install on devices,
    which then run `jitr device provision`. A claim certificate is shared by a whole fleet and will
    leak: give a --hook, a Lambda function that checks each serial (AWS IoT invokes it with the
    request and provisions only when it answers {"allowProvisioning": true} within 5 s).

    Re-running reuses the template (updating its hook), the policy and the certificate in --out.
    When a step fails, what the run created is removed again.
    """
    check_stack_name(stack)
    check_template_name(template)
    session = make_session()
    info = stack_source(session).stack(stack)
    if info is None:
        raise NotFoundError(f"There is no stack {stack}: deploy it first (./deploy.sh ...).")
    hook_arn = allow_iot_hook(session, hook, template) if hook else None
    folder = out or Path(f"claim-{template}")
    setup = set_up_claim(IotApi.connect(), info, template, folder, hook_arn=hook_arn)
    made = ", ".join(setup.created) or "nothing new"
    emit(
        setup.as_dict(),
        as_json,
        f"Template {setup.template} provisions devices of {stack}"
        + (f" once {hook} allows them" if hook else " (no hook: any holder of the claim certificate may provision)")
        + f".\nClaim certificate: {setup.certificate}\nClaim key:         {setup.key} (mode 0600)\n"
        + f"Claim policy:      {setup.policy}\nMade: {made}.",
    )
