"""The records the emulator keeps beside moto's backends: provisioning templates and thing
registration tasks, which moto lacks (held per region in :class:`emulator.store.state.RegionState`)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from typing import Any

IN_PROGRESS, COMPLETED, FAILED, CANCELLED, CANCELLING = "InProgress", "Completed", "Failed", "Cancelled", "Cancelling"
STATUSES = (IN_PROGRESS, COMPLETED, FAILED, CANCELLED, CANCELLING)
RUNNING = (IN_PROGRESS, CANCELLING)
RESULTS, ERRORS = "RESULTS", "ERRORS"


@dataclass(frozen=True)
class ProvisioningTemplate:
    """A provisioning template as AWS IoT describes it."""

    name: str
    arn: str
    body: str
    role_arn: str
    type: str
    description: str
    enabled: bool
    pre_provisioning_hook: dict[str, Any] | None
    created: dt.datetime
    modified: dt.datetime
    default_version_id: int = 1

    @property
    def document(self) -> dict[str, Any]:
        """The template body parsed (Parameters, Resources, ...)."""
        return json.loads(self.body)

    def summary(self) -> dict[str, Any]:
        return {
            "templateArn": self.arn,
            "templateName": self.name,
            "description": self.description,
            "creationDate": self.created,
            "lastModifiedDate": self.modified,
            "enabled": self.enabled,
            "type": self.type,
        }

    def description_dict(self) -> dict[str, Any]:
        described = {
            **self.summary(),
            "defaultVersionId": self.default_version_id,
            "templateBody": self.body,
            "provisioningRoleArn": self.role_arn,
        }
        if self.pre_provisioning_hook:
            described["preProvisioningHook"] = self.pre_provisioning_hook
        return described


@dataclass
class RegistrationTask:
    """One bulk registration task and what it has done so far."""

    task_id: str
    template_body: str
    bucket: str
    key: str
    role_arn: str
    created: dt.datetime
    modified: dt.datetime
    status: str = IN_PROGRESS
    message: str = ""
    total: int = 0
    success: int = 0
    failure: int = 0
    reports: dict[str, list[str]] = field(default_factory=lambda: {RESULTS: [], ERRORS: []})
    cancel: threading.Event = field(default_factory=threading.Event)

    def description(self) -> dict[str, Any]:
        done = self.success + self.failure
        progress = 100 if self.status == COMPLETED else (100 * done // self.total if self.total else 0)
        return {
            "taskId": self.task_id,
            "creationDate": self.created,
            "lastModifiedDate": self.modified,
            "templateBody": self.template_body,
            "inputFileBucket": self.bucket,
            "inputFileKey": self.key,
            "roleArn": self.role_arn,
            "status": self.status,
            "message": self.message,
            "successCount": self.success,
            "failureCount": self.failure,
            "percentageProgress": progress,
        }


@dataclass(frozen=True)
class Identity:
    """A Cognito identity of an identity pool: a signed-in user's (``login``: provider and ``sub``) or an
    unauthenticated one's (``login`` None)."""

    identity_id: str
    pool_id: str
    login: tuple[str, str] | None
