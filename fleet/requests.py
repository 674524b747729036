"""What ``jitr fleet register`` is asked and reports, shared by its two methods (:mod:`fleet.register`
for the api method and the run, :mod:`fleet.task` for a bulk registration task)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from base.errors import InvalidInputError
from base.names import THING_NAME_RE
from fleet.devices import FAILED, REGISTERED, SKIPPED, Outcome

METHODS = ("api", "task")
RESULTS_FILE = "registration.json"
DEFAULT_POLICY = "jitr-fleet-device"
DEFAULT_CONCURRENCY = 16
POLICY_NAME_RE = re.compile(r"^[\w+=,.@-]{1,128}$")
SHARED_WARNING = (
    "One certificate is shared by every thing (--shared-certificate): AWS IoT Device Defender's audit flags "
    "shared device certificates (DEVICE_CERTIFICATE_SHARED_CHECK), and revoking it cuts off the whole batch."
)


@dataclass(frozen=True)
class RegisterRequest:
    """What ``jitr fleet register`` was asked; checked on creation."""

    manifest: Path
    method: str = "api"
    thing_type: str | None = None
    group: str | None = None
    policy: str = DEFAULT_POLICY
    concurrency: int = DEFAULT_CONCURRENCY
    without_ca: bool = False
    shared_certificate: bool = False
    results: Path | None = None
    bucket: str | None = None  # task: where the input file goes
    role_arn: str | None = None  # task: the role AWS IoT reads the input file with
    poll_interval: float = 2.0  # task: seconds between two looks at the task

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InvalidInputError(f"Unknown method {self.method!r}; use api or task.")
        if self.concurrency < 1:
            raise InvalidInputError("--concurrency must be at least 1.")
        for option, value in (("--thing-type", self.thing_type), ("--group", self.group)):
            if value is not None and not THING_NAME_RE.match(value):
                raise InvalidInputError(f"{option} {value!r} is not valid: use 1-128 letters, digits, ':', '_' or '-'.")
        if not POLICY_NAME_RE.match(self.policy):
            raise InvalidInputError(f"--policy {self.policy!r} is not a valid policy name.")
        if self.method == "task" and (not self.bucket or not self.role_arn):
            raise InvalidInputError(
                "--method task needs --bucket (where the input file goes) and --role-arn (the role AWS IoT reads it "
                "with)."
            )

    @property
    def results_path(self) -> Path:
        return self.results or Path(self.manifest).parent / RESULTS_FILE


@dataclass
class RegisterReport:
    """The run: every line's outcome, and what it took."""

    request: RegisterRequest
    outcomes: list[Outcome]
    seconds: float
    throttles: dict[str, int] = field(default_factory=dict)
    created: dict[str, bool] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    task_id: str | None = None

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def rate(self) -> float:
        """Devices registered a second (skipped ones cost nothing and do not count)."""
        return self.count(REGISTERED) / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """What ``--json`` prints: the counts, the failures with their reasons, where the rest is."""
        return {
            "manifest": str(self.request.manifest),
            "method": self.request.method,
            "registered": self.count(REGISTERED),
            "skipped": self.count(SKIPPED),
            "failed": self.count(FAILED),
            "failures": [outcome.as_dict() for outcome in self.outcomes if outcome.status == FAILED],
            "seconds": round(self.seconds, 3),
            "devicesPerSecond": round(self.rate, 1),
            "throttles": self.throttles,
            "created": self.created,
            "warnings": self.warnings,
            "taskId": self.task_id,
            "resultsFile": str(self.request.results_path),
        }

    def as_dict(self) -> dict[str, Any]:
        """The results file: the summary, and every device."""
        return {
            **self.summary(),
            "sharedCertificate": self.request.shared_certificate,
            "withoutCa": self.request.without_ca,
            "devices": [outcome.as_dict() for outcome in self.outcomes],
        }


class ProgressReporter(Protocol):
    """Where a run reports how far it is (the CLI's progress bar, ``cli.progress.ProgressBar``)."""

    def start(self, total: int) -> None: ...

    def advance(self, count: int = 1) -> None: ...


class SilentProgress:
    """A :class:`ProgressReporter` that reports nowhere."""

    def start(self, total: int) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass


@dataclass(frozen=True)
class Setup:
    """What every device of the run shares."""

    ca_pem: str | None  # None: RegisterCertificateWithoutCA
    policy: str
    thing_type: str | None
    group: str | None
    shared: tuple[str, str] | None = None  # (certificateId, certificateArn) of the shared certificate
    ca_id: str | None = None  # the CA's certificateId: a thing of another CA is refused
