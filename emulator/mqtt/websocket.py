"""MQTT over WebSocket on the broker's TLS port, as AWS IoT Core serves ``wss://ENDPOINT/mqtt``.

A connection whose first bytes after the TLS handshake are ``GET `` is a WebSocket upgrade: the request
is read with the ``websockets`` library's sans-I/O server (the only module that touches it), shown to the
broker's ``on_websocket`` hook (which checks its SigV4 signature and answers the session's attributes, or
None for 403 Forbidden), and answered 101 with the ``mqtt`` subprotocol. The MQTT packets then travel in
binary frames: :class:`FrameReader` and :class:`FrameWriter` are amqtt's reader and writer adapters over
them, so the broker serves the connection like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from amqtt.adapters import ReaderAdapter, WriterAdapter
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

log = logging.getLogger(__name__)
_protocol_log = logging.getLogger(f"{__name__}.protocol")  # the library's "connection open" lines: not worth INFO
_protocol_log.setLevel(logging.WARNING)

PATH = "/mqtt"
HANDSHAKE_TIMEOUT = 10.0  # seconds for the whole upgrade request
MAX_REQUEST = 16 * 1024  # bytes of request line and headers (a signed URL with a session token is ~2 KB)
MAX_MESSAGE = 256 * 1024  # bytes in one WebSocket message (AWS IoT's MQTT payload limit is 128 KB)
READ_CHUNK = 64 * 1024
_DATA = (Opcode.BINARY, Opcode.CONT, Opcode.TEXT)


def is_upgrade(head: bytes) -> bool:
    """Whether the first bytes of a connection are an HTTP request (MQTT's CONNECT starts with 0x10)."""
    return head.startswith(b"GET ")


@dataclass(frozen=True)
class UpgradeRequest:
    """The WebSocket upgrade request as the ``on_websocket`` hook sees it."""

    path: str  # without the query string
    query: str  # as sent, not decoded
    headers: tuple[tuple[str, str], ...]  # as sent, in order

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)


async def upgrade(
    head: bytes,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    authorize: Callable[[UpgradeRequest], Awaitable[dict[str, Any] | None]],
) -> tuple[FrameReader, FrameWriter, dict[str, Any]] | None:
    """Answer the upgrade request that starts with ``head``; the MQTT reader, writer and the session's attributes,
    or None once the request was refused (and answered) or never finished."""
    protocol = ServerProtocol(
        subprotocols=[Subprotocol("mqtt")],
        select_subprotocol=_mqtt_if_offered,
        max_size=MAX_MESSAGE,
        logger=_protocol_log,
    )
    protocol.receive_data(head)
    request = None
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            received = len(head)
            while request is None and protocol.handshake_exc is None:
                events = protocol.events_received()
                if events:
                    request = cast(Request, events[0])
                    break
                chunk = await reader.read(READ_CHUNK)
                received += len(chunk)
                if not chunk or received > MAX_REQUEST:
                    return None
                protocol.receive_data(chunk)
    except (TimeoutError, ConnectionError):
        return None
    if request is None:
        log.info("A WebSocket upgrade request that does not parse: %s", protocol.handshake_exc)
        await _answer(protocol, writer, protocol.reject(400, "Bad Request\n"))
        return None
    target = urlsplit(request.path)
    if target.path != PATH:
        await _answer(protocol, writer, protocol.reject(404, "Not Found\n"))
        return None
    attributes = await authorize(UpgradeRequest(target.path, target.query, tuple(request.headers.raw_items())))
    if attributes is None:
        await _answer(protocol, writer, protocol.reject(403, "Forbidden\n"))
        return None
    response = protocol.accept(request)
    if response.status_code != 101:
        log.info("A WebSocket upgrade request refused: %s", protocol.handshake_exc)
        await _answer(protocol, writer, response)
        return None
    protocol.send_response(response)
    _flush(protocol, writer)
    frames = FrameReader(protocol, reader, writer)
    return frames, FrameWriter(protocol, writer), attributes


def _mqtt_if_offered(protocol: ServerProtocol, offered: Any) -> Subprotocol | None:
    return Subprotocol("mqtt") if "mqtt" in offered else None


async def _answer(protocol: ServerProtocol, writer: asyncio.StreamWriter, response: Any) -> None:
    protocol.send_response(response)
    _flush(protocol, writer)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.drain(), HANDSHAKE_TIMEOUT)
    writer.close()


def _flush(protocol: ServerProtocol, writer: asyncio.StreamWriter) -> None:
    for data in protocol.data_to_send():
        if data:
            writer.write(data)
        elif writer.can_write_eof():  # the protocol asks for the half-close that ends a closing handshake
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()


class FrameReader(ReaderAdapter):
    """amqtt's reader over the data of binary frames; pings, pongs and the closing handshake answered here."""

    def __init__(self, protocol: ServerProtocol, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._protocol, self._reader, self._writer = protocol, reader, writer
        self._buffer = bytearray()
        self._eof = False

    async def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buffer) < n):
            await self._fill()
        if n < 0 or len(self._buffer) >= n:
            size = len(self._buffer) if n < 0 else n
            data, self._buffer = bytes(self._buffer[:size]), self._buffer[size:]
            return data
        raise asyncio.IncompleteReadError(bytes(self._buffer), n)

    async def _fill(self) -> None:
        chunk = await self._reader.read(READ_CHUNK)
        if chunk:
            self._protocol.receive_data(chunk)
        else:
            self._protocol.receive_eof()
        for event in self._protocol.events_received():
            frame = cast(Frame, event)
            if frame.opcode in _DATA:
                self._buffer += frame.data
        _flush(self._protocol, self._writer)  # pongs, and the answer to a close
        if not chunk or self._protocol.state in (State.CLOSING, State.CLOSED):
            self._eof = True

    def feed_eof(self) -> None:
        self._eof = True


class FrameWriter(WriterAdapter):
    """amqtt's writer: each packet it writes goes out as one binary frame."""

    def __init__(self, protocol: ServerProtocol, writer: asyncio.StreamWriter) -> None:
        self._protocol, self._writer = protocol, writer
        self.is_closed = False

    def write(self, data: bytes) -> None:
        if self.is_closed or self._protocol.state is not State.OPEN:
            return
        self._protocol.send_binary(bytes(data))
        _flush(self._protocol, self._writer)

    async def drain(self) -> None:
        if not self.is_closed:
            await self._writer.drain()

    def get_peer_info(self) -> tuple[str, int] | None:
        peer = self._writer.get_extra_info("peername")
        return (peer[0], peer[1]) if peer and len(peer) >= 2 else None

    def get_ssl_info(self) -> ssl.SSLObject | None:
        return cast("ssl.SSLObject | None", self._writer.get_extra_info("ssl_object"))

    async def close(self) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(1000)
            _flush(self._protocol, self._writer)
        with contextlib.suppress(Exception):
            await self._writer.drain()
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
