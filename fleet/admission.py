"""Admitting serials to the provisioning API (``jitr fleet admit``).

Each device gets a random token (32 bytes, URL-safe base64) and a binding code (16 characters of
Crockford's base32, 80 random bits, printed in four groups of four such as 7Q2M-K9DX-4TRB-H8VZ on the
device or its box), with which its user binds it (the users API, ``jitr app bind``). The fleet table
keeps only their SHA-256 (256 or 80 random bits need no slow hash: they cannot be guessed from it), and
both are written once, to a 0600 file for the factory line, before any row is: rows whose tokens were
never written down would be devices nobody can enroll. A serial that is admitted already is refused
unless the tokens are rotated (which also enables a disabled serial again, and keeps its binding code).
When writing the rows fails, the rows this run added are removed again; rotations already done stay in
the file, which then lists only them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from base.errors import AlreadyExistsError, InvalidInputError, JitrError, NotFoundError
from base.files import create_file, read_bytes
from base.names import check_thing_name
from cloud.fleet_table import FleetTable

TOKEN_BYTES = 32
MAX_COUNT = 1_000_000
SERIAL_WIDTH = 6
DEFAULT_CONCURRENCY = 16  # rows written at a time: DynamoDB answers in milliseconds, one at a time is slow


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: no I, L, O, U to misread
CODE_LENGTH = 16


def new_binding_code() -> str:
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(code[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def binding_code_hash(code: str) -> str:
    """As the users function computes it (functions/provisioning/fleet_rows.py): case, blanks, dashes do not count."""
    return hashlib.sha256("".join(code.split()).replace("-", "").upper().encode()).hexdigest()


def serials_from_file(path: Path) -> list[str]:
    """One serial a line; blank lines and lines starting with # are skipped."""
    text = read_bytes(path, "serials file").decode("utf-8", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def numbered_serials(prefix: str, count: int, *, start: int = 1) -> list[str]:
    if not 1 <= count <= MAX_COUNT:
        raise InvalidInputError(f"--count must be between 1 and {MAX_COUNT:,}, not {count}.")
    return [f"{prefix}{number:0{SERIAL_WIDTH}d}" for number in range(start, start + count)]


def check_serials(serials: list[str]) -> list[str]:
    """Serials that make valid thing names, each once."""
    if not serials:
        raise InvalidInputError("No serials to admit: give --serials FILE, --serial S or --count N --prefix P.")
    for serial in serials:
        check_thing_name(serial)
    twice = sorted(serial for serial, times in Counter(serials).items() if times > 1)
    if twice:
        raise InvalidInputError(f"Serials listed twice: {', '.join(twice[:5])}{' ...' if len(twice) > 5 else ''}.")
    return serials


@dataclass(frozen=True)
class Admitted:
    serial: str
    token: str
    rotated: bool
    binding_code: str | None = None  # None for a rotated serial: its binding code does not change


def _write_tokens(path: Path, stack: str, admitted: list[Admitted], *, exclusive: bool = True) -> None:
    document = {
        "stack": stack,
        "writtenAt": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "devices": [{"serial": a.serial, "token": a.token, "bindingCode": a.binding_code} for a in admitted],
    }
    try:
        create_file(path, (json.dumps(document, indent=1) + "\n").encode(), private=True, exclusive=exclusive)
    except FileExistsError:
        raise AlreadyExistsError(f"{path} exists; tokens are written once: choose another --out.") from None
    except OSError as exc:
        raise JitrError(f"Cannot write the tokens to {path}: {exc.strerror or exc}.") from exc


def admit(
    table: FleetTable,
    stack: str,
    serials: list[str],
    out: Path,
    *,
    rotate: bool,
    now: int,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Callable[[int], None] = lambda _n: None,
) -> list[Admitted]:
    """Admit ``serials`` (rotating the tokens of those admitted already, if ``rotate``), ``concurrency`` rows
    written at a time; the tokens go to ``out``."""
    existing = table.existing(check_serials(serials))
    if existing and not rotate:
        listed = ", ".join(sorted(existing)[:5]) + (" ..." if len(existing) > 5 else "")
        raise AlreadyExistsError(
            f"{len(existing)} of the serials are admitted already ({listed}); nothing was changed. "
            "Give them new tokens with --rotate-token."
        )
    planned = [
        Admitted(serial, new_token(), serial in existing, None if serial in existing else new_binding_code())
        for serial in serials
    ]
    _write_tokens(out, stack, planned)
    done: list[Admitted] = []
    lock = threading.Lock()
    failed = threading.Event()

    def write(item: Admitted) -> None:
        if failed.is_set():
            return  # a row failed: write no more
        hashed = token_hash(item.token)
        if item.rotated or item.binding_code is None:
            applied = table.rotate(item.serial, hashed)
        else:
            applied = table.admit(item.serial, hashed, now, binding_code_hash(item.binding_code))
        if not applied:
            raise NotFoundError(
                f"Serial {item.serial} was {'removed' if item.rotated else 'admitted'} by someone else meanwhile."
            )
        with lock:
            done.append(item)
        progress(1)

    try:
        with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="jitr-admit") as pool:
            futures = [pool.submit(write, item) for item in planned]
            for future in futures:
                try:
                    future.result()
                except BaseException:
                    failed.set()
                    raise
    except BaseException:
        for item in done:
            if not item.rotated:
                table.remove(item.serial)
        rotated = [item for item in done if item.rotated]
        out.unlink(missing_ok=True)
        if rotated:
            _write_tokens(out, stack, rotated)
        raise
    return planned


def check_prefix(prefix: str) -> str:
    if not re.fullmatch(r"[a-zA-Z0-9:_-]{0,100}", prefix):
        raise InvalidInputError(f"--prefix {prefix!r} may hold letters, digits, ':', '_' and '-' only.")
    return prefix
