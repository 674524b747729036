"""The emulator's state on disk: every moto backend in use and the emulator's own state, in one file.

moto keeps each service's state in plain Python objects (``BackendDict`` → account → region →
backend); a snapshot pickles all of them in one graph, so what one service refers to in another
stays one object. A few things in those objects do not pickle as they are (locks, a
``WeakValueDictionary``, ``defaultdict`` factories that are lambdas, cryptography's keys); the
pickler's dispatch table writes them as what rebuilds them. This module is the one place that knows
how moto's backends are held; :mod:`emulator.store.backends` reads single backends.

The file is a header line, then the pickle::

    jitr-kit emulator snapshot 1 moto=5.2.5 sha256=<hex of the pickle>\\n<pickle>

A snapshot is refused, with one sentence and left where it is, when the header or checksum is
wrong, when another moto wrote it, or when a user other than the one running the emulator could
have written it (unpickling runs code, so only the owner's own file is read).
"""

from __future__ import annotations

import collections
import copy
import copyreg
import hashlib
import io
import os
import pickle
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.bindings._rust import x509 as rust_x509
from cryptography.hazmat.primitives import serialization

from base.errors import JitrError

MAGIC = b"jitr-kit emulator snapshot"
FORMAT = 1
PICKLE_PROTOCOL = 5
ATTEMPTS = 5  # a request changing a dict while it is pickled: try again


class SnapshotError(JitrError):
    """The emulator's snapshot cannot be read (damaged, foreign, or from another moto) or written."""


@dataclass(frozen=True)
class Contents:
    """What a snapshot holds: moto's backends by (service, account, region), what a service keeps beside
    them (S3's bucket-name-to-account map), and the emulator's own ``extra``."""

    backends: dict[tuple[str, str, str], Any]
    services: dict[str, dict[str, Any]]
    extra: dict[str, Any]


# -- what does not pickle as it is --------------------------------------------------------------------


def _lock() -> Any:
    return threading.Lock()


def _rlock() -> Any:
    return threading.RLock()


def _weak_values(items: dict) -> weakref.WeakValueDictionary:
    return weakref.WeakValueDictionary(items)


def _weak_keys(items: dict) -> weakref.WeakKeyDictionary:
    return weakref.WeakKeyDictionary(items)


def _new_defaultdict(kind: type, factory: Any, empty: Any) -> collections.defaultdict:
    """A defaultdict (or a subclass, whose ``__init__`` is not called) with ``factory``, or, where the
    original factory was a lambda that pickle cannot name, one that makes copies of what it made (``empty``)."""
    value: collections.defaultdict[Any, Any] = collections.defaultdict.__new__(kind)
    value.default_factory = factory if factory is not None or empty is None else (lambda: copy.deepcopy(empty))
    return value


def _reduce_defaultdict(value: collections.defaultdict) -> Any:
    factory = value.default_factory
    qualname = getattr(factory, "__qualname__", "")
    empty = None
    if factory is not None and ("<lambda>" in qualname or "<locals>" in qualname):
        empty = factory()
        factory = None
    return (
        _new_defaultdict,
        (type(value), factory, empty),
        getattr(value, "__dict__", None) or None,
        None,
        iter(value.items()),
    )


def _subclasses(kind: type) -> list[type]:
    found = [kind]
    for sub in kind.__subclasses__():
        found.extend(_subclasses(sub))
    return found


def _private_key(pem: bytes) -> Any:
    return serialization.load_pem_private_key(pem, password=None)


def _public_key(pem: bytes) -> Any:
    return serialization.load_pem_public_key(pem)


def _reduce_private_key(key: Any) -> Any:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return _private_key, (pem,)


def _reduce_public_key(key: Any) -> Any:
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _public_key, (pem,)


def _certificate(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def _reduce_certificate(certificate: x509.Certificate) -> Any:
    return _certificate, (certificate.public_bytes(serialization.Encoding.DER),)


def _dispatch_table() -> dict[type, Any]:
    table: dict[type, Any] = dict(copyreg.dispatch_table)
    table[type(threading.Lock())] = lambda _lock_: (_lock, ())
    table[type(threading.RLock())] = lambda _lock_: (_rlock, ())
    table[weakref.WeakValueDictionary] = lambda value: (_weak_values, (dict(value.items()),))
    table[weakref.WeakKeyDictionary] = lambda value: (_weak_keys, (dict(value.items()),))
    table[rust_x509.Certificate] = _reduce_certificate
    for family in (rust_openssl.rsa, rust_openssl.ec, rust_openssl.ed25519, rust_openssl.ed448):
        table[family.__dict__[_name(family, "PrivateKey")]] = _reduce_private_key
        table[family.__dict__[_name(family, "PublicKey")]] = _reduce_public_key
    return table


def _name(family: Any, kind: str) -> str:
    """cryptography's Rust key class names: RSAPrivateKey, ECPublicKey, Ed25519PrivateKey, ..."""
    prefix = {"rsa": "RSA", "ec": "EC", "ed25519": "Ed25519", "ed448": "Ed448"}[family.__name__.rsplit(".", 1)[-1]]
    return prefix + kind


_DISPATCH = _dispatch_table()


def _dumps(value: Any) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=PICKLE_PROTOCOL)
    pickler.dispatch_table = _DISPATCH | dict.fromkeys(_subclasses(collections.defaultdict), _reduce_defaultdict)
    pickler.dump(value)
    return buffer.getvalue()


# -- moto's backends ----------------------------------------------------------------------------------


def _moto_version() -> str:
    import moto

    return str(moto.__version__)


