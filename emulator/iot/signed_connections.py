"""MQTT over WebSocket signed with SigV4: who the client is, and the IAM policies that decide what it may do.

The broker shows each upgrade request to :meth:`SignedConnections.on_websocket` before answering it. A URL
whose signature, scope or time does not check out, whose credentials the emulator's STS did not issue or
that have expired, or whose ``X-Amz-Security-Token`` is not theirs, is refused (HTTP 403), as AWS IoT does;
the reason goes to the emulator's log. An accepted one carries the policy sets that must *all* allow an
action (IAM's evaluation of a role session: the role's identity policies intersected with the session
policy given to AssumeRole; for a Cognito identity, also the IoT policies attached to the identity),
which :class:`emulator.iot.core.IotCore` evaluates for ``iot:Connect``, ``Publish``, ``Subscribe`` and
``Receive`` with the same resource forms as IoT policies. An explicit Deny in any set denies.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from emulator.iot import policy, sigv4
from emulator.mqtt.websocket import UpgradeRequest
from emulator.store.credentials import TemporaryCredentials, role_policy_documents, temporary_credentials

log = logging.getLogger("jitr.emulator")


class SignedConnections:
    """The ``on_websocket`` hook of one region's endpoint."""

    def __init__(
        self,
        registry: Any,
        *,
        account_id: str,
        region: str,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.registry, self.account_id, self.region, self._now = registry, account_id, region, now

    def on_websocket(self, request: UpgradeRequest) -> dict[str, Any] | None:
        try:
            return self._authenticate(request)
        except sigv4.SignatureRefused as exc:
            log.warning("websocket upgrade refused (403): %s", exc)
            return None

    def _authenticate(self, request: UpgradeRequest) -> dict[str, Any]:
        found: dict[str, TemporaryCredentials] = {}

        def secret_of(access_key_id: str) -> str | None:
            credentials = temporary_credentials(self.account_id, self.region, access_key_id)
            if credentials is None:
                return None
            found["credentials"] = credentials
            return credentials.secret_access_key

        now = self._now()
        signed = sigv4.verify(request.path, request.query, request.header, secret_of, now=now)
        credentials = found["credentials"]
        if signed.region != self.region:
            raise sigv4.SignatureRefused(
                f"signed for region {signed.region}, but this endpoint serves {self.region}: sign for {self.region}"
            )
        if signed.session_token != credentials.session_token:
            raise sigv4.SignatureRefused("X-Amz-Security-Token is missing or is not the token of these credentials")
        if now >= credentials.expiration:
            raise sigv4.SignatureRefused(f"the credentials expired at {credentials.expiration:%Y-%m-%dT%H:%M:%SZ}")
        return {"identity": credentials.session_arn, "policy_sets": self._policy_sets(credentials)}

    def _policy_sets(self, credentials: TemporaryCredentials) -> list[list[policy.Policy]]:
        role = [
            parsed
            for number, document in enumerate(role_policy_documents(self.account_id, credentials.role_arn) or [], 1)
            if (parsed := _parsed(document, f"{credentials.role_arn} policy {number}")) is not None
        ]
        sets = [role]
        if credentials.session_policy is not None:
            session = _parsed(credentials.session_policy, f"the session policy of {credentials.session_arn}")
            sets.append([session] if session is not None else [])
        if credentials.identity_id is not None:
            attached = self.registry.policies_for(credentials.identity_id)
            sets.append([p for record in attached if (p := _parsed(record.document, record.name)) is not None])
        return sets


def _parsed(document: str, label: str) -> policy.Policy | None:
    """A policy document as the evaluator reads it; one it cannot read grants nothing (and is logged)."""
    try:
        return policy.Policy.parse(document, name=label)
    except policy.InvalidPolicyError as exc:
        log.warning("%s grants nothing here: %s", label, exc)
        return None


def decide(policy_sets: list[list[policy.Policy]], action: str, resource: str, ctx: policy.RequestContext) -> bool:
    """Whether every policy set allows the action and none denies it explicitly."""
    return all(policy.is_allowed(policies, action, resource, ctx) for policies in policy_sets)
