"""What the MQTT broker asks and tells the rest of the emulator: the hooks, their types, and how they are called.

The broker (:mod:`emulator.mqtt.broker`) knows nothing of certificates' status, policies or rules. It asks a
:class:`BrokerHooks`:

- ``on_connect(info) -> ConnectDecision`` once the CONNECT is read: ACCEPT, REFUSE (CONNACK 5, close) or
  DROP (close without CONNACK, what AWS does on a JITR first connect). ``info`` carries the client id, the
  certificate chain the client sent (DER, leaf first), its SNI and address; ``info.attributes`` is the hook's
  to fill (thing name, policies...) for the checks below. A sync hook runs in a thread pool.
- ``on_publish(info, topic, payload, qos, retain) -> bool``: False disconnects the client, as AWS does, and the
  message reaches no subscriber and no rule. ``on_subscribe(info, topic_filter) -> bool``: False is SUBACK 0x80.
  ``can_receive(info, topic) -> bool``: asked per subscriber before each delivery (iot:Receive). These three
  run on the broker's loop: keep them fast and free of I/O (resolve what they need in ``on_connect``).
- ``on_request(info, topic, payload) -> [(topic, payload), ...] | None`` for an allowed publish to a topic
  AWS IoT serves itself (``$aws/certificates/...``, ``$aws/provisioning-templates/...``: the fleet
  provisioning MQTT API): the answers go to this connection only, to the filters it subscribes to (and
  may receive); None means the topic is not served, and the message is routed as any other. It runs in a
  thread pool, and the connection's next message waits for it.
- ``on_websocket(request) -> dict | None`` for an MQTT-over-WebSocket upgrade (``GET /mqtt``, see
  :mod:`emulator.mqtt.websocket`) before it is answered: None answers 403 Forbidden (a bad or expired SigV4
  signature); a dict becomes the connection's ``info.attributes`` (``info.transport`` is then "websocket"),
  for ``on_connect`` to decide with. Left None, every upgrade is refused. It runs in the connect pool.
- ``on_connected(info)``, ``on_message(info, topic, payload)`` (every accepted publish; ``info`` is None for
  ``Broker.publish``) and ``on_disconnect(info)`` are events, run in order on one worker thread.

Any hook may be ``async def`` instead (it is then awaited on the loop). A hook left None allows everything.
:class:`HookDispatch` is what calls them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

log = logging.getLogger(__name__)

REQUEST_WORKERS = 4  # on_request calls at once (each may wait for a pre-provisioning hook, up to 5 s)


class ConnectDecision(Enum):
    ACCEPT = "accept"
    REFUSE = "refuse"  # CONNACK 0x05 not authorized, then close
    DROP = "drop"  # close the connection without a CONNACK


class DisconnectReason(StrEnum):
    """The ``disconnectReason`` values of AWS IoT lifecycle events."""

    CLIENT_INITIATED_DISCONNECT = "CLIENT_INITIATED_DISCONNECT"
    CONNECTION_LOST = "CONNECTION_LOST"
    DUPLICATE_CLIENTID = "DUPLICATE_CLIENTID"
    AUTHORIZATION_ERROR = "AUTHORIZATION_ERROR"
    SERVER_INITIATED_DISCONNECT = "SERVER_INITIATED_DISCONNECT"
    MQTT_KEEP_ALIVE_TIMEOUT = "MQTT_KEEP_ALIVE_TIMEOUT"


@dataclass(eq=False)
class SessionInfo:
    """One client connection as the hooks see it."""

    client_id: str
    remote_address: tuple[str, int]
    certificate_chain: tuple[bytes, ...] = ()  # DER, leaf first, as the client sent it
    sni: str | None = None
    username: str | None = None
    clean_session: bool = True
    transport: str = "mqtt"  # or "websocket": MQTT over WebSocket, authenticated by on_websocket
    session_identifier: str = field(default_factory=lambda: str(uuid.uuid4()))
    connected_at_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    disconnect_reason: DisconnectReason | None = None
    attributes: dict[str, Any] = field(default_factory=dict)  # for the hooks: principal, thing name, policies

    @property
    def certificate(self) -> bytes | None:
        """The client's own certificate (DER), if it sent one."""
        return self.certificate_chain[0] if self.certificate_chain else None


