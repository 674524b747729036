"""What the emulator keeps beside moto's IoT backend, per account and region.

moto holds things, certificates, CAs and policies; the emulator adds the registration code, the
provisioning templates and the thing registration tasks. Compound changes (check, then insert) hold the region's lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from emulator.store.records import ProvisioningTemplate, RegistrationTask


@dataclass
class RegionState:
    """The emulator's own IoT state for one account in one region."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    registration_code: str | None = None
    templates: dict[str, ProvisioningTemplate] = field(default_factory=dict)
    registration_tasks: dict[str, RegistrationTask] = field(default_factory=dict)


class StateStore:
    """RegionState by (account, region), created on first use."""

    def __init__(self) -> None:
        self._regions: dict[tuple[str, str], RegionState] = {}
        self._lock = threading.Lock()

    def region(self, account: str, region: str) -> RegionState:
        with self._lock:
            state = self._regions.get((account, region))
            if state is None:
                state = self._regions[(account, region)] = RegionState()
            return state

    def clear(self) -> None:
        with self._lock:
            self._regions.clear()
