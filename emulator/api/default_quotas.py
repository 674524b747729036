"""AWS IoT's default per-API quotas (transactions per second), for ``jitr local up --quota aws-defaults``.

The values are AWS-FACTS.md's table (AWS's 2019 table; live accounts may differ, and CreateThing
was later reported at 100). RegisterCertificateWithoutCA is not in that table: it is assumed to
share RegisterCertificate's 10 (unconfirmed). With these, registering devices one API call per
step tops out near 10 devices a second per account: RegisterCertificate and UpdateCertificate
each allow 10 calls a second.
"""

from __future__ import annotations

AWS_DEFAULTS_NAME = "aws-defaults"

AWS_DEFAULT_QUOTAS: dict[str, float] = {
    "RegisterCertificate": 10,
    "RegisterCertificateWithoutCA": 10,  # assumed, see the module docstring
    "RegisterCACertificate": 10,
    "UpdateCertificate": 10,
    "CreatePolicy": 10,
    "RegisterThing": 10,
    "DescribeCertificate": 10,
    "GetRegistrationCode": 10,
    "CreateThing": 15,
    "AttachPolicy": 15,
    "AttachThingPrincipal": 15,
    "CreateCertificateFromCsr": 15,
    "AddThingToThingGroup": 60,
    "DescribeThing": 350,
}
