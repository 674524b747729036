"""Reading inputs with clear errors, and writing a set of files in one step.

Private keys are created with mode 0600 (never widened afterwards), and a set of files is
either written whole or not at all: each file goes to a temporary name first and is renamed
into place once every file of the set has been written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from base.errors import AlreadyExistsError, NotFoundError, OutputError

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
PRIVATE_DIR_MODE = 0o700


@dataclass(frozen=True)
class FileSpec:
    data: bytes
    private: bool = False


def read_bytes(path: Path, what: str = "file") -> bytes:
    """The bytes of ``path``, or one sentence saying why it cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise NotFoundError(f"The {what} {path} does not exist.") from exc
    except IsADirectoryError as exc:
        raise NotFoundError(f"The {what} {path} is a directory, not a file.") from exc
    except PermissionError as exc:
        raise OutputError(f"The {what} {path} cannot be read: permission denied.") from exc


def create_file(path: Path, data: bytes, *, private: bool = False, exclusive: bool = True) -> None:
    """Create ``path`` with ``data``; mode 0600 from the first byte when ``private``."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE_MODE if private else PUBLIC_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise


def ensure_dir(path: Path, *, private: bool = False) -> None:
    """Create a directory (and parents); a ``private`` one with mode 0700."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE if private else 0o755)
        if private:
            os.chmod(path, PRIVATE_DIR_MODE)
    except (PermissionError, FileExistsError, NotADirectoryError) as exc:
        raise OutputError(f"Cannot create the directory {path}: {exc.strerror or exc}.") from exc


def write_files(base: Path, files: Mapping[str, FileSpec], *, overwrite: bool = False) -> list[Path]:
    """Write every file of ``files`` (paths relative to ``base``) or none of them.

    Refuses to replace an existing file unless ``overwrite``. Directories named ``private``
    are created with mode 0700.
    """
    base = Path(base)
    targets = {rel: base / rel for rel in files}
    if not overwrite:
        existing = [str(path) for path in targets.values() if path.exists()]
        if existing:
            raise AlreadyExistsError(f"{existing[0]} already exists; refusing to overwrite it.")
    missing_dirs = sorted(
        {
            d
            for t in targets.values()
            for d in (t.parent, *t.parent.parents)
            if not d.exists() and d.is_relative_to(base)
        },
        key=lambda d: len(d.parts),
    )
    staged: list[tuple[Path, Path]] = []
    try:
        for rel, spec in files.items():
            target = targets[rel]
            ensure_dir(target.parent, private=target.parent.name == "private")
            temp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            create_file(temp, spec.data, private=spec.private, exclusive=False)
            staged.append((temp, target))
        for temp, target in staged:
            os.replace(temp, target)
    except BaseException as exc:
        for temp, _target in staged:
            temp.unlink(missing_ok=True)
        for folder in reversed(missing_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, OSError):
            raise OutputError(f"Cannot write to {base}: {exc.strerror or exc}.") from exc
        raise
    return list(targets.values())
