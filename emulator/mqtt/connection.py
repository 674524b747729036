"""amqtt's per-connection pieces, adjusted for the emulator (amqtt 0.12.x).

- :class:`SessionStates`: a session's states (new, connected, disconnected) without building a
  ``transitions.Machine`` per connection, which cost half a millisecond of the broker's loop each.
- :class:`ConnectionHandler`: a client's QoS 1 PUBLISH is acknowledged only once the broker has allowed
  it, as AWS IoT does (it closes the connection on a denied publish without a PUBACK).
- :class:`Replay`: a reader that gives back the bytes already read to find the protocol level, and
  :func:`check_protocol`, which reads them and answers a client of another MQTT version at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from amqtt.adapters import ReaderAdapter
from amqtt.mqtt.constants import QOS_1
from amqtt.mqtt.protocol import broker_handler
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.puback import PubackPacket
from amqtt.session import INCOMING, Session
from transitions import MachineError

log = logging.getLogger(__name__)

MQTT_311 = 4  # the protocol level amqtt serves; MQTT 5 clients get CONNACK 0x84


class SessionStates:
    """amqtt's per-session state machine (new, connected, disconnected) with the triggers and callbacks its
    ``transitions.Machine`` has, which costs half a millisecond of the broker's loop to build per connection."""

    _NEXT = {
        "connect": {"new": "connected", "disconnected": "connected"},
        "disconnect": {"new": "disconnected", "connected": "disconnected", "disconnected": "disconnected"},
    }

    def __init__(self, session: Session) -> None:
        self._session, self.state = session, "new"

    def is_connected(self) -> bool:
        return self.state == "connected"

    def connect(self) -> bool:
        return self._trigger("connect")

    def disconnect(self) -> bool:
        return self._trigger("disconnect")

    def _trigger(self, event: str) -> bool:
        dest = self._NEXT[event].get(self.state)
        if dest is None:
            raise MachineError(f"Can't trigger event {event} from state {self.state}!")
        self.state = dest
        (self._session._on_enter_connected if dest == "connected" else self._session._on_enter_disconnected)()
        return True


class _Session(Session):
    def _init_states(self) -> None:
        self.transitions = SessionStates(self)


def use_light_sessions() -> None:
    """Have amqtt's broker side make each connection's session a :class:`_Session` (its light state machine).

    amqtt builds the session inside ``BrokerProtocolHandler.init_from_connect`` from its module's
    ``Session``, so the class is swapped there: by the emulator's broker when it starts, never merely by
    importing this module. Idempotent.
    """
    broker_handler.Session = _Session


class ConnectionHandler(BrokerProtocolHandler):
    """amqtt's broker side of a connection, except that a client's QoS 1 PUBLISH is acknowledged only once
    the broker has allowed it (:meth:`acknowledge`): AWS IoT closes the connection on a publish its policy
    denies, and a client must not take an earlier PUBACK for delivery."""

    async def _handle_qos1_message_flow(self, app_message: Any) -> None:
        if app_message.direction == INCOMING:
            await self.session.delivered_message_queue.put(app_message)
            return
        await super()._handle_qos1_message_flow(app_message)

    async def acknowledge(self, message: Any) -> None:
        if message.qos == QOS_1 and message.packet_id is not None:
            message.puback_packet = PubackPacket.build(message.packet_id)
            await self._send_packet(message.puback_packet)


class Replay(ReaderAdapter):
    """A reader that first gives back the bytes already read from ``inner``."""

    def __init__(self, prefix: bytes, inner: ReaderAdapter) -> None:
        self._prefix, self._inner = prefix, inner

    async def read(self, n: int = -1) -> bytes:
        if not self._prefix:
            return await self._inner.read(n)
        head, self._prefix = (self._prefix, b"") if n < 0 else (self._prefix[:n], self._prefix[n:])
        missing = -1 if n < 0 else n - len(head)
        return head + (await self._inner.read(missing) if missing else b"")

    def feed_eof(self) -> None:
        self._inner.feed_eof()


async def check_protocol(reader: Any, writer: Any, timeout: float) -> ReaderAdapter | None:
    """Answer a CONNECT for another protocol level than 3.1.1 at once (amqtt would misread an MQTT 5 one)."""
    head = bytearray()
    try:
        async with asyncio.timeout(timeout):
            head += await reader.read(1)
            while len(head) < 5 and (len(head) == 1 or head[-1] & 0x80):  # the remaining length, 1-4 bytes
                head += await reader.read(1)
            head += await reader.read(2)
            name_length = int.from_bytes(head[-2:], "big")
            head += await reader.read(name_length + 1) if head[0] == 0x10 and name_length <= 6 else b""
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        return None
    level = head[-1] if head[0] == 0x10 and len(head) > 7 else None
    if level != MQTT_311:
        log.info("Refusing a CONNECT for MQTT protocol level %s: only 3.1.1 (level 4) is served", level)
        with contextlib.suppress(Exception):  # MQTT 5 CONNACK 0x84, else the 3.1.1 CONNACK 0x01; garbage: nothing
            if level is not None:
                writer.write(b"\x20\x03\x00\x84\x00" if level == 5 else b"\x20\x02\x00\x01")
                await writer.drain()
        return None
    return Replay(bytes(head), reader)


def current_task() -> asyncio.Task:
    """The task running a connection handler (there always is one: asyncio starts it as a task)."""
    task = asyncio.current_task()
    assert task is not None
    return task