@dataclass
class BrokerHooks:
    """The broker's callbacks, described in this module's docstring; one left None allows everything."""

    on_connect: Callable[[SessionInfo], Any] | None = None
    on_connected: Callable[[SessionInfo], Any] | None = None
    on_publish: Callable[[SessionInfo, str, bytes, int, bool], Any] | None = None
    on_subscribe: Callable[[SessionInfo, str], Any] | None = None
    can_receive: Callable[[SessionInfo, str], Any] | None = None
    on_message: Callable[[SessionInfo | None, str, bytes], Any] | None = None
    on_request: Callable[[SessionInfo, str, bytes], list[tuple[str, bytes]] | None] | None = None
    on_disconnect: Callable[[SessionInfo], Any] | None = None
    on_websocket: Callable[[Any], dict[str, Any] | None] | None = None


class HookDispatch:
    """Calls the hooks: decisions inline or in a pool, events in order on one worker thread."""

    def __init__(self, hooks: BrokerHooks, loop: asyncio.AbstractEventLoop, connect_workers: int) -> None:
        self.hooks = hooks
        self._loop = loop
        self._connect_pool = ThreadPoolExecutor(connect_workers, thread_name_prefix="mqtt-connect")
        self._request_pool = ThreadPoolExecutor(REQUEST_WORKERS, thread_name_prefix="mqtt-request")
        self._events = _EventThread()
        self.tasks: set[asyncio.Task] = set()

    async def decide(self, info: SessionInfo) -> ConnectDecision:
        hook = self.hooks.on_connect
        if hook is None:
            return ConnectDecision.ACCEPT
        try:
            if inspect.iscoroutinefunction(hook):
                return ConnectDecision(await hook(info))
            return ConnectDecision(await self._loop.run_in_executor(self._connect_pool, hook, info))
        except Exception:
            log.exception("on_connect failed for client %s; refusing it", info.client_id)
            return ConnectDecision.REFUSE

    async def authorize_websocket(self, request: Any) -> dict[str, Any] | None:
        """``on_websocket``'s attributes for an upgrade request, or None to refuse it (also when no hook is set)."""
        hook = self.hooks.on_websocket
        if hook is None:
            return None
        try:
            if inspect.iscoroutinefunction(hook):
                return await hook(request)
            return await self._loop.run_in_executor(self._connect_pool, hook, request)
        except Exception:
            log.exception("on_websocket failed; refusing the upgrade")
            return None

    async def answer(self, info: SessionInfo, topic: str, payload: bytes) -> list[tuple[str, bytes]] | None:
        """``on_request``'s answers to a publish (None: not a topic it serves). A failing hook answers nothing."""
        hook = self.hooks.on_request
        if hook is None:
            return None
        try:
            if inspect.iscoroutinefunction(hook):
                return await hook(info, topic, payload)
            return await self._loop.run_in_executor(self._request_pool, hook, info, topic, payload)
        except Exception:
            log.exception("on_request failed for client %s on %s", info.client_id, topic)
            return []

    async def allowed(self, hook: Callable[..., Any] | None, *args: Any) -> bool:
        if hook is None:
            return True
        try:
            result = hook(*args)
            return bool(await result if inspect.isawaitable(result) else result)
        except Exception:
            log.exception("%s failed; denying", getattr(hook, "__name__", hook))
            return False

    def notify(self, hook: Callable[..., Any] | None, *args: Any) -> None:
        if hook is None:
            return
        if inspect.iscoroutinefunction(hook):
            task = self._loop.create_task(hook(*args))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        self._events.put(hook, args)

    def close(self) -> None:
        self._connect_pool.shutdown(wait=False, cancel_futures=True)
        self._request_pool.shutdown(wait=False, cancel_futures=True)
        self._events.close()


class _EventThread:
    """Runs event hooks one after another, in the order given, on one thread of its own.

    A queue and a thread rather than a one-thread executor, which would make a Future for every message.
    Once closed, what was queued before still runs; what comes after is dropped (the broker is stopping).
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mqtt-events", daemon=True)
        self._thread.start()

    def put(self, hook: Callable[..., Any], args: tuple) -> None:
        if not self._closed:
            self._queue.put((hook, args))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            hook, args = item
            try:
                hook(*args)
            except Exception:
                log.exception("%s failed", getattr(hook, "__name__", hook))

    def close(self) -> None:
        self._closed = True
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join()
