"""``jitr device provision``: a device that ships with a claim certificate gets an identity of its own over MQTT.

Registered on the ``device`` sub-app by :mod:`cli.device_app`; the work is :mod:`device.provision`.
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
from device.provision import ANSWER_TIMEOUT, parse_parameters, provision


def provision_command(
    claim_cert: Annotated[
        Path, typer.Option("--claim-cert", exists=True, dir_okay=False, help="The claim certificate file.")
    ],
    claim_key: Annotated[Path, typer.Option("--claim-key", exists=True, dir_okay=False, help="The claim key.")],
    template: Annotated[str, typer.Option("--template", help="The fleet provisioning template's name.")],
    endpoint: EndpointOption,
    out: Annotated[Path, typer.Option("--out", help="Where the key (private/, 0600) and certificate (certs/) go.")],
    parameter: Annotated[
        list[str] | None,
        typer.Option("--parameter", metavar="NAME=VALUE", help="A template parameter (repeatable): SerialNumber=..."),
    ] = None,
    csr: Annotated[
        bool, typer.Option("--csr", help="Make the key here and send a CSR: the private key never leaves the device.")
    ] = False,
    key_type: Annotated[KeyType, typer.Option("--key-type", help="With --csr: the key made.")] = KeyType.EC_P256,
    root_ca: RootCaOption = None,
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="The claim connection's client id; default TEMPLATE-SERIAL.")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each answer.")
    ] = ANSWER_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Connect with the claim certificate, get a certificate of the device's own, provision its thing.

    Without --csr AWS IoT makes the key pair (CreateKeysAndCertificate) and sends the private key over
    the TLS connection; with --csr the key is made here and only a CSR leaves the device. The template
    (see 'jitr fleet claim') then makes the thing, activates the certificate and attaches the policy.
    The identity is saved under --out and proved: the device connects with it (and publishes once under
    the topicRoot the template names). AWS IoT's rejection (a refusing hook, a used token, a bad CSR)
    stops it with AWS IoT's own message (exit 19); nothing is saved then.
    """
    check_template_name(template)
    claim = identity_from_files(claim_cert, claim_key)
    done = provision(
        claim,
        parse_endpoint(endpoint),
        template,
        parse_parameters(parameter or []),
        out,
        root_ca=root_ca,
        client_id=client_id,
        use_csr=csr,
        key_type=key_type,
        timeout=timeout,
    )
    root = done.device_configuration.get("topicRoot")
    line = connect_line(
        endpoint, done.certificate, done.key, topic_root=root if isinstance(root, str) else None, root_ca=root_ca
    )
    emit(
        done.as_dict() | {"connect": line},
        as_json,
        f"Provisioned {done.thing_name} (certificate {done.certificate_id[:12]}...), and it {done.proved} with its "
        f"own certificate. Connect with:\n  {line}",
    )
