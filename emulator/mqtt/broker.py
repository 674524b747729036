"""The emulator's MQTT endpoint: amqtt over TLS with client certificates, behaving like AWS IoT Core.

The broker itself knows nothing of certificates' status, policies or rules: it asks a :class:`BrokerHooks`
(see :mod:`emulator.mqtt.hooks` for what each hook is asked, when, and on which thread).

AWS IoT Core's own rules, and the amqtt internals this ties to, live in :mod:`emulator.mqtt.aws_broker`;
:class:`Broker` runs that server on an event loop thread of its own for synchronous callers.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from pathlib import Path
from typing import Any

from base.errors import JitrError
from emulator.mqtt import tls
from emulator.mqtt.aws_broker import _AwsIotBroker
from emulator.mqtt.hooks import BrokerHooks, ConnectDecision, DisconnectReason, HookDispatch, SessionInfo
from emulator.mqtt.topics import is_wildcard

__all__ = ["Broker", "BrokerHooks", "BrokerNotRunningError", "ConnectDecision", "DisconnectReason", "SessionInfo"]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class BrokerNotRunningError(JitrError):
    """The MQTT broker is not running."""


class Broker:
    """The MQTT/TLS endpoint on 127.0.0.1, run on its own event loop thread for synchronous callers.

    ``Broker(hooks, state_dir=...)``; :meth:`start` returns once it listens on :attr:`port` (0 picks a free
    one) and has written ``endpoint-ca.pem`` (:attr:`ca_file`) for clients to trust; :meth:`stop` closes it.
    """

    def __init__(
        self, hooks: BrokerHooks | None = None, *, state_dir: Path, port: int = 0, connect_workers: int = 8
    ) -> None:
        self.hooks = hooks or BrokerHooks()
        self.state_dir = Path(state_dir)
        self._requested_port = port
        self._connect_workers = connect_workers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: _AwsIotBroker | None = None
        self._dispatch: HookDispatch | None = None
        self.port: int | None = None
        self.ca_file: Path | None = None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        if self._server is not None:
            raise JitrError("The MQTT broker is already running.")
        pki = tls.endpoint_pki(self.state_dir)
        context = tls.server_context(pki)
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet_client_errors)
        thread = threading.Thread(target=loop.run_forever, name="mqtt-broker", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._server = asyncio.run_coroutine_threadsafe(self._start(context), loop).result(timeout)
        except BaseException:
            self._stop_loop()
            raise
        self.port, self.ca_file = self._server.port, pki.ca_file
        log.info("MQTT broker listening on %s:%s (TLS, CA %s)", LOOPBACK, self.port, pki.ca_file)

    async def _start(self, context: Any) -> _AwsIotBroker:
        self._dispatch = HookDispatch(self.hooks, asyncio.get_running_loop(), self._connect_workers)
        config = {
            # plain TCP: _AwsIotBroker starts TLS on each connection itself, with a handshake timeout
            "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{self._requested_port}", "ssl": False}},
            "plugins": {},  # no amqtt plugins: the hooks decide
            "session_expiry_interval": 3600,  # AWS IoT keeps persistent sessions for an hour by default
        }
        server = _AwsIotBroker(config, self._dispatch, context)
        await server.start()
        return server

    def stop(self, timeout: float = 30.0) -> None:
        """Disconnect every client, close the listener, flush pending events (which may still publish)."""
        server = self._server
        if server is not None and self._loop is not None:
            try:
                asyncio.run_coroutine_threadsafe(server.shutdown(), self._loop).result(timeout)
            except Exception:
                log.exception("The MQTT broker did not shut down cleanly")
        if self._dispatch is not None:
            self._dispatch.close()
            self._dispatch = None
        self._server = None
        self._stop_loop()
        self.port = None

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)
        loop.close()

    def _run(self, coro: Any, timeout: float = 10.0, *, wait: bool = True) -> Any:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            coro.close()
            raise BrokerNotRunningError("The MQTT broker is not running.")
        if threading.current_thread() is self._thread:  # from an async hook: cannot wait for ourselves
            task = loop.create_task(coro)
            dispatch = self._dispatch
            assert dispatch is not None  # set before the loop runs, cleared after it stops
            dispatch.tasks.add(task)
            task.add_done_callback(dispatch.tasks.discard)
            return None
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        if not wait:
            future.add_done_callback(_log_failure)
            return None
        return future.result(timeout)

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False, *, wait: bool = True
    ) -> None:
        """Publish as the emulator (``$aws/events/...``, rule republish): no policy check, rules see it.

        With ``wait=False`` it returns once the message is queued on the broker's loop, where it keeps its
        place among the caller's queued publishes: what the emulator's own hooks use, so that a connect or an
        event never waits for the loop, which is busy with every client's traffic. A message no client
        subscribes to skips the loop and goes to the rules at once, so it may overtake one queued before it
        (AWS IoT does not promise an order between messages either).
        """
        if not topic or is_wildcard(topic):
            raise ValueError(f"Cannot publish to {topic!r}: a topic name has no wildcards and is not empty.")
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        server, dispatch = self._server, self._dispatch
        if server is None or dispatch is None:
            raise BrokerNotRunningError("The MQTT broker is not running.")
        hook = dispatch.hooks.on_message
        if not wait and not retain and not inspect.iscoroutinefunction(hook) and not server.has_subscriber(topic):
            dispatch.notify(hook, None, topic, data)  # no subscriber: straight to the rules, as the loop would
            return
        self._run(server.publish_internal(topic, data, qos, retain), wait=wait)

    def disconnect_client(self, client_id: str) -> bool:
        """Close a client's connection (its on_disconnect reason: SERVER_INITIATED_DISCONNECT)."""
        server = self._server
        if server is None:
            return False
        return bool(self._run(server.kick(client_id, DisconnectReason.SERVER_INITIATED_DISCONNECT)))

    def connected_clients(self) -> list[str]:
        """The ids of the clients connected now."""
        server = self._server
        if server is None:
            return []
        return [cid for cid, (s, _h) in list(server.sessions.items()) if s.transitions.is_connected()]


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("A message the emulator published was not routed: %r", future.exception())


def _quiet_client_errors(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """A client failing the TLS handshake, or gone while amqtt still answered it (a PINGRESP for a connection
    that dropped), is the client's affair: log it at INFO, not as an error with a traceback."""
    exception = context.get("exception")
    if "handshake" in str(context.get("message", "")).lower():
        log.info("TLS handshake failed: %s", exception or context.get("message"))
        return
    if exception is not None and "Packet handling was cancelled" in str(exception):
        log.info("A packet for a connection that had closed was not sent: %s", exception)
        return
    loop.default_exception_handler(context)
