"""amqtt's broker made to behave like AWS IoT Core; :mod:`emulator.mqtt.broker` runs it for synchronous callers.

AWS IoT Core's own rules apply whatever the hooks say: QoS 0 and 1 only, no client publishes to ``$`` topics
other than ``$aws/...`` nor to ``$aws/events/...``, requests to AWS IoT itself are answered to the requesting
connection alone (:mod:`emulator.mqtt.service_requests`), wills go through ``on_publish`` and the rules like
any message, a newer connection with the same client id closes the older one, and a client silent for 1.5
times its keep-alive is disconnected.

amqtt speaks MQTT 3.1.1 only (MQTT 5 clients get CONNACK 0x84). Its connect, publish, subscribe, delivery and
disconnect paths are overridden (its plugin API cannot drop a connection without CONNACK nor disconnect a
publisher), which ties this module to amqtt 0.12.x.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker as _AmqttBroker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.utils import gen_client_id

from emulator.mqtt import tls, websocket
from emulator.mqtt.connection import ConnectionHandler, Replay, check_protocol, current_task, use_light_sessions
from emulator.mqtt.hooks import ConnectDecision, DisconnectReason, HookDispatch, SessionInfo
from emulator.mqtt.service_requests import ServiceRequests
from emulator.mqtt.topics import MAX_QOS, is_wildcard

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 5.0  # seconds from TCP accept to a finished TLS handshake
CONNECT_TIMEOUT = 10.0  # seconds from TLS handshake to CONNECT (AWS IoT keeps a silent one 4 s at least)
MAX_OPENING = 256  # connections in their handshake or before their CONNECT; more are closed at accept
CLOSE_TIMEOUT = 5.0
KEEP_ALIVE_FACTOR = 1.5
CLIENT_FORBIDDEN_PREFIXES = ("$aws/events/",)  # published by AWS IoT itself, never by a client


@dataclass(eq=False)
class _Link:
    """The broker's own state for one connection, kept on amqtt's session."""

    info: SessionInfo
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    reason: DisconnectReason | None = None  # set when the broker ends the connection


def _link(session: Any) -> _Link | None:
    return getattr(session, "_jitr_link", None)


class _AwsIotBroker(ServiceRequests, _AmqttBroker):
    """amqtt's broker with AWS IoT Core's connect, authorization and delivery rules."""

    def __init__(self, config: dict, dispatch: HookDispatch, ssl_context: Any) -> None:
        use_light_sessions()
        super().__init__(config, loop=asyncio.get_running_loop())
        self.dispatch = dispatch
        self._ssl_context = ssl_context
        self._connections: set[asyncio.Task] = set()
        self._opening: set[asyncio.Task] = set()  # accepted, not yet past the CONNECT: bounded by MAX_OPENING
        self._background: set[asyncio.Future] = set()
        self._stopping = False

    @property
    def port(self) -> int:
        return self._servers["default"].instance.sockets[0].getsockname()[1]

    # --- connect -----------------------------------------------------------------------------

    async def stream_connected(self, reader: Any, writer: Any, listener_name: str) -> None:
        """A TCP connection: the TLS handshake within HANDSHAKE_TIMEOUT, then the MQTT connection.

        The listener is plain TCP and TLS starts here (not in the server's accept), so that a connection
        that never finishes its handshake is closed after a few seconds rather than asyncio's 60, and
        so that at most MAX_OPENING connections are in their handshake or waiting for their CONNECT:
        a flood of half-open connections is closed at accept instead of holding the broker.
        """
        task = current_task()
        if len(self._opening) >= MAX_OPENING:
            log.info("Closing a new connection: %s are already in their TLS handshake or CONNECT", MAX_OPENING)
            writer.transport.abort()
            return
        self._opening.add(task)
        try:
            try:
                await writer.start_tls(self._ssl_context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
            except (OSError, EOFError) as exc:  # ssl.SSLError, ConnectionAbortedError (timed out), resets
                log.info("TLS handshake failed: %s", exc)
                writer.transport.abort()
                return
            try:
                head = await asyncio.wait_for(reader.readexactly(4), CONNECT_TIMEOUT)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                writer.transport.abort()
                return
            if websocket.is_upgrade(head):  # MQTT over WebSocket (wss://endpoint/mqtt), authorized by on_websocket
                upgraded = await websocket.upgrade(head, reader, writer, self.dispatch.authorize_websocket)
                if upgraded is not None:
                    await self._client_connected(listener_name, *upgraded)
                return
            reader_adapter = Replay(head, StreamReaderAdapter(reader))
            await self._client_connected(listener_name, reader_adapter, StreamWriterAdapter(writer))
        finally:
            self._opening.discard(task)

    async def _client_connected(
        self, listener_name: str, reader: Any, writer: Any, websocket_attributes: dict | None = None
    ) -> None:
        server = self._servers[listener_name]
        task = current_task()
        self._connections.add(task)
        await server.acquire_connection()
        session = link = None
        try:
            peer = writer.get_peer_info()
            reader = await check_protocol(reader, writer, CONNECT_TIMEOUT)
            opened = None
            if peer and reader:
                opened = await self._initialize_client_session(reader, writer, *peer, websocket=websocket_attributes)
            self._opening.discard(task)  # past its CONNECT: no longer counts against MAX_OPENING
            if opened is None:
                return
            handler, session = opened
            link = _link(session)
            if link is None:  # every session the broker accepted has a link (hooks.py); never a silent one
                raise RuntimeError("an accepted MQTT session has no link to its connection")
            self.dispatch.notify(self.dispatch.hooks.on_connected, link.info)
            await self._handle_client_session(reader, writer, session, handler, server, listener_name)
        except (AMQTTError, MQTTError, NoDataError, ConnectionError) as exc:
            log.info("MQTT connection ended with an error: %s", exc)
        except Exception:
            log.exception("MQTT connection handling failed")
        finally:
            if link is not None:
                await self._finish(session, link, DisconnectReason.CONNECTION_LOST)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.close(), CLOSE_TIMEOUT)
            server.release_connection()
            self._connections.discard(task)

    async def _initialize_client_session(
        self, reader: Any, writer: Any, address: str, port: int, *, websocket: dict | None = None
    ) -> Any:
        """Read the CONNECT, ask ``on_connect``, then take over or resume the client's session."""
        try:
            connect = ConnectionHandler.init_from_connect(reader, writer, self.plugins_manager)
            handler, session = await asyncio.wait_for(connect, CONNECT_TIMEOUT)
        except Exception as exc:  # a network boundary: garbage, timeouts, resets
            log.debug("No valid CONNECT from %s:%s: %r", address, port, exc)
            return None
        session.client_id = session.client_id or gen_client_id()
        ssl_object = session.ssl_object
        info = SessionInfo(
            client_id=session.client_id,
            remote_address=(address, port),
            certificate_chain=tls.peer_chain(ssl_object),
            sni=tls.server_name(ssl_object),
            username=session.username,
            clean_session=bool(session.clean_session),
            transport="mqtt" if websocket is None else "websocket",
            attributes=dict(websocket or {}),
        )
        decision = await self.dispatch.decide(info)
        if decision is not ConnectDecision.ACCEPT:
            log.info("Client %s from %s:%s: connection %s", info.client_id, address, port, decision.value)
            if decision is ConnectDecision.REFUSE:
                with contextlib.suppress(Exception):
                    await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            return None
        await self.kick(session.client_id, DisconnectReason.DUPLICATE_CLIENTID)  # AWS: the newcomer wins
        if session.clean_session:
            await self._delete_session(session.client_id)
            session.parent = 0
        elif session.client_id in self._sessions:  # resume the persistent session with this connection's details
            existing = self._sessions[session.client_id][0]
            for name in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain", "keep_alive"):
                setattr(existing, name, getattr(session, name))
            for name in ("username", "password", "ssl_object", "remote_address", "remote_port"):
                setattr(existing, name, getattr(session, name))
            existing.parent = 1
            session = existing
        else:
            session.parent = 0
        link = session._jitr_link = _Link(info)
        if session.keep_alive > 0:  # AWS IoT closes a connection silent for 1.5 times its keep-alive
            session.keep_alive = math.ceil(session.keep_alive * KEEP_ALIVE_FACTOR)
            handler.handle_read_timeout = lambda: self._in_background(
                self._close(link, handler, DisconnectReason.MQTT_KEEP_ALIVE_TIMEOUT)
            )
        return handler, session

    def _in_background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _authenticate(self, session: Any, listener: Any) -> bool:
        return True  # on_connect has decided already

    async def _client_message_loop(self, session: Any, handler: Any) -> None:
        reader_task = handler._reader_task
        if reader_task is None or reader_task.done():  # gone before amqtt's handler started: nothing would notice
            await handler.handle_connection_closed()
        await super()._client_message_loop(session, handler)

    # --- disconnect --------------------------------------------------------------------------

    async def _handle_disconnect(self, session: Any, handler: Any, disconnect_waiter: asyncio.Future) -> None:
        clean = isinstance(disconnect_waiter.result(), DisconnectPacket)
        link = _link(session)
        if not clean and session.will_flag and link is not None:  # the will, as any publish: policy, then rules
            will = (
                session.will_topic,
                bytes(session.will_message or b""),
                session.will_qos or 0,
                bool(session.will_retain),
            )
            if await self._may_publish(link.info, *will):
                await self._route(session, link.info, *will)
        session.will_flag = False  # handled here, not by amqtt
        try:
            await super()._handle_disconnect(session, handler, disconnect_waiter)
        finally:
            reason = DisconnectReason.CLIENT_INITIATED_DISCONNECT if clean else DisconnectReason.CONNECTION_LOST
            await self._finish(session, link, reason)

    async def _finish(self, session: Any, link: _Link | None, reason: DisconnectReason) -> None:
        """Once per connection: mark the session disconnected and tell ``on_disconnect``."""
        if link is None or link.closed.is_set():
            return
        if _link(session) is link and session.transitions.is_connected():  # amqtt's disconnect handling did not run
            handler = self._sessions.get(session.client_id, (None, None))[1]
            if handler is not None:
                await self._stop_handler(handler)
            session.transitions.disconnect()
        stopping = DisconnectReason.SERVER_INITIATED_DISCONNECT if self._stopping else None
        link.info.disconnect_reason = link.reason or stopping or reason
        link.closed.set()
        self.dispatch.notify(self.dispatch.hooks.on_disconnect, link.info)

    async def kick(self, client_id: str, reason: DisconnectReason) -> bool:
        """Close a connected client's connection and wait until it is gone; False if it is not connected."""
        session, handler = self._sessions.get(client_id, (None, None))
        link = _link(session)
        if link is None or link.closed.is_set() or not session.transitions.is_connected():
            return False
        await self._close(link, handler, reason)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(link.closed.wait(), CLOSE_TIMEOUT)
        return True

    @staticmethod
    async def _close(link: _Link, handler: Any, reason: DisconnectReason) -> None:
        """End a connection from the broker's side; its message loop then runs the disconnect handling.

        Closing the transport (not only amqtt's disconnect waiter, which exists only once the handler has
        started) makes this work at any point after CONNACK.
        """
        link.reason = link.reason or reason
        await handler.handle_connection_closed()
        if handler.writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handler.writer.close(), CLOSE_TIMEOUT)

    async def shutdown(self) -> None:
        self._stopping = True
        await super().shutdown()
        pending = [task for task in self._connections if task is not asyncio.current_task()]
        if pending:
            _done, still = await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)
            for task in still:
                task.cancel()
        for future in list(self._background):
            future.cancel()
        if self.dispatch.tasks:  # async event hooks still running
            await asyncio.wait(list(self.dispatch.tasks), timeout=CLOSE_TIMEOUT)

    # --- publish, subscribe, receive ---------------------------------------------------------

    async def _handle_message_delivery(self, session: Any, handler: Any, wait_deliver: asyncio.Future) -> bool:
        """A PUBLISH from a client: check it, then deliver it and hand it to the rules; else disconnect."""
        message = wait_deliver.result()
        link = _link(session)
        if message is None or link is None or link.reason is not None:  # the connection is being closed
            return True
        topic, payload, qos = message.topic, bytes(message.data), message.qos or 0
        retain = bool(message.publish_packet and message.publish_packet.retain_flag)
        if await self._may_publish(link.info, topic, payload, qos, retain):
            answers = await self._serve(link.info, topic, payload)
            if answers is None:
                await self._route(session, link.info, topic, payload, qos, retain)
            if isinstance(handler, ConnectionHandler):
                await handler.acknowledge(message)
            for answer_topic, answer in answers or ():
                await self._answer(session, handler, answer_topic, answer)
        else:
            log.info("Client %s may not publish to %r (QoS %s): disconnecting it", session.client_id, topic, qos)
            await self._close(link, handler, DisconnectReason.AUTHORIZATION_ERROR)
        return True

    async def _may_publish(self, info: SessionInfo, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        if not topic or is_wildcard(topic) or qos > MAX_QOS:
            return False
        if topic.startswith("$") and (not topic.startswith("$aws/") or topic.startswith(CLIENT_FORBIDDEN_PREFIXES)):
            return False
        return await self.dispatch.allowed(self.dispatch.hooks.on_publish, info, topic, payload, qos, retain)

    async def _route(
        self, session: Any, info: SessionInfo | None, topic: str, payload: bytes, qos: int, retain: bool
    ) -> None:
        """An accepted message: to the subscribers, to the retained store if asked, to the rules."""
        await self._broadcast_message(session, topic, payload, min(qos, MAX_QOS))
        if retain:
            await self.retain_message(session, topic, payload, min(qos, MAX_QOS))
        self.dispatch.notify(self.dispatch.hooks.on_message, info, topic, payload)

    def has_subscriber(self, topic: str) -> bool:
        """Whether any session, connected or persistent, subscribes to a filter matching ``topic`` (any thread)."""
        return any(f == topic or (is_wildcard(f) and self._matches(topic, f)) for f in list(self._subscriptions))

    async def publish_internal(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """A message from the emulator itself: no policy check, but subscribers' iot:Receive and the rules apply."""
        await self._route(None, None, topic, payload, qos, retain)

    async def add_subscription(self, subscription: tuple[str, int], session: Any) -> int:
        topic_filter, qos = subscription
        return await super().add_subscription((topic_filter, min(qos, MAX_QOS)), session)

    async def _topic_filtering(self, session: Any, topic: str, action: Action) -> bool:
        link = _link(session)
        if link is None:
            return False
        if action == Action.SUBSCRIBE:
            return await self.dispatch.allowed(self.dispatch.hooks.on_subscribe, link.info, topic)
        if action == Action.RECEIVE:
            return await self.dispatch.allowed(self.dispatch.hooks.can_receive, link.info, topic)
        return True  # publishes are checked in _handle_message_delivery, with their payload

    async def _broadcast_message(self, session: Any, topic: Any, data: Any, force_qos: int | None = None) -> None:
        """Deliver to each matching subscriber now, at min(message QoS, subscription QoS).

        amqtt queues every message for a broadcast task; delivering inline keeps each publisher's order and
        halves the work per message. Each QoS 1 delivery then waits for its PUBACK in a task of its own.
        """
        broadcast = {"session": session, "topic": topic, "data": data}
        for topic_filter, subscriptions in list(self._subscriptions.items()):
            if topic_filter != topic and not (is_wildcard(topic_filter) and self._matches(topic, topic_filter)):
                continue
            for target, subscription_qos in list(subscriptions):
                qos = subscription_qos if force_qos is None else min(force_qos, subscription_qos)
                if not await self._topic_filtering(target, topic, Action.RECEIVE):
                    continue
                if not target.transitions.is_connected():
                    if not target.clean_session and qos > 0:  # a persistent session keeps it for later
                        await self._retain_broadcast_message(broadcast, qos, target)
                    continue
                handler = self._get_handler(target)
                if handler is not None:
                    delivery = asyncio.ensure_future(handler.mqtt_publish(topic, data, qos, retain=False))
                    self._background.add(delivery)
                    delivery.add_done_callback(self._delivered)

    def _delivered(self, delivery: asyncio.Future) -> None:
        self._background.discard(delivery)
        if not delivery.cancelled() and delivery.exception() is not None:
            log.info("A message was not delivered: %r", delivery.exception())

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int], session: Any) -> None:
        """Retained messages for a filter this session subscribes to, each subject to iot:Receive.

        (amqtt sends a reconnecting client the retained messages of every client's subscriptions.)
        """
        topic_filter = subscription[0]
        granted = [qos for s, qos in self._subscriptions.get(topic_filter, []) if s.client_id == session.client_id]
        handler = self._get_handler(session)
        if not granted or handler is None:
            return
        sends = [
            handler.mqtt_publish(retained.topic, retained.data, min(granted[0], retained.qos or 0), retain=True)
            for topic, retained in list(self._retained_messages.items())
            if self._matches(topic, topic_filter) and await self._topic_filtering(session, topic, Action.RECEIVE)
        ]
        for outcome in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.info("A retained message did not reach %s: %s", session.client_id, outcome)
