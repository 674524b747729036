"""A whole admitted batch enrolling at once (``jitr device simulate --enroll``): every serial of a tokens
file from ``jitr fleet admit`` makes its key, enrolls through the provisioning API, and the identities are
listed in a manifest that ``simulate`` then connects, as it does a minted batch.

Devices enroll on ``concurrency`` threads; each retries 429, 5xx and silence as ``jitr device enroll``
does. A device the API refuses is reported with the API's sentence and left out of the manifest.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from base.errors import JitrError, MalformedError
from base.files import create_file, read_bytes
from base.http import Requests
from base.manifest import MANIFEST
from device.enroll import enroll
from device.errors import DeviceError


@dataclass
class EnrollSummary:
    devices: int = 0
    enrolled: int = 0
    failures: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    manifest: Path | None = None


def read_tokens(path: Path) -> list[tuple[str, str]]:
    """The (serial, token) pairs of a tokens file written by ``jitr fleet admit``."""
    try:
        devices = json.loads(read_bytes(path, "tokens file"))["devices"]
        return [(str(d["serial"]), str(d["token"])) for d in devices]
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedError(f"{path} is not a tokens file of 'jitr fleet admit' ({exc}).") from None


def enroll_batch(
    requests: Requests,
    api: str,
    pairs: list[tuple[str, str]],
    out: Path,
    *,
    concurrency: int = 16,
    progress: Callable[[bool], None] = lambda _ok: None,
) -> EnrollSummary:
    """Enroll every (serial, token) of ``pairs`` (:func:`read_tokens`); write OUT/manifest.jsonl listing those
    that got a certificate."""
    summary = EnrollSummary(devices=len(pairs))

    def one(pair: tuple[str, str]) -> dict | str:
        serial, token = pair
        try:
            enrolled = enroll(requests, api, serial, token, out)
        except DeviceError as exc:
            return f"{exc.reason}: {serial}: {exc}"
        except JitrError as exc:
            return f"refused: {serial}: {exc}"
        relative = str(enrolled.certificate.relative_to(out))
        return {
            "thingName": enrolled.thing_name,
            "certificateId": enrolled.certificate_id,
            "certificate": relative,
            "chain": relative,  # AWS IoT issued it: the certificate alone is what the device presents
            "privateKey": str(enrolled.key.relative_to(out)),
        }

    lines: list[str] = []
    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="jitr-enroll") as pool:
        for outcome in pool.map(one, pairs):
            if isinstance(outcome, dict):
                summary.enrolled += 1
                lines.append(json.dumps(outcome))
            else:
                summary.failures[outcome.split(":", 1)[0]] += 1
                if len(summary.examples) < 20:
                    summary.examples.append(outcome)
            progress(isinstance(outcome, dict))
    if lines:
        out.mkdir(parents=True, exist_ok=True)
        summary.manifest = out / MANIFEST
        create_file(summary.manifest, ("\n".join(lines) + "\n").encode(), exclusive=False)
    return summary
