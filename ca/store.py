"""The PKI directory: where a CA's certificates, keys and metadata live.

::

    PKI/ca.json                    metadata (key type, subject defaults, which CA signs devices)
    PKI/certs/root-ca.pem
    PKI/certs/intermediate-ca.pem  only with --intermediate
    PKI/private/root-ca.key        mode 0600, optionally encrypted
    PKI/private/intermediate-ca.key
    PKI/registration.json          written by ``jitr ca register``
    PKI/revocations.json           written by ``jitr ca revoke`` and ``jitr ca crl``: the revoked serials and
                                   the last CRL number (no secret in it)
    PKI/devices/, PKI/batches/     device certificates minted here (``jitr device mint``'s default --out)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from base.certificates import load_certificate, to_pem
from base.errors import AlreadyExistsError, MalformedError, NotFoundError
from base.files import FileSpec, read_bytes, write_files
from base.keys import KeyType, PrivateKey, load_private_key, private_key_pem
from base.manifest import read_manifest
from ca.issue import Issuer
from ca.revocation import Revoked

METADATA = "ca.json"
SIGNERS = ("root", "intermediate")
REGISTRATION = "registration.json"
REVOCATIONS = "revocations.json"
ROOT_CERT = "certs/root-ca.pem"
ROOT_KEY = "private/root-ca.key"
INTERMEDIATE_CERT = "certs/intermediate-ca.pem"
INTERMEDIATE_KEY = "private/intermediate-ca.key"


@dataclass(frozen=True)
class CaMetadata:
    """What the CLI needs to know about a CA beyond its certificates."""

    key_type: str
    country: str | None
    org: str | None
    signer: str  # "root" or "intermediate": the CA that signs device certificates
    passphrase_env: str | None  # the variable that holds the key passphrase, never the passphrase
    device_days: int

    @classmethod
    def from_json(cls, data: object) -> CaMetadata:
        """The metadata in ``ca.json``; ValueError naming what is wrong (the store says which file)."""
        if not isinstance(data, dict):
            raise ValueError("it is not a JSON object")
        fields: dict[str, Any] = {name: data.get(name) for name in cls.__dataclass_fields__}
        if fields["key_type"] not in {k.value for k in KeyType}:
            raise ValueError(f"key_type {fields['key_type']!r} is not one of {', '.join(k.value for k in KeyType)}")
        if fields["signer"] not in SIGNERS:  # never guess: a wrong guess signs devices with the root
            raise ValueError(f"signer {fields['signer']!r} is not one of {', '.join(SIGNERS)}")
        days = fields["device_days"]
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            raise ValueError(f"device_days {days!r} is not a positive whole number of days")
        for name in ("country", "org", "passphrase_env"):
            if fields[name] is not None and not isinstance(fields[name], str):
                raise ValueError(f"{name} {fields[name]!r} is not a string")
        return cls(**fields)


@dataclass(frozen=True)
class CaMaterial:
    """A freshly created CA: what :meth:`PkiStore.create` writes."""

    root_cert: x509.Certificate
    root_key: PrivateKey
    intermediate_cert: x509.Certificate | None = None
    intermediate_key: PrivateKey | None = None


class PkiStore:
    """A CA directory on disk."""

    def __init__(self, root: Path, *, passphrase_var: str | None = None) -> None:
        self.root = Path(root)
        self.passphrase_var = passphrase_var  # named in 'key is encrypted' errors

    def path(self, rel: str) -> Path:
        return self.root / rel

    def exists(self) -> bool:
        return self.path(METADATA).exists() or self.path(ROOT_CERT).exists()

    # -- creation -------------------------------------------------------------------------------

    def create(self, material: CaMaterial, metadata: CaMetadata, passphrase: bytes | None) -> list[Path]:
        """Write a new CA in one step; refuse if a CA is already there."""
        if self.exists():
            raise AlreadyExistsError(f"A CA already exists in {self.root}; refusing to overwrite it.")
        files = {
            ROOT_CERT: FileSpec(to_pem(material.root_cert)),
            ROOT_KEY: FileSpec(private_key_pem(material.root_key, passphrase), private=True),
        }
        if material.intermediate_cert is not None and material.intermediate_key is not None:
            files[INTERMEDIATE_CERT] = FileSpec(to_pem(material.intermediate_cert))
            files[INTERMEDIATE_KEY] = FileSpec(private_key_pem(material.intermediate_key, passphrase), private=True)
        files[METADATA] = FileSpec(json.dumps(asdict(metadata), indent=2).encode() + b"\n")
        return write_files(self.root, files)

    # -- reading ----------------------------------------------------------------------------------

    def metadata(self) -> CaMetadata:
        if not self.exists():
            raise NotFoundError(f"No CA in {self.root}; create one with 'jitr ca init --dir {self.root}'.")
        raw = read_bytes(self.path(METADATA), "CA metadata file")
        try:
            return CaMetadata.from_json(json.loads(raw))
        except (ValueError, TypeError) as exc:
            reason = "it is not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise MalformedError(f"{self.path(METADATA)} is not valid CA metadata: {reason}.") from exc

    def _certificate(self, rel: str) -> x509.Certificate:
        path = self.path(rel)
        return load_certificate(read_bytes(path, "CA certificate"), str(path))

    def _key(self, rel: str, passphrase: bytes | None) -> PrivateKey:
        path = self.path(rel)
        return load_private_key(read_bytes(path, "CA key"), passphrase, f"The CA key {path}", self.passphrase_var)

    def has_intermediate(self) -> bool:
        return self.metadata().signer == "intermediate"

    def root_certificate(self) -> x509.Certificate:
        return self._certificate(ROOT_CERT)

    def intermediates(self) -> list[x509.Certificate]:
        return [self._certificate(INTERMEDIATE_CERT)] if self.has_intermediate() else []

    def signer_cert_path(self) -> Path:
        """The certificate of the CA that signs devices (and is registered with AWS IoT)."""
        return self.path(INTERMEDIATE_CERT if self.has_intermediate() else ROOT_CERT)

    def signer_certificate(self) -> x509.Certificate:
        return self._certificate(INTERMEDIATE_CERT if self.has_intermediate() else ROOT_CERT)

    def signer(self, passphrase: bytes | None) -> Issuer:
        """The issuer of device certificates, with its key decrypted."""
        if self.has_intermediate():
            return Issuer(self._certificate(INTERMEDIATE_CERT), self._key(INTERMEDIATE_KEY, passphrase))
        return Issuer(self._certificate(ROOT_CERT), self._key(ROOT_KEY, passphrase))

    def root_issuer(self, passphrase: bytes | None) -> Issuer:
        """The root CA with its key decrypted (it signs the intermediate, and the root's CRL)."""
        return Issuer(self._certificate(ROOT_CERT), self._key(ROOT_KEY, passphrase))

    def signer_key_pem(self) -> bytes:
        """The signer's key file as stored (possibly encrypted), for worker processes."""
        rel = INTERMEDIATE_KEY if self.has_intermediate() else ROOT_KEY
        return read_bytes(self.path(rel), "CA key")

    # -- registration ------------------------------------------------------------------------------

    def registration(self) -> dict | None:
        path = self.path(REGISTRATION)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_bytes())
        except ValueError as exc:
            raise MalformedError(f"{path} is not valid JSON.") from exc

    def save_registration(self, record: dict, extra: dict[str, FileSpec] | None = None) -> None:
        files = dict(extra or {})
        files[REGISTRATION] = FileSpec(json.dumps(record, indent=2).encode() + b"\n")
        write_files(self.root, files, overwrite=True)

    # -- revocation --------------------------------------------------------------------------------

    def revocations(self) -> tuple[int, list[Revoked]]:
        """The last CRL number issued and the revoked certificates (0 and none before the first)."""
        path = self.path(REVOCATIONS)
        if not path.exists():
            return 0, []
        try:
            data = json.loads(path.read_bytes())
            return int(data["crlNumber"]), [Revoked.from_json(item) for item in data["revoked"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedError(f"{path} is not a revocation list of 'jitr ca revoke' ({exc}).") from exc

    def save_revocations(self, crl_number: int, revoked: list[Revoked]) -> None:
        """Replace the revocation record in one step (written whole or not at all)."""
        document = {"crlNumber": crl_number, "revoked": [item.as_json() for item in revoked]}
        write_files(self.root, {REVOCATIONS: FileSpec(json.dumps(document, indent=1).encode() + b"\n")}, overwrite=True)

    def minted_with_serial(self, serial: int) -> x509.Certificate:
        """The certificate minted into this folder with ``serial``, or :class:`NotFoundError`."""
        for cert in self.minted():
            if cert.serial_number == serial:
                return cert
        raise NotFoundError(
            f"No certificate minted in {self.root} has serial {serial:x}; revoke it by its certificate file instead."
        )

    def minted(self) -> Iterator[x509.Certificate]:
        """The device certificates minted into this folder: ``devices/certs/*.pem`` and every batch manifest."""
        for path in sorted(self.path("devices/certs").glob("*.pem")):
            if not path.name.endswith(".chain.pem"):
                yield load_certificate(read_bytes(path, "device certificate"), str(path))
        for manifest in sorted(self.path("batches").glob("*/manifest.jsonl")):
            for entry in read_manifest(manifest):
                yield load_certificate(entry.certificate_pem(), f"{manifest}: {entry.thing_name}")
