"""The endpoint asks for a client certificate as AWS IoT does: always, except from a client that offers ALPN
without AWS IoT's X.509 names (a browser opening wss://), which a certificate request would make cancel."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading

import pytest

from base.certificates import to_pem
from base.keys import generate_key, private_key_pem
from ca.issue import issue_root, make_name
from emulator.mqtt import tls


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    return tls.endpoint_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def client_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("client")
    key = generate_key("ec-p256")
    certificate = issue_root(key, make_name("a device"), now=dt.datetime.now(dt.UTC), days=1)
    (folder / "cert.pem").write_bytes(to_pem(certificate))
    (folder / "key.pem").write_bytes(private_key_pem(key))
    return folder / "cert.pem", folder / "key.pem"


def handshake(endpoint, client_files, alpn: list[str] | None) -> bytes | None:
    """One TLS handshake with the endpoint's server context by a client holding a certificate; what the
    server received as the client's certificate (None when it asked for none)."""
    server = tls.server_context(endpoint)
    client = ssl.create_default_context(cafile=str(endpoint.ca_file))
    client.load_cert_chain(*map(str, client_files))
    if alpn is not None:
        client.set_alpn_protocols(alpn)
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes | None] = []

    def serve() -> None:
        connection, _ = listener.accept()
        with server.wrap_socket(connection, server_side=True) as wrapped:
            received.append(wrapped.getpeercert(binary_form=True))
            wrapped.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with (
        socket.create_connection(listener.getsockname(), timeout=10) as raw,
        client.wrap_socket(raw, server_hostname="localhost") as wrapped,
    ):
        wrapped.sendall(b"x")
    thread.join(10)
    listener.close()
    return received[0]


@pytest.mark.parametrize("alpn", [None, ["x-amzn-mqtt-ca"], ["x-amzn-http-ca", "http/1.1"]])
def test_a_device_is_asked_for_its_certificate(endpoint, client_files, alpn):
    assert handshake(endpoint, client_files, alpn) is not None


def test_a_websocket_client_offering_http_1_1_is_not_asked_for_a_certificate(endpoint, client_files):
    assert handshake(endpoint, client_files, ["http/1.1"]) is None


def test_the_alpn_extension_is_read_as_rfc_7301_writes_it():
    extension = b"\x00\x0c\x02h2\x08http/1.1"
    assert tls.offered_alpn(extension) == [b"h2", b"http/1.1"]
    assert tls.offered_alpn(b"\x00\x05\x09abc") == [b"abc"]  # a name running past the list's end is cut, not read on
    assert tls.asks_for_client_certificate(None) and not tls.asks_for_client_certificate([b"http/1.1"])
