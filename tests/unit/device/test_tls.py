"""The device's TLS context, handshaking in memory with a server: SNI, ALPN on 443, trust."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest

from base.certificates import to_pem
from base.keys import generate_key, private_key_pem
from ca.issue import Issuer, issue_root, make_name
from device.endpoint import Endpoint
from device.identity import chain_warning, load_identity
from device.tls import client_context
from emulator.mqtt.tls import endpoint_pki

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def device():
    ca_key, key = generate_key("ec-p256"), generate_key("ec-p256")
    issuer = Issuer(issue_root(ca_key, make_name("TLS Test CA"), now=NOW, days=2), ca_key)
    cert = issuer.issue_device(key.public_key(), "tls-1", country="DE", now=NOW, days=1)
    return load_identity(to_pem(cert) + to_pem(issuer.certificate), private_key_pem(key)), issuer


@pytest.fixture(scope="module")
def server(tmp_path_factory, device):
    """A server context like AWS IoT's: the endpoint certificate, client certificates required, ALPN."""
    pki = endpoint_pki(tmp_path_factory.mktemp("endpoint"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=to_pem(device[1].certificate).decode())
    context.set_alpn_protocols(["x-amzn-mqtt-ca", "http/1.1"])
    return context, pki.ca_file


def handshake(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, host: str):
    """Run a TLS handshake through memory buffers; return both ends and the SNI the server saw."""
    seen: dict = {}

    def record_sni(_sslobj, name, _ctx) -> None:
        seen["sni"] = name

    server_ctx.sni_callback = record_sni
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=host)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, end, source, sink in (("client", client, s_out, c_in), ("server", server, c_out, s_in)):
            sink.write(source.read())
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        if all(done.values()):
            break
    client.write(b"x")  # TLS 1.3: the server checks the client certificate after the client is done
    s_in.write(c_out.read())
    assert server.read(1) == b"x"
    return client, server, seen.get("sni")


def test_the_device_sends_sni_and_its_certificate_and_offers_alpn_on_443(device, server):
    identity, _ = device
    server_ctx, ca_file = server
    client, srv, sni = handshake(client_context(identity, Endpoint("localhost", 443), ca_file), server_ctx, "localhost")
    assert sni == "localhost"
    assert client.selected_alpn_protocol() == "x-amzn-mqtt-ca"
    assert srv.getpeercert()["subject"][-1] == (("commonName", "tls-1"),)


def test_no_alpn_is_offered_on_8883(device, server):
    identity, _ = device
    server_ctx, ca_file = server
    client, _, _ = handshake(client_context(identity, Endpoint("localhost", 8883), ca_file), server_ctx, "localhost")
    assert client.selected_alpn_protocol() is None


def test_without_a_root_ca_the_public_store_does_not_trust_a_private_endpoint(device, server):
    identity, _ = device
    server_ctx, _ = server
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
        handshake(client_context(identity, Endpoint("localhost")), server_ctx, "localhost")


def test_a_host_name_the_server_certificate_does_not_name_is_not_trusted(device, server):
    identity, _ = device
    server_ctx, ca_file = server
    with pytest.raises(ssl.SSLCertVerificationError, match="[Hh]ostname mismatch"):
        handshake(client_context(identity, Endpoint("example.com"), ca_file), server_ctx, "example.com")


def test_a_chain_without_the_ca_certificate_gets_a_note(device):
    identity, _ = device
    assert chain_warning(identity) is None
    leaf_only = load_identity(
        identity.chain_pem.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n", identity.key_pem
    )
    assert "holds only its certificate" in chain_warning(leaf_only)
