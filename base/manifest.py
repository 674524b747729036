"""Where device identities are written, and the manifest that lists a minted batch.

A device directory (``--out``) looks like::

    OUT/ca.pem                     the certificate of the CA that signed the devices
    OUT/certs/<thing>.pem          the device certificate
    OUT/certs/<thing>.chain.pem    device certificate + signing CA: what the device presents
    OUT/private/<thing>.key        the device key, mode 0600
    OUT/manifest.jsonl             one JSON object a device (batches only)

With ``--format jsonl`` a batch writes only ``ca.pem`` and the manifest, each line carrying the
PEMs inline (the manifest is then mode 0600, since it holds private keys).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from base.errors import MalformedError, NotFoundError
from base.files import read_bytes

MANIFEST = "manifest.jsonl"
CA_FILE = "ca.pem"
CERTS = "certs"
PRIVATE = "private"


def cert_path(thing: str) -> str:
    return f"{CERTS}/{thing}.pem"


def chain_path(thing: str) -> str:
    return f"{CERTS}/{thing}.chain.pem"


def key_path(thing: str) -> str:
    return f"{PRIVATE}/{thing}.key"


_LINES = [slice(i, i + 64) for i in range(0, 1 << 16, 64)]


def der_to_pem(der: bytes, label: str = "CERTIFICATE", newline: bytes = b"\n") -> bytes:
    """PEM with 64-character lines (RFC 7468); ``newline=b"\\n"`` gives it escaped for a JSON string."""
    encoded = base64.b64encode(der)
    body = newline.join([encoded[s] for s in _LINES[: (len(encoded) + 63) // 64]])
    return b"-----BEGIN %s-----%s%s%s-----END %s-----%s" % (
        label.encode(),
        newline,
        body,
        newline,
        label.encode(),
        newline,
    )


@dataclass(frozen=True)
class ManifestEntry:
    """One device of a manifest; file paths in it are relative to the manifest's folder."""

    base: Path
    record: dict

    @property
    def thing_name(self) -> str:
        return self.record["thingName"]

    @property
    def certificate_id(self) -> str:
        return self.record["certificateId"]

    def _file(self, field: str, what: str) -> bytes:
        return read_bytes(self.base / self.record[field], what)

    def certificate_pem(self) -> bytes:
        if "certificatePem" in self.record:
            return self.record["certificatePem"].encode()
        return self._file("certificate", "device certificate")

    def private_key_pem(self) -> bytes:
        if "privateKeyPem" in self.record:
            return self.record["privateKeyPem"].encode()
        return self._file("privateKey", "device key")

    def ca_certificate_pem(self) -> bytes:
        return self._file("caCertificate", "CA certificate")

    def chain_pem(self) -> bytes:
        """What the device presents on connect: its certificate, then its CA's."""
        if "chain" in self.record:
            return self._file("chain", "device chain")
        return self.certificate_pem() + self.ca_certificate_pem()


def read_manifest(path: Path) -> Iterator[ManifestEntry]:
    """The entries of a manifest, one at a time (a million devices fit in little memory)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"The manifest {path} does not exist.")
    base = path.parent
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                record["thingName"]
            except (ValueError, KeyError, TypeError) as exc:
                raise MalformedError(f"Line {number} of {path} is not a device record.") from exc
            yield ManifestEntry(base, record)
