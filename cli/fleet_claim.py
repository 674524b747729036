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
from cli.progress import ProgressBar
from cli.wiring import stack_source
from cloud.functions import allow_iot_hook
from cloud.iot_account import IotAccount
from cloud.session import make_session
from cloud.stacks import StackInfo
from fleet.claim import set_up_claim, set_up_rotation


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
    rotation: Annotated[
        bool,
        typer.Option("--rotation", help="Set up TEMPLATE for certificate rotation (jitr device rotate) instead."),
    ] = False,
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

    With --rotation, TEMPLATE is a rotation template instead: it keeps the thing and gives it the
    new certificate, with the stack's RotationHookFunction as its hook (only a thing's own ACTIVE
    certificate may ask), and a rotation policy (CreateCertificateFromCsr and this template's topics)
    is attached to every certificate that has the stack's device policy. Re-run it after more devices
    are activated: it attaches the policy to them too.

    Re-running reuses the template (updating its hook), the policy and the certificate in --out.
    When a step fails, what the run created is removed again.
    """
    check_stack_name(stack)
    check_template_name(template)
    session = make_session()
    info = stack_source(session).stack(stack)
    if info is None:
        raise NotFoundError(f"There is no stack {stack}: deploy it first (./deploy.sh ...).")
    if rotation:
        _rotation(session, info, template, hook, as_json)
        return
    hook_arn = allow_iot_hook(session, hook, template) if hook else None
    folder = out or Path(f"claim-{template}")
    setup = set_up_claim(IotAccount.connect(), info, template, folder, hook_arn=hook_arn)
    made = ", ".join(setup.created) or "nothing new"
    emit(
        setup.as_dict(),
        as_json,
        f"Template {setup.template} provisions devices of {stack}"
        + (f" once {hook} allows them" if hook else " (no hook: any holder of the claim certificate may provision)")
        + f".\nClaim certificate: {setup.certificate}\nClaim key:         {setup.key} (mode 0600)\n"
        + f"Claim policy:      {setup.policy}\nMade: {made}.",
    )


def _rotation(session, info: StackInfo, template: str, hook: str | None, as_json: bool) -> None:
    function = hook or info.outputs.get("RotationHookFunctionName")
    if not function:
        raise NotFoundError(f"The stack {info.name} has no RotationHookFunctionName output; redeploy it (./deploy.sh).")
    hook_arn = allow_iot_hook(session, function, template)
    iot = IotAccount.connect()
    with ProgressBar("attaching the rotation policy", None, quiet=as_json) as bar:
        setup = set_up_rotation(iot, info, template, hook_arn=hook_arn, progress=lambda _n, total: _advance(bar, total))
    emit(
        setup.as_dict(),
        as_json,
        f"Template {setup.template} rotates the certificates of {info.name}'s devices (hook {function}).\n"
        f"Rotation policy {setup.policy} is on {setup.attached} certificates. "
        f"Made: {', '.join(setup.created) or 'nothing new'}.",
    )


def _advance(bar: ProgressBar, total: int) -> None:
    bar.start(total)
    bar.advance()
