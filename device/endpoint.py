"""Where a device connects: ``HOST[:PORT]``, 8883 unless told, 443 with ALPN as AWS IoT offers."""

from __future__ import annotations

from dataclasses import dataclass

from base.errors import InvalidInputError

MQTT_TLS_PORT = 8883
HTTPS_PORT = 443
ALPN_MQTT = "x-amzn-mqtt-ca"  # AWS IoT Core: MQTT with a client certificate on port 443


@dataclass(frozen=True)
class Endpoint:
    """An MQTT/TLS endpoint; ``host`` is also the SNI the device sends (AWS needs it for JITR without a chain)."""

    host: str
    port: int = MQTT_TLS_PORT

    @property
    def alpn(self) -> tuple[str, ...]:
        """The ALPN protocols to offer: on 443, AWS IoT tells MQTT from HTTPS by ``x-amzn-mqtt-ca``."""
        return (ALPN_MQTT,) if self.port == HTTPS_PORT else ()

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_endpoint(text: str, default_port: int = MQTT_TLS_PORT) -> Endpoint:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; a URL scheme such as ``mqtts://`` is tolerated."""
    value = text.strip()
    if "://" in value:
        value = value.split("://", 1)[1]
    value = value.rstrip("/")
    port_text = None
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidInputError(f"The endpoint {text!r} is not HOST[:PORT].")
        port_text = rest[1:] if rest else None
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host = value  # a bare name, or an IPv6 address without brackets
    if not host:
        raise InvalidInputError(f"The endpoint {text!r} has no host name.")
    if port_text is None:
        return Endpoint(host, default_port)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidInputError(f"The port of the endpoint {text!r} must be a number from 1 to 65535.")
    return Endpoint(host, int(port_text))
