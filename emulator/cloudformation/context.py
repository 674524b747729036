"""What every resource creator of ``jitr local deploy`` is handed: clients on the emulator, names, ids.

A creator is ``(deployment, stack, logical_id, properties, code_dirs) -> (physical_id, attributes)``
and makes the resource with the boto3 calls CloudFormation would make; a deleter is
``(deployment, record_item) -> None``. Each resource family keeps both in its own module
(:mod:`~emulator.cloudformation.resources`, :mod:`~emulator.cloudformation.gateway_resources`,
:mod:`~emulator.cloudformation.service_resources`).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from typing import Any

Creator = Callable[..., tuple[str, dict[str, Any]]]
Deleter = Callable[..., None]
# ``(deployment, the previous record item, properties) -> (attributes, undo)``: a resource CloudFormation changes
# in place, and what undoes the change should a later resource of the stack fail
Updater = Callable[["Deployment", dict, dict], tuple[dict, Callable[[], None]]]


class Deployment:
    """boto3 clients pointed at the emulator, with the stack's account and region."""

    def __init__(self, session, *, account_id: str = "123456789012") -> None:
        self.session = session
        self.region = session.region_name
        self.account_id = account_id
        self._clients: dict[str, Any] = {}

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    def _name(self, stack: str, logical: str, *, lower: bool = False, separator: str = "-", limit: int = 64) -> str:
        """A physical name as CloudFormation makes one: stack, logical id and a random suffix."""
        name = f"{stack}{separator}{logical}{separator}{secrets.token_hex(4)}"
        if separator == "_":
            name = re.sub(r"[^A-Za-z0-9_]", "_", name)
        return (name.lower() if lower else name)[-limit:].lstrip("-_")


def error_code(exc: Exception) -> str | None:
    """The AWS error code of a botocore ClientError (None for any other exception)."""
    response = getattr(exc, "response", None)
    return (response or {}).get("Error", {}).get("Code") if isinstance(response, dict) else None


def iam_document(document: dict[str, Any]) -> str:
    """A policy document for moto's IAM. AWS accepts a document without ``Version`` (it reads it as
    2008-10-17), which SAM's policy templates write; moto refuses anything older than 2012-10-17, so such a
    document is handed over as 2012-10-17 (the same meaning when, as there, it has no policy variables)."""
    return json.dumps(document if "Version" in document else {"Version": "2012-10-17", **document})
