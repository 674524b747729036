"""paho-mqtt on the wire: one TLS connection, driven from the calling thread, and how it ended.

paho's external-loop API (``socket()``, ``loop_read/loop_write/loop_misc``) is used with ``poll``
instead of ``Client.loop``: no socket pair per client, and no ``select`` limit on descriptors above
1024, which a fleet of a few hundred connections in one process reaches.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from device.attempts import Outcome
from device.endpoint import Endpoint

TICK = 0.05  # longest single wait: timeouts are checked at least this often

# CONNACK return codes of MQTT 3.1.1, as paho 2.x names them in on_connect's ReasonCode
_REFUSED = {"Not authorized", "Bad user name or password"}
_UNAVAILABLE = {"Server unavailable"}
_REJECTED = {"Unsupported protocol version", "Client identifier not valid"}
# TLS alerts by which a server rejects the client certificate during the handshake (TLS 1.2)
_CERTIFICATE_ALERTS = ("BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN", "CERTIFICATE_REVOKED", "ACCESS_DENIED")


class Connection:
    """A paho client on one socket, with what its callbacks saw."""

    def __init__(self, client: mqtt.Client, clock: Callable[[], float]) -> None:
        self.client = client
        self.clock = clock
        self.connack: mqtt.ReasonCode | None = None
        self.closed = False
        self.socket_error: str | None = None  # why paho lost the socket, if it says
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_socket_open = self._on_socket_open
        client.on_log = self._on_log

    @staticmethod
    def _on_socket_open(_client, _userdata, sock) -> None:
        """No Nagle: else each CONNECT and PUBLISH waits out the server's delayed ACK (40 ms on Linux)."""
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connack = reason_code

    def _on_disconnect(self, _client, _userdata, _flags, _reason_code, _properties) -> None:
        self.closed = True

    def _on_log(self, _client, _userdata, level, message) -> None:
        """paho reports a failed socket read only in its log: keep it (a TLS 1.3 alert arrives that way)."""
        if level == mqtt.MQTT_LOG_ERR and "on socket" in message:
            self.socket_error = message

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the socket, then let paho read, write and keep alive."""
        sock = self.client.socket()
        if sock is None:
            self.closed = True
            return
        pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
        readable = writable = False
        if pending:
            readable = True
        else:
            readable, writable = _wait(sock, self.client.want_write(), timeout)
        if readable:
            self.client.loop_read()
        if writable and self.client.socket() is not None:
            self.client.loop_write()
        if self.client.socket() is not None:
            self.client.loop_misc()
        else:
            self.closed = True

    def pump_until(self, done: Callable[[], bool], seconds: float) -> bool:
        """Pump until ``done()`` or the connection closes or ``seconds`` pass; return ``done()``."""
        deadline = self.clock() + seconds
        while not done() and not self.closed:
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            self.pump(min(TICK, remaining))
        return done()

    def pump_for(self, seconds: float) -> None:
        self.pump_until(lambda: False, seconds)

    def publish(self, topic: str, payload: bytes, timeout: float) -> bool | None:
        """Publish at QoS 1: True once PUBACKed, False if no PUBACK in time, None if the connection closed."""
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_QUEUE_SIZE:
            return None
        if self.pump_until(info.is_published, timeout):
            return True
        return None if self.closed else False

    def close(self) -> None:
        """Disconnect cleanly if still connected; release the socket either way."""
        with contextlib.suppress(Exception):
            if not self.closed and self.connack is not None and not self.connack.is_failure:
                self.client.disconnect()
                self.pump_until(lambda: False, 0.5)
        sock = self.client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        self.closed = True


def open_connection(
    context: ssl.SSLContext, endpoint: Endpoint, client_id: str, options, clock: Callable[[], float]
) -> tuple[Connection | None, Outcome, str]:
    """One attempt: TLS handshake, CONNECT, wait for CONNACK. The connection is returned only if accepted."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True
    )
    client.tls_set_context(context)
    client.connect_timeout = options.connect_timeout
    connection = Connection(client, clock)
    try:
        client.connect(endpoint.host, endpoint.port, keepalive=options.keepalive)
    except ssl.SSLCertVerificationError as exc:
        return None, Outcome.UNTRUSTED, exc.verify_message or str(exc)
    except ssl.CertificateError as exc:  # a host name mismatch found by paho itself
        return None, Outcome.UNTRUSTED, str(exc)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if _certificate_alert(reason):  # TLS 1.2: the server refuses the client certificate in the handshake
            return None, Outcome.REFUSED, f"TLS alert {reason}"
        if reason in _NOT_TLS:  # the first bytes back were not a TLS record: an HTTP or SSH server, say
            return None, Outcome.NOT_TLS, f"its answer to the TLS hello was not TLS: {reason}"
        return None, Outcome.DROPPED, f"TLS handshake ended: {reason}"
    except TimeoutError:
        return None, Outcome.TIMEOUT, f"no TLS handshake within {options.connect_timeout:g} s"
    except socket.gaierror as exc:
        return None, Outcome.UNREACHABLE, f"cannot resolve {endpoint.host}: {exc.strerror or exc}"
    except OSError as exc:
        if _handshake_reset(exc):
            return None, Outcome.DROPPED, f"connection reset during the TLS handshake ({exc.strerror or exc})"
        return None, Outcome.UNREACHABLE, exc.strerror or str(exc)
    received = connection.pump_until(lambda: connection.connack is not None, options.connack_timeout)
    connack = connection.connack
    if received and connack is not None and not connack.is_failure:
        return connection, Outcome.ACCEPTED, "CONNACK accepted"
    connection.close()
    if not received:
        alert = _certificate_alert(connection.socket_error)
        if alert:  # TLS 1.3: the server checks the client certificate after the client's handshake is done
            return None, Outcome.REFUSED, f"TLS alert {alert} before CONNACK"
        if connection.closed:
            return None, Outcome.DROPPED, "closed before CONNACK"
        return None, Outcome.TIMEOUT, f"no CONNACK within {options.connack_timeout:g} s"
    assert connack is not None  # received: pump_until saw it
    name = connack.getName()
    if name in _REFUSED:
        return None, Outcome.REFUSED, f"CONNACK {name.lower()}"
    if name in _UNAVAILABLE:
        return None, Outcome.UNAVAILABLE, f"CONNACK {name.lower()}"
    if name in _REJECTED:
        return None, Outcome.REJECTED, f"CONNACK {name.lower()}"
    return None, Outcome.REFUSED, f"CONNACK {name.lower()}"


