"""RegisterThing and CreateCertificateFromCsr: the control-plane calls of AWS-issued certificates.

RegisterThing ``{templateBody, parameters}`` runs a provisioning template through the one
:class:`~emulator.iot.template_runner.TemplateRunner` (JITP's and registration tasks') and answers
``{certificatePem, resourceArns}``; a template whose certificate has a ``CertificateSigningRequest``
gets a certificate the emulator signs as AWS IoT would (:mod:`emulator.iot.aws_issuer`). The call
spends RegisterThing's quota (10/s by default) and nothing else, as on AWS.

CreateCertificateFromCsr is answered here because moto's puts a key of its own into the certificate.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from base.certificates import certificate_id, to_pem
from emulator.api.calls import Call
from emulator.api.provisioning_templates import check_body
from emulator.iot.aws_issuer import aws_issuer, load_request
from emulator.iot.template_runner import ProvisioningError, TemplateRunner, parse_template, resolve_parameters
from emulator.store.device_certificates import store_certificate
from emulator.store.errors import InvalidRequest

MAX_PARAMETER = 4096  # characters of a parameter value (a CSR fits)


def _parameters(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidRequest("parameters must map parameter names to strings.")
    for name, text in value.items():
        if len(text) > MAX_PARAMETER:
            raise InvalidRequest(f"Parameter {name} is {len(text)} characters; at most {MAX_PARAMETER} are allowed.")
    return value


def register_thing(call: Call) -> dict[str, Any]:
    body = check_body(call.text("templateBody", required=True))
    supplied = _parameters(call.body.get("parameters"))
    try:
        template = parse_template(body)
        applied = TemplateRunner(call.backend, call.state.lock).run(template, resolve_parameters(template, supplied))
    except ProvisioningError as exc:
        raise InvalidRequest(str(exc)) from None
    answer: dict[str, Any] = {"resourceArns": applied.arns()}
    if applied.certificate is not None:
        answer["certificatePem"] = applied.certificate.certificate_pem
    return answer


def create_certificate_from_csr(call: Call) -> dict[str, Any]:
    csr = load_request(call.text("certificateSigningRequest", required=True), "certificateSigningRequest")
    cert = aws_issuer().sign(csr, now=dt.datetime.now(dt.UTC))
    pem = to_pem(cert).decode()
    status = "ACTIVE" if call.flag("setAsActive") else "INACTIVE"
    with call.state.lock:
        record = store_certificate(call.backend, pem, cert, status=status)
    return {"certificateArn": record.arn, "certificateId": certificate_id(cert), "certificatePem": pem}


HANDLERS = {"RegisterThing": register_thing, "CreateCertificateFromCsr": create_certificate_from_csr}
