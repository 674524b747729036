"""The folder a batch is minted into: what is checked before, and how the finished batch is moved in.

:mod:`ca.batch` mints into a staging folder ``.mint-<pid>`` inside ``--out`` and publishes it only when
every device is minted. Before it starts: nothing of an earlier batch is overwritten, the batch fits
the disk, and staging folders that killed runs left (their process is gone) are removed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from base import manifest
from base.errors import AlreadyExistsError, InvalidInputError
from base.files import PRIVATE_DIR_MODE

MAX_BATCH = 100_000_000  # a sanity bound on --count: a hundred times "a million"
# Bytes a device takes on disk, with room for file-system blocks: three small files in ``files`` format
# (certificate, chain, key: a 4 KiB block each) plus its manifest line; one longer line in ``jsonl``.
BYTES_PER_DEVICE = {"files": 3 * 4096 + 512, "jsonl": 4096}


def check_out(out: Path) -> None:
    """Refuse an --out folder that already holds a batch: nothing is overwritten."""
    for rel in (manifest.MANIFEST, manifest.CERTS, manifest.PRIVATE, manifest.CA_FILE):
        if (out / rel).exists():
            raise AlreadyExistsError(f"{out / rel} already exists; mint the batch into another --out folder.")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_stages(out: Path) -> list[Path]:
    """Remove the staging folders that killed runs left in ``out`` (their process is gone); which ones."""
    removed = []
    for stage in sorted(out.glob(".mint-*")) if out.is_dir() else []:
        pid = stage.name.removeprefix(".mint-")
        if stage.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            shutil.rmtree(stage, ignore_errors=True)
            removed.append(stage)
    return removed


def check_size(count: int, fmt: str, out: Path) -> None:
    """Refuse a batch larger than :data:`MAX_BATCH`, or one the free disk space cannot hold."""
    if count < 1 or count > MAX_BATCH:
        raise InvalidInputError(f"A batch holds 1 to {MAX_BATCH:,} devices, not {count:,}.")
    needed = count * BYTES_PER_DEVICE[fmt]
    existing = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise InvalidInputError(
            f"{count:,} devices need about {needed / 2**30:,.1f} GiB in {existing}, "
            f"which has {free / 2**30:,.1f} GiB free; mint fewer or free some space."
        )


def publish(stage: Path, out: Path, fmt: str) -> None:
    """Move the finished batch from the staging folder into ``out``."""
    if fmt == "files":
        os.replace(stage / manifest.CERTS, out / manifest.CERTS)
        os.replace(stage / manifest.PRIVATE, out / manifest.PRIVATE)
        os.chmod(out / manifest.PRIVATE, PRIVATE_DIR_MODE)
    os.replace(stage / manifest.CA_FILE, out / manifest.CA_FILE)
    os.replace(stage / manifest.MANIFEST, out / manifest.MANIFEST)
    shutil.rmtree(stage, ignore_errors=True)
