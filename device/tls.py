"""The device's TLS client context: its chain and key, the CAs it trusts, ALPN on port 443.

Trust: ``root_ca`` (the emulator's ``endpoint-ca.pem``, or Amazon Root CA 1 downloaded) when given,
else the system's public trust store, which holds Amazon Root CA 1 that signs AWS IoT's ATS
endpoints. The store is looked up lazily through its hashed directory, so a fleet of contexts does
not parse 150 CA certificates each. SNI is the endpoint host: paho passes it as ``server_hostname``.

Python's ``ssl`` loads a certificate and key only from a path: they are handed over through an
anonymous in-memory file (``memfd``), so keys from a JSON-lines manifest never touch the disk.
"""

from __future__ import annotations

import contextlib
import functools
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

from base.errors import MalformedError, NotFoundError
from device.endpoint import Endpoint
from device.identity import DeviceIdentity


def client_context(identity: DeviceIdentity, endpoint: Endpoint, root_ca: Path | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ client context that verifies the endpoint and presents the device's chain."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _trust(context, root_ca)
    if endpoint.alpn:
        context.set_alpn_protocols(list(endpoint.alpn))
    with _pem_path(identity.chain_pem + b"\n" + identity.key_pem) as path:
        try:
            context.load_cert_chain(path)
        except ssl.SSLError as exc:
            raise MalformedError(
                f"The certificate chain or key of {identity.thing_name} cannot be used: {exc}."
            ) from exc
    return context


def _trust(context: ssl.SSLContext, root_ca: Path | None) -> None:
    if root_ca is not None:
        try:
            context.load_verify_locations(cafile=str(root_ca))
        except FileNotFoundError as exc:
            raise NotFoundError(f"The root CA file {root_ca} does not exist.") from exc
        except ssl.SSLError as exc:
            raise MalformedError(f"The root CA file {root_ca} holds no PEM certificate.") from exc
        return
    kind, where = _public_store()
    if kind == "capath":
        context.load_verify_locations(capath=where)  # hashed links: each CA is read only when needed
    elif kind == "cafile":
        context.load_verify_locations(cafile=where)
    else:
        context.load_default_certs()


@functools.cache
def _public_store() -> tuple[str, str | None]:
    """Where the public CAs are: the system's hashed directory, else its bundle, else certifi's."""
    paths = ssl.get_default_verify_paths()
    if paths.capath and os.path.isdir(paths.capath) and any(Path(paths.capath).glob("*.0")):
        return "capath", paths.capath
    if paths.cafile and os.path.isfile(paths.cafile):
        return "cafile", paths.cafile
    try:
        import certifi  # comes with boto3's dependencies: a system without a CA bundle still verifies AWS
    except ImportError:
        return "default", None
    return "cafile", certifi.where()


@contextlib.contextmanager
def _pem_path(data: bytes) -> Iterator[str]:
    """A path to ``data`` that lives only while the context manager does: memory where the OS allows."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("device-identity", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="jitr-device-") as folder:  # mode 0700
        path = os.path.join(folder, "identity.pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            handle.write(data)
        yield path
