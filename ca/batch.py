"""Minting a batch of devices, from a handful to a million, in parallel and in bounded memory.

The batch is written into a staging folder inside ``--out`` and moved into place only when
every device is minted, so a failure, Ctrl-C, SIGTERM or SIGHUP leaves nothing half-created: the
worker processes are terminated and joined before the staging folder is removed, and they die with the
coordinator if it is killed outright (Linux's parent-death signal). A staging folder that a killed run left
(``.mint-<pid>`` whose process is gone) is removed by the next run into the same folder. Worker processes
each load the signing key once, mint chunks of devices from a :class:`DevicePrototype`, write
their files (``files`` format) and return the manifest lines; at most a few chunks per worker
are in flight, so memory does not grow with the batch size. The folder checks and the final move are
in :mod:`ca.batch_stage`.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import hashlib
import multiprocessing
import os
import shutil
import signal
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from base import manifest
from base.certificates import load_certificate, to_pem
from base.errors import InvalidInputError, InvalidThingNameError, OutputError
from base.files import create_file, ensure_dir, read_bytes
from base.keys import KeyType, PrivateKey, load_private_key
from base.names import check_thing_name
from ca.batch_stage import check_out, check_size, publish, remove_stale_stages
from ca.issue import Issuer
from ca.profiles import check_days
from ca.prototype import P256_SPKI_PREFIX, DevicePrototype

FORMATS = ("files", "jsonl")
CHUNK = 250  # devices a task: large enough to amortise inter-process traffic
PR_SET_PDEATHSIG = 1


def numbered_names(prefix: str, count: int) -> Collection[str]:
    """Names ``prefix`` + a zero-padded number, 1..count; checked by their first and last."""
    if count < 1:
        raise InvalidInputError("--count must be at least 1.")
    width = len(str(count))
    check_thing_name(f"{prefix}{1:0{width}d}")
    check_thing_name(f"{prefix}{count:0{width}d}")
    return _NumberedNames(prefix, width, count)


class _NumberedNames:
    """A lazy sequence of numbered names (a million of them cost no memory)."""

    def __init__(self, prefix: str, width: int, count: int) -> None:
        self.prefix, self.width, self.count = prefix, width, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[str]:
        return (f"{self.prefix}{i:0{self.width}d}" for i in range(1, self.count + 1))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not name.startswith(self.prefix):
            return False
        number = name[len(self.prefix) :]
        return len(number) == self.width and number.isdigit() and 1 <= int(number) <= self.count


def names_from_file(path: Path) -> list[str]:
    """Thing names, one a line (blank lines and ``#`` comments skipped), all valid and distinct."""
    seen: dict[str, int] = {}
    for number, raw in enumerate(read_bytes(path, "names file").decode(errors="replace").splitlines(), start=1):
        name = raw.strip()
        if not name or name.startswith("#"):
            continue
        try:
            check_thing_name(name)
        except InvalidThingNameError as exc:
            raise InvalidThingNameError(f"Line {number} of {path}: {exc}") from exc
        if name in seen:
            raise InvalidInputError(f"Duplicate thing name {name!r} in {path} (lines {seen[name]} and {number}).")
        seen[name] = number
    if not seen:
        raise InvalidInputError(f"{path} holds no thing names.")
    return list(seen)


@dataclass(frozen=True)
class BatchRequest:
    """What to mint and where; checked at the top of :func:`mint_batch`."""

    out: Path
    fmt: str = "files"
    country: str | None = None
    days: int = 3650
    key_type: str = KeyType.EC_P256
    workers: int = 1
    chunk: int = CHUNK
    crl_url: str | None = None  # a CRL distribution point in every certificate


@dataclass(frozen=True)
class BatchResult:
    count: int
    manifest: Path
    seconds: float


# -- worker side ---------------------------------------------------------------------------------

_worker: _ChunkMinter | None = None


class _ChunkMinter:
    """Mints chunks of devices; one per process."""

    def __init__(
        self,
        cert_pem: bytes,
        key_pem: bytes,
        passphrase: bytes | None,
        request: BatchRequest,
        stage: Path,
        now: dt.datetime,
    ) -> None:
        issuer = Issuer(load_certificate(cert_pem), load_private_key(key_pem, passphrase, "The CA key"))
        self.prototype = DevicePrototype(
            issuer,
            key_type=request.key_type,
            country=request.country,
            now=now,
            days=request.days,
            crl_url=request.crl_url,
        )
        self.not_after = self.prototype.not_after.isoformat()
        self.ca_pem = to_pem(issuer.certificate)
        self.fmt = request.fmt
        self.stage = stage
        self.new_key = _key_generator(request.key_type)
        self.spki_of = _p256_spki_from_pkcs8 if KeyType(request.key_type) is KeyType.EC_P256 else _spki_from_pkcs8

    def mint(self, names: list[str]) -> bytes:
        """Mint ``names`` and return their manifest lines.

        The lines are formatted directly rather than through ``json.dumps``: every value is
        JSON-safe by construction (validated thing names, hex, ISO dates, PEM whose only
        character needing an escape is the newline), and this loop runs a million times.
        """
        lines = []
        jsonl = self.fmt == "jsonl"
        nl = b"\\n" if jsonl else b"\n"  # PEM newlines, already escaped for JSON in jsonl lines
        new_key, spki_of, issue, to_pem_ = self.new_key, self.spki_of, self.prototype.issue_spki, manifest.der_to_pem
        tail = b'","notAfter":"%s","caCertificate":"%s",' % (self.not_after.encode(), manifest.CA_FILE.encode())
        for thing in names:
            serial = x509.random_serial_number()
            key_der = new_key().private_bytes(_DER, _PKCS8, _NO_ENCRYPTION)
            cert_der = issue(spki_of(key_der), thing, serial)
            cert_pem = to_pem_(cert_der, newline=nl)
            key_pem = to_pem_(key_der, "PRIVATE KEY", newline=nl)
            head = b'{"thingName":"%s","certificateId":"%s","serial":"%x%s' % (
                thing.encode(),
                hashlib.sha256(cert_der).hexdigest().encode(),
                serial,
                tail,
            )
            if jsonl:
                lines.append(b'%s"certificatePem":"%s","privateKeyPem":"%s"}' % (head, cert_pem, key_pem))
            else:
                cert_rel, chain_rel, key_rel = (
                    manifest.cert_path(thing),
                    manifest.chain_path(thing),
                    manifest.key_path(thing),
                )
                create_file(self.stage / cert_rel, cert_pem)
                create_file(self.stage / chain_rel, cert_pem + self.ca_pem)
                create_file(self.stage / key_rel, key_pem, private=True)
                paths = (cert_rel.encode(), chain_rel.encode(), key_rel.encode())
                lines.append(b'%s"certificate":"%s","chain":"%s","privateKey":"%s"}' % (head, *paths))
        lines.append(b"")
        return b"\n".join(lines)


_DER, _PKCS8, _NO_ENCRYPTION = (
    serialization.Encoding.DER,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)


def _spki_from_pkcs8(key_der: bytes) -> bytes:
    """The public key of a PKCS#8 private key, as SubjectPublicKeyInfo DER."""
    return (
        serialization.load_der_private_key(key_der, None)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _p256_spki_from_pkcs8(key_der: bytes) -> bytes:
    """P-256 PKCS#8 ends with the public point (ECPrivateKey's [1] publicKey): no parsing needed."""
    if key_der[-67:-65] == b"\x42\x00":  # BIT STRING of 66 bytes, no unused bits, then the point
        return P256_SPKI_PREFIX + key_der[-65:]
    return _spki_from_pkcs8(key_der)


def _key_generator(key_type: str) -> Callable[[], PrivateKey]:
    key_type = KeyType(key_type)
    if key_type in (KeyType.EC_P256, KeyType.EC_P384):
        curve: ec.EllipticCurve = ec.SECP256R1() if key_type is KeyType.EC_P256 else ec.SECP384R1()
        return lambda: ec.generate_private_key(curve)
    bits = int(key_type.split("-")[1])
    return lambda: rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (elsewhere: the parent's terminate() only)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the coordinator's terminate() still ends the workers
        return


def _init_worker(*args) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the group: the coordinator handles it
    for number in (signal.SIGTERM, signal.SIGHUP):  # not the coordinator's handlers, inherited by fork
        signal.signal(number, signal.SIG_DFL)
    _die_with_parent()
    _worker = _ChunkMinter(*args)


def _mint_chunk(names: list[str]) -> bytes:
    assert _worker is not None, "the worker initializer did not run"
    return _worker.mint(names)


# -- coordinator side ----------------------------------------------------------------------------


def _chunks(names: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(names)
    while chunk := list(islice(iterator, size)):
        yield chunk


def mint_batch(
    names: Iterable[str],
    *,
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    passphrase: bytes | None,
    request: BatchRequest,
    now: dt.datetime,
    progress: Callable[[int], None] = lambda n: None,
) -> BatchResult:
    """Mint a device for each name into ``request.out``; all of them, or nothing."""
    if request.fmt not in FORMATS:
        raise InvalidInputError(f"Unknown format {request.fmt!r}; use one of {', '.join(FORMATS)}.")
    if request.workers < 1:
        raise InvalidInputError("--workers must be at least 1.")
    check_days(request.days, now)  # here, not as a failure in every worker process
    out = Path(request.out)
    check_out(out)
    if hasattr(names, "__len__"):
        check_size(len(names), request.fmt, out)  # type: ignore[arg-type]
    remove_stale_stages(out)
    # Load the key once here, so a wrong passphrase fails before any process starts.
    Issuer(load_certificate(ca_cert_pem), load_private_key(ca_key_pem, passphrase, "The CA key"))
    out_existed = out.exists()
    ensure_dir(out)
    stage = out / f".mint-{os.getpid()}"
    started = dt.datetime.now(dt.UTC)
    try:
        ensure_dir(stage / manifest.CERTS)
        ensure_dir(stage / manifest.PRIVATE, private=True)
        create_file(stage / manifest.CA_FILE, ca_cert_pem)
        manifest_mode_private = request.fmt == "jsonl"
        fd = os.open(
            stage / manifest.MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if manifest_mode_private else 0o644
        )
        with os.fdopen(fd, "wb") as sink:
            count = _run(names, sink, (ca_cert_pem, ca_key_pem, passphrase, request, stage, now), request, progress)
        publish(stage, out, request.fmt)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if not out_existed:
            shutil.rmtree(out, ignore_errors=True)
        if isinstance(exc, OSError):
            raise OutputError(f"Cannot write the batch to {out}: {exc.strerror or exc}.") from exc
        raise
    seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    return BatchResult(count, out / manifest.MANIFEST, seconds)


def _run(names, sink, init_args, request: BatchRequest, progress) -> int:
    count = 0
    chunks = _chunks(names, request.chunk)
    if request.workers == 1:
        minter = _ChunkMinter(*init_args)
        for chunk in chunks:
            sink.write(minter.mint(chunk))
            count += len(chunk)
            progress(len(chunk))
        return count
    window = request.workers * 3
    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    others = set(multiprocessing.active_children())  # children that are not this pool's: left alone
    pool = ProcessPoolExecutor(request.workers, mp_context=context, initializer=_init_worker, initargs=init_args)
    try:
        pending: dict[Future, int] = {}
        order: list[Future] = []
        for chunk in chunks:
            future = pool.submit(_mint_chunk, chunk)
            pending[future] = len(chunk)
            order.append(future)
            while len(pending) >= window:
                count += _drain(order, pending, sink, progress)
        while order:
            count += _drain(order, pending, sink, progress)
    except BaseException:
        _stop_workers(pool, others)
        raise
    pool.shutdown()
    return count


def _stop_workers(pool: ProcessPoolExecutor, others: set) -> None:
    """SIGTERM every worker now, not after its queued chunks, and wait for each to exit: no worker writes
    into the staging folder once this returns. The workers are the children the pool added to ``others``."""
    pool.shutdown(wait=False, cancel_futures=True)
    workers = [child for child in multiprocessing.active_children() if child not in others]
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join(5)


def _drain(order: list[Future], pending: dict[Future, int], sink, progress) -> int:
    """Write finished chunks in submission order (the manifest keeps the names' order)."""
    wait([order[0]])
    written = 0
    while order and order[0].done():
        future = order.pop(0)
        sink.write(future.result())
        size = pending.pop(future)
        written += size
        progress(size)
    return written
