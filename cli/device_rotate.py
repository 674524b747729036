"""``jitr device rotate``: a device replaces its certificate over MQTT, the new one proved before the old one goes.

Registered on the ``device`` sub-app by :mod:`cli.device_app`; the work is :mod:`device.rotate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from base.keys import KeyType
from base.names import check_template_name
from cli.common import EndpointOption, JsonOption, RootCaOption, connect_line, emit
from device.endpoint import parse_endpoint
from device.identity import identity_from_files
from device.provision import ANSWER_TIMEOUT
from device.rotate import RETIRE_TIMEOUT, rotate


def rotate_command(
    cert: Annotated[
        Path, typer.Option("--cert", exists=True, dir_okay=False, help="The device's current certificate (chain).")
    ],
    key: Annotated[Path, typer.Option("--key", exists=True, dir_okay=False, help="Its current private key.")],
    endpoint: EndpointOption,
    template: Annotated[
        str, typer.Option("--template", help="The rotation template (jitr fleet claim --rotation --template NAME).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where the new key (private/, 0600) and certificate go.")],
    thing: Annotated[
        str | None, typer.Option("--thing", help="The device's thing name; default the certificate's CN.")
    ] = None,
    key_type: Annotated[KeyType, typer.Option("--key-type", help="The new key.")] = KeyType.EC_P256,
    root_ca: RootCaOption = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each answer.")
    ] = ANSWER_TIMEOUT,
    retire_timeout: Annotated[
        float, typer.Option("--retire-timeout", min=0.0, help="Seconds to wait for the old certificate's retirement.")
    ] = RETIRE_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Replace the device's certificate: new key here, new certificate over MQTT, old one retired last.

    Connected with its current certificate, the device sends a CSR of a new key
    (CreateCertificateFromCsr) and registers it with the rotation template, which keeps the thing.
    The new identity is saved under --out (never over the current files), then proved: the device
    connects with it and asks, by publishing, that the old certificate be retired; the stack sets the
    old one INACTIVE and detaches it, and the command checks the endpoint now refuses it. Any failure
    before the proof leaves the current certificate working (exit 19 for AWS IoT's rejection); a
    retirement not seen in --retire-timeout exits 21 with the new identity saved and working.
    """
    check_template_name(template)
    done = rotate(
        identity_from_files(cert, key),
        parse_endpoint(endpoint),
        template,
        out,
        thing=thing,
        root_ca=root_ca,
        key_type=key_type,
        timeout=timeout,
        retire_timeout=retire_timeout,
    )
    line = connect_line(endpoint, done.certificate, done.key, root_ca=root_ca)
    emit(
        done.as_dict() | {"connect": line},
        as_json,
        f"Rotated {done.thing_name}: certificate {done.new_certificate_id[:12]}... is in use, "
        f"{done.old_certificate_id[:12]}... is retired. Connect with:\n  {line}",
    )
