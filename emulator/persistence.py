"""The emulator's state across restarts: the snapshot is loaded at start, saved every few seconds while
something changes, and saved once more at a clean stop.

A clean stop (SIGINT, SIGTERM) saves after every server has stopped, so nothing is lost. After a
SIGKILL or a power cut the last snapshot on disk is at most :data:`DEFAULT_INTERVAL` seconds (plus
the time one save takes) older than the state was: that is what is lost. A save replaces the file
atomically, so the file on disk is always a whole snapshot.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from emulator.store import snapshot
from emulator.store.state import StateStore

SNAPSHOT_FILE = "emulator.snapshot"
OBJECTS_FILE = "emulator.objects"  # S3 objects, kept on disk (emulator.store.s3_objects)
SET_ASIDE_SUFFIX = ".old"  # where --fresh moves the previous snapshot
DEFAULT_INTERVAL = 2.0  # seconds between saves (a save is skipped when nothing changed)

log = logging.getLogger("jitr.emulator")


class Persistence:
    """Load, save periodically and save at stop the snapshot of one state directory."""

    def __init__(self, state_dir: Path, store: StateStore, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.path = Path(state_dir) / SNAPSHOT_FILE
        self.objects_path = Path(state_dir) / OBJECTS_FILE
        self.store = store
        self.interval = interval
        self.ports: dict[str, int] = {}  # the servers' ports, saved so a restart listens where clients dial
        self._saved_header: bytes | None = None
        self._seen_changes = -1
        self._settled = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._save_lock = threading.Lock()
        self._last_warning = ""

    def load(self, *, fresh: bool = False) -> dict[str, int]:
        """Install the snapshot, if there is one (``fresh``: set it aside as ``*.old`` and start empty);
        the ports it recorded. A snapshot that cannot be loaded raises :class:`snapshot.SnapshotError`
        and stays where it is."""
        from emulator.store import s3_objects  # imports moto's S3

        if fresh and self.path.exists():
            aside = self.path.with_name(self.path.name + SET_ASIDE_SUFFIX)
            os.replace(self.path, aside)
            log.info("Starting empty (--fresh); the previous snapshot is now %s", aside)
        if fresh:
            for suffix in ("", "-wal", "-shm"):  # SQLite's journal beside it goes with it
                objects = self.objects_path.with_name(self.objects_path.name + suffix)
                if objects.exists():
                    os.replace(objects, self.objects_path.with_name(self.objects_path.name + SET_ASIDE_SUFFIX + suffix))
        s3_objects.activate(self.objects_path)
        if not self.path.exists():
            s3_objects.adopt(_s3_backends())  # rows no snapshot names are dropped
            return {}
        contents = snapshot.read(self.path)
        snapshot.install(contents)
        s3_objects.adopt(_s3_backends())
        self.store.restore(contents.extra.get("iot", {}))
        self._saved_header = self.path.read_bytes().partition(b"\n")[0]
        ports = contents.extra.get("ports", {})
        log.info("Restored the emulator's state from %s", self.path)
        return {name: int(port) for name, port in ports.items() if isinstance(port, int)}

    def start(self, ports: dict[str, int]) -> None:
        """Save now, then every :attr:`interval` seconds in a daemon thread."""
        self.ports = dict(ports)
        self.save()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="jitr-emulator-snapshot", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self._maybe_changed():
                continue
            try:
                self.save()
            except Exception as exc:  # keep serving; say it once, not every interval
                message = str(exc)
                if message != self._last_warning:
                    log.warning("The emulator's state was not saved: %s", message)
                    self._last_warning = message

    def _maybe_changed(self) -> bool:
        """True while something happens, and once more an interval after, for what it set off (a rule's
        S3 write, a function's calls) to be in the snapshot too; False when idle."""
        changes = self.store.changes
        if changes != self._seen_changes or self.store.busy():
            self._seen_changes, self._settled = changes, False
            return True
        if not self._settled:
            self._settled = True
            return True
        return False

    def save(self) -> bool:
        """Write a snapshot if the state changed since the last one; True when it wrote."""
        with self._save_lock:
            data = snapshot.capture({"iot": self.store.regions(), "ports": self.ports})
            header = data.partition(b"\n")[0]
            if header == self._saved_header:
                return False
            snapshot.write(self.path, data)
            self._saved_header = header
            return True

    def stop(self) -> None:
        """Stop saving periodically and save one last time (call it after the servers have stopped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None
        try:
            self.save()
        except Exception as exc:
            log.error(
                "The emulator's state was not saved at stop: %s; the snapshot on disk is the last one taken.", exc
            )
        finally:
            from emulator.store import s3_objects

            s3_objects.deactivate()

    def info(self) -> dict[str, Any]:
        return {"snapshot": str(self.path), "snapshot_interval": self.interval, "objects": str(self.objects_path)}


def _s3_backends() -> list[Any]:
    return [backend for (service, _account, _region), backend in snapshot.backends_in_use().items() if service == "s3"]
