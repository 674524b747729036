"""``jitr ca …``: create a CA, inspect and verify certificates, render and register JITP templates; revoke
and publish CRLs (:mod:`cli.ca_revoke`)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from base import config
from base.certificates import certificate_id, describe, load_certificates
from base.errors import AlreadyExistsError, InvalidInputError
from base.files import FileSpec, read_bytes, write_files
from base.keys import KeyType, generate_key
from base.names import DEFAULT_TOPIC_ROOT
from ca.issue import Issuer, issue_root, make_name
from ca.jitp_template import (
    check_template,
    fillable_parameters,
    parse_template,
    render_jitp_template,
)
from ca.registration import RegistrationRequest, register_ca
from ca.store import CaMaterial, CaMetadata, PkiStore
from ca.verify import verify_chain
from cli import ca_revoke
from cli.common import DirOption, JsonOption, PassphraseEnvOption, emit, open_store, passphrase
from cloud.iot import IotApi

app = typer.Typer(
    help="Create and use the certificate authority that signs your devices.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.command("revoke")(ca_revoke.revoke)
app.command("crl")(ca_revoke.crl)


@app.command()
def init(
    directory: DirOption = Path(config.DEFAULT_PKI_DIR),
    cn: Annotated[str, typer.Option("--cn", help="Common name of the root CA.")] = "jitr-kit Root CA",
    org: Annotated[str | None, typer.Option("--org", help="Organization (O) of the CA certificates.")] = None,
    country: Annotated[
        str | None,
        typer.Option("--country", help="Two-letter country code; also the default C of device certificates."),
    ] = None,
    key_type: Annotated[KeyType, typer.Option("--key-type", help="Key algorithm of the CA keys.")] = KeyType.EC_P256,
    days: Annotated[
        int, typer.Option("--days", min=1, help="Validity of the root CA in days.")
    ] = config.DEFAULT_CA_DAYS,
    intermediate: Annotated[
        bool, typer.Option("--intermediate", help="Also create an intermediate CA that signs the devices.")
    ] = False,
    passphrase_env: PassphraseEnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a root CA (and optionally an intermediate) in --dir. Never overwrites an existing CA.

    Keys are written to DIR/private/ with mode 0600; with --passphrase-env VAR they are
    encrypted with the passphrase held in the environment variable VAR.
    """
    store = PkiStore(directory)
    if store.exists():
        raise AlreadyExistsError(f"A CA already exists in {directory}; refusing to overwrite it.")
    secret = passphrase(passphrase_env, required=True) if passphrase_env else None
    now = dt.datetime.now(dt.UTC)
    root_key = generate_key(key_type)
    root = issue_root(root_key, make_name(cn, org=org, country=country), now=now, days=days)
    material = CaMaterial(root, root_key)
    if intermediate:
        inter_key = generate_key(key_type)
        inter_name = make_name(f"{cn[:48]} Intermediate", org=org, country=country)
        inter = Issuer(root, root_key).issue_intermediate(inter_key.public_key(), inter_name, now=now, days=days)
        material = CaMaterial(root, root_key, inter, inter_key)
    metadata = CaMetadata(
        key_type=str(key_type),
        country=country,
        org=org,
        signer="intermediate" if intermediate else "root",
        passphrase_env=passphrase_env,
        device_days=config.DEFAULT_DEVICE_DAYS,
    )
    written = store.create(material, metadata, secret)
    signer = store.signer_cert_path()
    if not secret:  # stderr, so the JSON and the scripts reading stdout are unchanged
        typer.echo(
            f"Warning: the CA keys in {directory / 'private'} are not encrypted (mode 0600 only); anyone who can "
            "read them can mint devices for this CA. Use --passphrase-env VAR to encrypt them.",
            err=True,
        )
    emit(
        {"dir": str(directory), "files": [str(p) for p in written], "signer": str(signer), "encrypted": bool(secret)},
        as_json,
        f"Created a {'root and intermediate CA' if intermediate else 'root CA'} in {directory}.\n"
        f"Devices are signed by {signer}; register that CA with 'jitr ca register --dir {directory}'.",
    )


@app.command()
def show(
    file: Annotated[Path, typer.Argument(help="A PEM certificate or chain file.")],
    as_json: JsonOption = False,
) -> None:
    """Describe every certificate in FILE: subject, issuer, validity, key, AWS IoT certificate id."""
    certs = [describe(c) for c in load_certificates(read_bytes(file, "certificate file"), str(file))]
    human = "\n\n".join("\n".join(f"{key:>14}: {value}" for key, value in info.items()) for info in certs)
    emit(certs, as_json, human)


