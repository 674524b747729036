"""A revocation carried to AWS IoT (``jitr ca revoke --aws``).

A device certificate is set REVOKED, which AWS IoT never undoes: it refuses the certificate from then
on. A CA certificate (the intermediate that signs devices) cannot be REVOKED in AWS IoT; its
registration is set INACTIVE with auto-registration off, so no device of it connects or registers any
more, and the answer counts the devices still ACTIVE under it: each of those is still ACTIVE in the
registry and should be revoked (or re-issued under a new CA) in its own right.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509

from base.certificates import certificate_id, is_ca
from cloud.iot import IotApi


def revoke_in_aws(api: IotApi, cert: x509.Certificate) -> dict[str, Any]:
    """Apply the revocation of ``cert`` in AWS IoT; what was done, for the report."""
    cert_id = certificate_id(cert)
    if is_ca(cert):
        if api.describe_ca(cert_id) is None:
            return {"aws": "not registered", "certificateId": cert_id}
        api.update_ca(certificateId=cert_id, newStatus="INACTIVE", newAutoRegistrationStatus="DISABLE")
        active = sum(1 for c in api.list_certificates_by_ca(cert_id) if c.get("status") == "ACTIVE")
        return {"aws": "CA INACTIVE", "certificateId": cert_id, "activeDevices": active}
    found = api.update_certificate(cert_id, "REVOKED")
    return {"aws": "REVOKED" if found else "not registered", "certificateId": cert_id}


def describe_aws(result: dict[str, Any]) -> str:
    if result["aws"] == "not registered":
        return "AWS IoT does not know it: nothing to change there."
    if result["aws"] == "REVOKED":
        return "AWS IoT: the certificate is REVOKED and refused from now on."
    return (
        f"AWS IoT: the CA registration is INACTIVE (auto-registration off); {result['activeDevices']} device "
        "certificates under it are still ACTIVE in the registry: revoke or re-issue them too."
    )
