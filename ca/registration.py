"""Registering the device-signing CA with AWS IoT for JITR or JITP.

GetRegistrationCode, a verification certificate with that code as CN signed by the CA key
(DEFAULT mode; SNI_ONLY needs none), then RegisterCACertificate with ``setAsActive``,
``allowAutoRegistration`` and, for JITP, the ``registrationConfig``. Registering a CA that AWS
IoT already knows is not an error: it is found by its certificate id and brought to the
requested state with UpdateCACertificate.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from base.certificates import certificate_id, to_pem
from base.errors import AwsError, InvalidInputError, MalformedError
from base.files import FileSpec
from base.keys import generate_key
from base.names import DEFAULT_TOPIC_ROOT
from ca.jitp_template import (
    check_template,
    fillable_parameters,
    render_jitp_template,
    template_body,
)
from ca.store import PkiStore
from cloud.iot import IotApi

MODES = {"default": "DEFAULT", "sni-only": "SNI_ONLY"}
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
VERIFICATION_CERT = "certs/verification.pem"


@dataclass(frozen=True)
class RegistrationRequest:
    """How to register: certificate mode, JITR or JITP, and for JITP the role and template."""

    mode: str = "default"
    jitp: bool = False
    role_arn: str | None = None
    template: dict | None = None
    topic_root: str = DEFAULT_TOPIC_ROOT  # the default template's policy: devices publish under <root>/<thing>/

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInputError(f"Unknown mode {self.mode!r}; use default or sni-only.")
        if self.jitp and not self.role_arn:
            raise InvalidInputError("JITP needs --role-arn: the role AWS IoT assumes to provision devices.")
        if self.role_arn and not ROLE_ARN_RE.match(self.role_arn):
            raise InvalidInputError(f"{self.role_arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME).")
        if not self.jitp and (self.template is not None or self.role_arn):
            raise InvalidInputError("--template and --role-arn go with --jitp.")


def registration_config(store: PkiStore, request: RegistrationRequest) -> dict | None:
    """The registrationConfig for JITP (template checked against the CA's certificates), else None."""
    if not request.jitp:
        return None
    fillable = fillable_parameters(has_country=store.metadata().country is not None)
    template = request.template or render_jitp_template(
        has_country=store.metadata().country is not None,
        topic_root=request.topic_root,
        ca_certificate_id=certificate_id(store.signer_certificate()),
    )
    check_template(template, fillable=fillable)
    return {"templateBody": template_body(template), "roleArn": request.role_arn}


def register_ca(
    api: IotApi, store: PkiStore, request: RegistrationRequest, *, passphrase: bytes | None, now: dt.datetime
) -> dict:
    """Register (or find and update) the CA that signs devices; return the registration record."""
    config = registration_config(store, request)
    ca_cert = store.signer_certificate()
    ca_id = certificate_id(ca_cert)
    existing = api.describe_ca(ca_id)
    extra: dict[str, FileSpec] = {}
    if existing is not None:
        current = existing.get("registrationConfig") or {}
        if config is None and (current.get("templateBody") or current.get("templateName")):
            raise AwsError(
                f"CA {ca_id} is registered for JITP; register with --jitp, or remove its template in AWS IoT first."
            )
        update: dict[str, Any] = {"certificateId": ca_id, "newStatus": "ACTIVE", "newAutoRegistrationStatus": "ENABLE"}
        if config is not None:
            update["registrationConfig"] = config
        api.update_ca(**update)
        arn = existing["certificateDescription"].get("certificateArn")
        outcome = "reused"
    else:
        params = {
            "caCertificate": to_pem(ca_cert).decode(),
            "setAsActive": True,
            "allowAutoRegistration": True,
            "certificateMode": MODES[request.mode],
        }
        if request.mode == "default":
            code = api.registration_code()
            verification = store.signer(passphrase).issue_verification(
                generate_key("ec-p256").public_key(), code, now=now
            )
            params["verificationCertificate"] = to_pem(verification).decode()
            extra[VERIFICATION_CERT] = FileSpec(to_pem(verification))
        if config is not None:
            params["registrationConfig"] = config
        answer = api.register_ca(**params)
        ca_id = answer.get("certificateId", ca_id)
        arn = answer.get("certificateArn")
        outcome = "registered"
    record = {
        "caCertificateId": ca_id,
        "caCertificateArn": arn,
        "mode": MODES[request.mode],
        "provisioning": "JITP" if request.jitp else "JITR",
        "roleArn": request.role_arn,
        "outcome": outcome,
        "registeredAt": now.isoformat() if existing is None else _first_registered(store, ca_id, existing, now),
    }
    if existing is not None:
        record["updatedAt"] = now.isoformat()
    store.save_registration(record, extra)
    return record


def _first_registered(store: PkiStore, ca_id: str, existing: dict, now: dt.datetime) -> str:
    """When the CA was first registered: as recorded before, else AWS's creationDate; a re-run keeps it."""
    try:
        previous = store.registration() or {}
    except MalformedError:
        previous = {}
    if previous.get("caCertificateId") == ca_id and isinstance(previous.get("registeredAt"), str):
        return previous["registeredAt"]
    created = existing.get("certificateDescription", {}).get("creationDate")
    if isinstance(created, dt.datetime):
        return created.astimezone(dt.UTC).isoformat()
    return now.isoformat()