@app.command()
def verify(
    cert: Annotated[Path, typer.Argument(help="The certificate (or chain file) to verify.")],
    directory: DirOption = Path(config.DEFAULT_PKI_DIR),
    as_json: JsonOption = False,
) -> None:
    """Check that CERT chains to the CA in --dir (exit 5 if it does not)."""
    store = PkiStore(directory)
    certs = load_certificates(read_bytes(cert, "certificate file"), str(cert))
    chain = verify_chain(certs[0], root=store.root_certificate(), intermediates=[*certs[1:], *store.intermediates()])
    names = " -> ".join(c.subject.rfc4514_string() for c in chain)
    emit({"valid": True, "chain": [describe(c) for c in chain]}, as_json, f"OK: {names}")


TopicRootOption = Annotated[
    str,
    typer.Option(
        "--topic-root",
        help="The default template's policy lets devices use ROOT/<thing>/... only; a stack's devices: its "
        "DeviceTopicRoot output (devices/<stack>), which only that stack's archive rule hears.",
    ),
]


@app.command()
def template(
    directory: DirOption = Path(config.DEFAULT_PKI_DIR),
    policy: Annotated[
        Path | None, typer.Option("--policy", help="An IoT policy document (JSON) to use instead of the default.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the template here instead of stdout.")] = None,
    topic_root: TopicRootOption = DEFAULT_TOPIC_ROOT,
) -> None:
    """Render a JITP template: thing named by the certificate CN, least-privilege policy, certificate ACTIVE.

    Parameters are limited to what this CA's device certificates carry (CN, Id, and Country when
    the CA has a country), so devices cannot get stuck in PENDING_ACTIVATION.
    """
    store = PkiStore(directory)
    has_country = store.metadata().country is not None
    document = None
    if policy is not None:
        try:
            document = json.loads(read_bytes(policy, "policy file"))
        except ValueError as exc:
            raise InvalidInputError(f"The policy file {policy} is not valid JSON.") from exc
    rendered = check_template(
        render_jitp_template(
            has_country=has_country,
            policy=document,
            topic_root=topic_root,
            ca_certificate_id=certificate_id(store.signer_certificate()),
        ),
        fillable=fillable_parameters(has_country=has_country),
    )
    text = json.dumps(rendered, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_files(out.parent, {out.name: FileSpec(text.encode())}, overwrite=True)
        typer.echo(f"Wrote the JITP template to {out}.", err=True)


@app.command()
def register(
    directory: DirOption = Path(config.DEFAULT_PKI_DIR),
    mode: Annotated[str, typer.Option("--mode", help="default (verification certificate) or sni-only.")] = "default",
    jitp: Annotated[
        bool,
        typer.Option("--jitp/--jitr", help="Provision with a template (JITP) or leave activation to a Lambda (JITR)."),
    ] = False,
    role_arn: Annotated[
        str | None, typer.Option("--role-arn", help="JITP: role AWS IoT assumes to provision devices.")
    ] = None,
    template_file: Annotated[
        Path | None, typer.Option("--template", help="JITP: a template file instead of the kit's default.")
    ] = None,
    topic_root: TopicRootOption = DEFAULT_TOPIC_ROOT,
    passphrase_env: PassphraseEnvOption = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region (else AWS_REGION).")] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="AWS profile (else AWS_PROFILE).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Register the CA that signs devices with AWS IoT, active and auto-registering; print its id.

    Uses AWS_ENDPOINT_URL when set (the local emulator). Registering again finds the existing
    registration and updates it instead of failing.
    """
    store, secret = open_store(directory, passphrase_env)
    body = None
    if template_file is not None:
        body = parse_template(read_bytes(template_file, "template file"), str(template_file))
    request = RegistrationRequest(mode=mode, jitp=jitp, role_arn=role_arn, template=body, topic_root=topic_root)
    api = IotApi.connect(profile=profile, region=region)
    record = register_ca(api, store, request, passphrase=secret, now=dt.datetime.now(dt.UTC))
    emit(
        record,
        as_json,
        f"{record['outcome'].capitalize()} CA {record['caCertificateId']} for {record['provisioning']} "
        f"({record['mode']}), ACTIVE with auto-registration.",
    )
