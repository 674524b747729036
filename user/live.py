"""MQTT over WebSocket with SigV4, as a phone app reaches its devices with temporary credentials.

The URL is signed for each connect (:func:`cloud.iot_websocket.signed_path`); AWS IoT answers a bad or
expired signature with HTTP 403 before any MQTT, and decides every connect, subscribe and publish by the
credentials' IAM policies: a refused connect is CONNACK 5, a refused subscribe a SUBACK failure, a refused
publish a closed connection. Each of those is one sentence here. Every wait has a timeout.
"""

from __future__ import annotations

import queue
import ssl
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from base.errors import JitrError, NotFoundError
from cloud.iot_websocket import TemporaryCredentials, signed_path
from user.devices import Credentials

WSS_PORT = 443
TIMEOUT = 10.0
KEEP_ALIVE = 30
REFUSED = 0x80


class LiveConnectionError(JitrError):
    """AWS IoT refused the user's WebSocket connection, a subscription or a publish, or did not answer."""


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    return (host, int(port)) if port.isdigit() else (text, WSS_PORT)


class LiveConnection:
    """One MQTT-over-WebSocket connection with the user's credentials; messages land in :attr:`messages`."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        root_ca: Path | None = None,
        timeout: float = TIMEOUT,
        client_id: str | None = None,
    ) -> None:
        """``client_id`` defaults to the credentials' prefix (``<sub>-``) and a random suffix: AWS IoT lets
        the credentials connect with no other."""
        self.credentials, self.timeout = credentials, timeout
        self.host, self.port = _endpoint(credentials.iot_endpoint)
        self.client_id = client_id or f"{credentials.client_id_prefix}{uuid.uuid4().hex[:12]}"
        self.messages: queue.Queue[Message] = queue.Queue()
        self._acks: queue.Queue[list[int]] = queue.Queue()
        self._connack: queue.Queue[int] = queue.Queue()
        self.closed = threading.Event()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, transport="websockets", protocol=mqtt.MQTTv311
        )
        context = ssl.create_default_context()
        if root_ca is not None:
            if not root_ca.is_file():
                raise NotFoundError(f"The root CA file {root_ca} does not exist.")
            context = ssl.create_default_context(cafile=str(root_ca))
        client.tls_set_context(context)
        client.reconnect_delay_set(3600, 3600)  # a closed connection stays closed: the caller decides
        client.on_connect = lambda _c, _u, _f, rc, _p: self._connack.put(rc.value)
        client.on_subscribe = lambda _c, _u, _m, codes, _p: self._acks.put([code.value for code in codes])
        client.on_message = lambda _c, _u, message: self.messages.put(Message(message.topic, message.payload))
        client.on_disconnect = lambda *_args: self.closed.set()
        self._client = client

    def __enter__(self) -> LiveConnection:
        self.connect()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    def connect(self) -> None:
        keys = TemporaryCredentials(
            self.credentials.access_key_id, self.credentials.secret_access_key, self.credentials.session_token
        )
        self._client.ws_set_options(path=signed_path(keys, self.host, self.port, self.credentials.region))
        where = f"{self.host}:{self.port}"
        try:
            self._client.connect(self.host, self.port, keepalive=KEEP_ALIVE)
        except mqtt.WebsocketConnectionError as exc:
            raise LiveConnectionError(
                f"{where} refused the signed WebSocket connection ({exc}): the credentials have expired or are "
                "not accepted; ask for new ones."
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise LiveConnectionError(f"Cannot reach {where} over WebSocket: {exc}.") from None
        self._client.loop_start()
        try:
            code = self._connack.get(timeout=self.timeout)
        except queue.Empty:
            self.close()
            raise LiveConnectionError(f"{where} did not answer the MQTT CONNECT within {self.timeout:g} s.") from None
        if code != 0:
            self.close()
            raise LiveConnectionError(
                f"AWS IoT refused the connection as client {self.client_id} (code {code}): the credentials "
                "do not allow it."
            )

    def subscribe(self, topic_filter: str) -> None:
        self._client.subscribe(topic_filter, qos=1)
        try:
            codes = self._acks.get(timeout=self.timeout)
        except queue.Empty:
            raise LiveConnectionError(f"No SUBACK for {topic_filter} within {self.timeout:g} s.") from None
        if codes and codes[0] >= REFUSED:
            raise LiveConnectionError(f"AWS IoT refused the subscription to {topic_filter}: not one of your devices.")

    def publish(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=1)
        info.wait_for_publish(self.timeout)
        if not info.is_published():
            reason = "closed the connection" if self.closed.is_set() else "did not acknowledge it"
            raise LiveConnectionError(f"AWS IoT {reason} on a publish to {topic}: not one of your devices' topics.")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