_BACKEND_DICT_FIELDS = frozenset({"backend", "service_name", "_use_boto3_regions", "_additional_regions", "_id"})


def _backend_dicts() -> list[Any]:
    from moto.core.base_backend import BackendDict

    return list(BackendDict._instances)  # type: ignore[misc]  # the services something has used


def backends_in_use() -> dict[tuple[str, str, str], Any]:
    """Every moto backend something has created so far, by (service, account, region)."""
    found = {}
    for backend_dict in _backend_dicts():
        for account, regions in list(dict.items(backend_dict)):
            for region, backend in list(dict.items(regions)):
                found[(backend_dict.service_name, account, region)] = backend
    return found


def _service_fields() -> dict[str, dict[str, Any]]:
    """What a service's BackendDict holds beside its backends (S3's ``bucket_accounts``)."""
    return {
        backend_dict.service_name: {k: v for k, v in vars(backend_dict).items() if k not in _BACKEND_DICT_FIELDS}
        for backend_dict in _backend_dicts()
    }


def install(contents: Contents) -> None:
    """Replace moto's backends with the snapshot's; every service the snapshot lacks starts empty.

    The backends it replaces are dropped, not reset: moto's reset also closes the files of every S3
    object it still tracks, the loaded ones among them.
    """
    from moto.backends import get_backend
    from moto.core.base_backend import BackendDict

    for backend_dict in _backend_dicts():
        dict.clear(backend_dict)
        for name in _service_fields().get(backend_dict.service_name, {}):
            value = getattr(backend_dict, name)
            if hasattr(value, "clear"):
                value.clear()
    BackendDict._instances.clear()  # type: ignore[misc]
    for (service, account, region), backend in contents.backends.items():
        regions = get_backend(cast(Any, service))[account]  # creates the account's entry
        dict.__setitem__(regions, region, backend)
    for service, fields in contents.services.items():
        backend_dict = get_backend(cast(Any, service))
        for name, value in fields.items():
            setattr(backend_dict, name, value)


def capture(extra: dict[str, Any]) -> bytes:
    """The snapshot file's bytes for what moto and ``extra`` hold now."""
    error: Exception | None = None
    for _ in range(ATTEMPTS):
        try:
            payload = _dumps(Contents(backends_in_use(), _service_fields(), extra))
            break
        except RuntimeError as exc:  # "dictionary changed size during iteration": a request ran meanwhile
            error = exc
        except (TypeError, AttributeError, pickle.PicklingError) as exc:
            raise SnapshotError(f"Cannot save {_culprit(extra)}: {exc}.") from exc
    else:
        raise SnapshotError(f"Cannot take a snapshot while the emulator is this busy: {error}.")
    return _header(payload) + payload


def _culprit(extra: dict[str, Any]) -> str:
    """Which service's state (or the emulator's own) does not pickle."""
    parts: dict[str, Any] = {
        f"the {service} state of {account} in {region}": backend
        for (service, account, region), backend in backends_in_use().items()
    }
    parts |= {f"the emulator's own {name} state": value for name, value in extra.items()}
    for name, value in parts.items():
        try:
            _dumps(value)
        except Exception:
            return name
    return "the emulator's state"


def _header(payload: bytes) -> bytes:
    digest = hashlib.sha256(payload).hexdigest()
    return b"%s %d moto=%s sha256=%s\n" % (MAGIC, FORMAT, _moto_version().encode(), digest.encode())


# -- the file -----------------------------------------------------------------------------------------


def write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (a crash leaves the old file or the new one), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise SnapshotError(f"Cannot write the emulator's snapshot {path}: {exc.strerror or exc}.") from exc
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read(path: Path) -> Contents:
    """The snapshot at ``path``, checked; :class:`SnapshotError` says in one sentence why it is refused."""
    keep = "it is left as it is; move it away, or start with --fresh"
    status = path.stat()
    if status.st_uid != os.getuid() or status.st_mode & 0o022:
        raise SnapshotError(
            f"The emulator's snapshot {path} is writable by, or belongs to, another user; it is not loaded, since "
            f"loading runs what is in it ({keep})."
        )
    data = path.read_bytes()
    header, newline, payload = data.partition(b"\n")
    fields = header.split(b" ")
    if not newline or not header.startswith(MAGIC + b" ") or len(fields) != 6:
        raise SnapshotError(f"{path} is not an emulator snapshot, or its first line is damaged ({keep}).")
    version, moto_field, digest_field = fields[3], fields[4].decode(errors="replace"), fields[5]
    if version != str(FORMAT).encode():
        raise SnapshotError(
            f"{path} is a snapshot of format {version.decode(errors='replace')}, not {FORMAT} ({keep})."
        )
    if digest_field != b"sha256=" + hashlib.sha256(payload).hexdigest().encode():
        raise SnapshotError(f"The emulator's snapshot {path} is damaged: its checksum does not match ({keep}).")
    if moto_field != f"moto={_moto_version()}":
        raise SnapshotError(
            f"The emulator's snapshot {path} was written with {moto_field.replace('=', ' ')}, and this is moto "
            f"{_moto_version()}; its objects may not load ({keep})."
        )
    try:
        contents = pickle.loads(payload)  # noqa: S301  # our own file, checked above
    except Exception as exc:
        raise SnapshotError(f"The emulator's snapshot {path} does not load: {exc} ({keep}).") from exc
    if not isinstance(contents, Contents):
        raise SnapshotError(f"The emulator's snapshot {path} holds no emulator state ({keep}).")
    return contents