def _wait(sock: Any, want_write: bool, timeout: float) -> tuple[bool, bool]:
    """Whether ``sock`` (paho's socket: anything with a ``fileno``) is readable (or closed) and writable
    within ``timeout``."""
    if not hasattr(select, "poll"):  # Windows
        ready_r, ready_w, _ = select.select([sock], [sock] if want_write else [], [], max(0.0, timeout))
        return bool(ready_r), bool(ready_w)
    poller = select.poll()
    poller.register(sock, select.POLLIN | (select.POLLOUT if want_write else 0))
    readable = writable = False
    for _fd, event in poller.poll(max(0.0, timeout) * 1000):
        readable = bool(event & (select.POLLIN | select.POLLHUP | select.POLLERR))
        writable = bool(event & select.POLLOUT)
    return readable, writable


# OpenSSL's reasons when the server's first bytes are no TLS record at all
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG"})


def _certificate_alert(text: str | None) -> str | None:
    """The TLS alert in ``text`` by which a server rejects the client certificate, if there is one."""
    upper = (text or "").upper()
    return next((alert for alert in _CERTIFICATE_ALERTS if alert in upper), None)


def _handshake_reset(exc: OSError) -> bool:
    """A peer that accepted TCP and then reset or closed it: a connection dropped, not an endpoint missing."""
    return isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError)
