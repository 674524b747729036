"""The messages AWS IoT publishes itself: registration and presence (lifecycle) events."""

from __future__ import annotations

import json
import time

REGISTERED_TOPIC = "$aws/events/certificates/registered/{ca_certificate_id}"
PRESENCE_TOPIC = "$aws/events/presence/{event_type}/{client_id}"


def now_ms() -> int:
    return int(time.time() * 1000)


def registration_event(
    certificate_id: str, ca_certificate_id: str, *, account_id: str, registered_ms: int, timestamp_ms: int | None = None
) -> tuple[str, bytes]:
    """``(topic, payload)`` of the JITR event for a certificate registered PENDING_ACTIVATION."""
    payload = {
        "certificateId": certificate_id,
        "caCertificateId": ca_certificate_id,
        "timestamp": timestamp_ms or now_ms(),
        "certificateStatus": "PENDING_ACTIVATION",
        "awsAccountId": account_id,
        "certificateRegistrationTimestamp": registered_ms,
    }
    return REGISTERED_TOPIC.format(ca_certificate_id=ca_certificate_id), json.dumps(payload).encode()


def presence_event(
    event_type: str,
    *,
    client_id: str,
    session_identifier: str,
    principal: str | None,
    ip_address: str,
    disconnect_reason: str | None = None,
    timestamp_ms: int | None = None,
) -> tuple[str, bytes]:
    """``(topic, payload)`` of a ``connected`` or ``disconnected`` lifecycle event."""
    payload = {
        "clientId": client_id,
        "timestamp": timestamp_ms or now_ms(),
        "eventType": event_type,
        "sessionIdentifier": session_identifier,
        "principalIdentifier": principal,
        "ipAddress": ip_address,
        "versionNumber": 0,
    }
    if event_type == "disconnected":
        payload["clientInitiatedDisconnect"] = disconnect_reason == "CLIENT_INITIATED_DISCONNECT"
        payload["disconnectReason"] = disconnect_reason or "CONNECTION_LOST"
    return PRESENCE_TOPIC.format(event_type=event_type, client_id=client_id), json.dumps(payload).encode()
