"""Endpoint strings: HOST[:PORT], 8883 by default, ALPN on 443."""

from __future__ import annotations

import pytest

from base.errors import InvalidInputError
from device.endpoint import ALPN_MQTT, Endpoint, parse_endpoint


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("localhost", "localhost", 8883),  # the default MQTT/TLS port
        ("localhost:18883", "localhost", 18883),
        ("abc-ats.iot.eu-west-1.amazonaws.com:443", "abc-ats.iot.eu-west-1.amazonaws.com", 443),
        ("mqtts://broker.example:8883/", "broker.example", 8883),  # a URL, as copied from a console
        ("[::1]:9999", "::1", 9999),
        ("[::1]", "::1", 8883),
        ("::1", "::1", 8883),  # an IPv6 address without brackets has no port
    ],
)
def test_endpoints_parse_to_host_and_port(text, host, port):
    assert parse_endpoint(text) == Endpoint(host, port)


@pytest.mark.parametrize("text", ["", ":8883", "host:port", "host:0", "host:70000", "[::1"])
def test_malformed_endpoints_are_refused(text):
    with pytest.raises(InvalidInputError):
        parse_endpoint(text)


def test_port_443_offers_the_aws_iot_alpn_protocol_and_8883_none():
    assert Endpoint("x", 443).alpn == (ALPN_MQTT,) == ("x-amzn-mqtt-ca",)
    assert Endpoint("x", 8883).alpn == ()


def test_an_endpoint_prints_as_host_colon_port():
    assert str(Endpoint("localhost", 8883)) == "localhost:8883"
    assert str(Endpoint("::1", 8883)) == "[::1]:8883"
