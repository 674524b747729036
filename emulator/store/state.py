"""What the emulator keeps beside moto's backends, per account and region.

moto holds things, certificates, CAs and policies; the emulator adds the registration code, the
provisioning templates and the thing registration tasks, and for Cognito identity pools their roles
and identities. Compound changes (check, then insert) hold the region's lock.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any

from emulator.store.records import (
    CANCELLED,
    CANCELLING,
    FAILED,
    RUNNING,
    Identity,
    ProvisioningTemplate,
    RegistrationTask,
)

INTERRUPTED = "The emulator stopped while the task ran; start the task again."


@dataclass
class RegionState:
    """The emulator's own IoT state for one account in one region."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    registration_code: str | None = None
    templates: dict[str, ProvisioningTemplate] = field(default_factory=dict)
    registration_tasks: dict[str, RegistrationTask] = field(default_factory=dict)
    identity_roles: dict[str, dict[str, Any]] = field(default_factory=dict)  # identity pool id -> roles
    identities: dict[str, Identity] = field(default_factory=dict)  # by identity id
    logging_options: dict[str, Any] | None = None  # SetV2LoggingOptions' last call; None: never configured


class StateStore:
    """RegionState by (account, region), created on first use."""

    def __init__(self) -> None:
        self._regions: dict[tuple[str, str], RegionState] = {}
        self._lock = threading.Lock()
        self.changes = 0  # bumped by whatever may have changed the state (see touch)

    def touch(self) -> None:
        """Say the state may have changed (an API request, a device's connect or message): the periodic
        snapshot takes a look only then, so an idle emulator costs nothing however much it holds."""
        self.changes += 1

    def busy(self) -> bool:
        """Whether a thing registration task is running (it changes the state without further requests)."""
        with self._lock:
            regions = list(self._regions.values())
        return any(task.status in RUNNING for state in regions for task in list(state.registration_tasks.values()))

    def region(self, account: str, region: str) -> RegionState:
        with self._lock:
            state = self._regions.get((account, region))
            if state is None:
                state = self._regions[(account, region)] = RegionState()
            return state

    def clear(self) -> None:
        """Forget everything. Each region's state is emptied in place: the broker's hooks and the rules engine
        hold a region's RegionState from their start, and must see the templates made after a reset."""
        with self._lock:
            for state in self._regions.values():
                empty = RegionState(lock=state.lock)
                with state.lock:
                    for name in (item.name for item in dataclasses.fields(RegionState) if item.name != "lock"):
                        setattr(state, name, getattr(empty, name))

    def regions(self) -> dict[tuple[str, str], RegionState]:
        """Every region's state by (account, region): what a snapshot saves."""
        with self._lock:
            return dict(self._regions)

    def restore(self, regions: dict[tuple[str, str], RegionState]) -> None:
        """Take the regions a snapshot saved. A registration task that ran when the emulator stopped has no
        thread any more: it ends Failed (or Cancelled, if it was being cancelled) rather than run forever."""
        for state in regions.values():
            for task in state.registration_tasks.values():
                if task.status in RUNNING:
                    task.status = CANCELLED if task.status == CANCELLING else FAILED
                    task.message = INTERRUPTED
        with self._lock:
            self._regions = dict(regions)
