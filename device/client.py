"""One device's first connect: connect (retrying while its certificate is being activated), publish, report.

:func:`run_device` never raises for what happens on the wire: it returns a :class:`DeviceResult`
with every attempt, the time to the first accepted publish, and, on failure, the
:class:`~device.errors.DeviceError` that says why (``result.raise_for_error()`` raises it). Whether an
attempt's end is worth retrying is decided in :mod:`device.attempts`.

paho-mqtt 2.x (``CallbackAPIVersion.VERSION2``, MQTT 3.1.1, clean session) is driven from the calling
thread (:mod:`device.wire`), so a fleet runs one device per worker thread with no paho threads.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from base.backoff import Backoff
from base.errors import InvalidInputError, JitrError
from base.names import DEFAULT_TOPIC_ROOT  # a stack's devices: its DeviceTopicRoot output, devices/<stack>
from device.attempts import Attempt, Outcome, exhausted, failure
from device.endpoint import Endpoint
from device.errors import EndpointUnreachableError, PolicyDeniedError
from device.identity import DeviceIdentity
from device.tls import client_context
from device.wire import Connection, open_connection


@dataclass(frozen=True)
class ConnectOptions:
    """How patient a device is. Times are in seconds."""

    backoff: Backoff = field(default_factory=Backoff)
    refusals_tolerated: int = 1  # CONNACK "not authorized" answers retried before the certificate counts as refused
    connect_timeout: float = 10.0  # TCP connect and TLS handshake
    connack_timeout: float = 10.0  # CONNECT sent to CONNACK
    puback_timeout: float = 10.0  # PUBLISH sent to PUBACK
    linger: float = 0.1  # after the last PUBACK: a close this soon is a denied publish (acked, then enforced)
    keepalive: int = 60

    def __post_init__(self) -> None:
        if self.refusals_tolerated < 0:
            raise InvalidInputError("The number of tolerated refusals cannot be negative.")
        if min(self.connect_timeout, self.connack_timeout, self.puback_timeout) <= 0:
            raise InvalidInputError("Timeouts must be more than 0 seconds.")


@dataclass(frozen=True)
class Messages:
    """What a device publishes (QoS 1) once connected: ``count`` messages, ``interval`` seconds apart."""

    count: int = 1
    topic: str | None = None  # default: <topic_root>/<thing>/telemetry
    topic_root: str = DEFAULT_TOPIC_ROOT
    payload: bytes | None = None  # default: a JSON sample {"thingName", "seq", "timestamp"}
    interval: float = 0.0

    def __post_init__(self) -> None:
        if self.count < 0:
            raise InvalidInputError("The number of messages cannot be negative.")
        if self.interval < 0:
            raise InvalidInputError("The interval between messages cannot be negative.")
        if self.topic is not None and (not self.topic or "+" in self.topic or "#" in self.topic):
            raise InvalidInputError(f"{self.topic!r} is not a topic to publish to: it is empty or has a wildcard.")
        root_levels = self.topic_root.split("/")
        if not all(root_levels) or any(level in ("+", "#") for level in root_levels):
            raise InvalidInputError(f"{self.topic_root!r} is not a topic root: it has an empty level or a wildcard.")

    def topic_for(self, thing: str) -> str:
        return self.topic or f"{self.topic_root}/{thing}/telemetry"

    def payload_for(self, thing: str, seq: int) -> bytes:
        if self.payload is not None:
            return self.payload
        return json.dumps({"thingName": thing, "seq": seq, "timestamp": int(time.time() * 1000)}).encode()


@dataclass
class DeviceResult:
    """What happened to one device."""

    thing_name: str
    client_id: str
    endpoint: str
    topic: str
    attempts: list[Attempt] = field(default_factory=list)
    time_to_connect: float | None = None  # start to the accepted CONNACK
    time_to_first_publish: float | None = None  # start to the first PUBACK
    messages_sent: int = 0
    commands_received: int = 0  # with a listener: messages on <topic root>/<thing>/commands/#
    seconds: float = 0.0
    error: JitrError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def outcome(self) -> str:
        """``published``, ``connected`` (nothing to publish), or the failure's reason."""
        if self.error is not None:
            return reason_of(self.error)
        return "published" if self.messages_sent else "connected"

    def raise_for_error(self) -> None:
        if self.error is not None:
            raise self.error

    def to_dict(self) -> dict:
        error = self.error
        return {
            "thingName": self.thing_name,
            "clientId": self.client_id,
            "endpoint": self.endpoint,
            "topic": self.topic,
            "outcome": self.outcome,
            "attempts": [attempt.to_dict() for attempt in self.attempts],
            "timeToConnect": _round(self.time_to_connect),
            "timeToFirstPublish": _round(self.time_to_first_publish),
            "messagesSent": self.messages_sent,
            "commandsReceived": self.commands_received,
            "seconds": _round(self.seconds),
            "error": None
            if error is None
            else {"reason": self.outcome, "message": str(error), "exitCode": int(error.exit_code)},
        }


def run_device(
    identity: DeviceIdentity,
    endpoint: Endpoint,
    *,
    root_ca: Path | None = None,
    client_id: str | None = None,
    messages: Messages | None = None,
    options: ConnectOptions | None = None,
    on_attempt: Callable[[Attempt], None] | None = None,
    listen: Listen | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
    clock: Callable[[], float] = time.monotonic,
) -> DeviceResult:
    """First-connect ``identity`` to ``endpoint``, retrying while it is being activated, then publish ``messages``;
    with ``listen``, subscribe to the device's commands first and hand each to it, then keep listening."""
    messages = messages or Messages()
    run = _Run(options or ConnectOptions(), on_attempt, sleep, rand, clock)
    client_id = client_id or identity.thing_name
    result = DeviceResult(identity.thing_name, client_id, str(endpoint), messages.topic_for(identity.thing_name))
    connection = None
    try:
        context = client_context(identity, endpoint, root_ca)
        connection = run.connect(context, endpoint, result)
        result.time_to_connect = clock() - run.start
        if listen is not None:
            run.subscribe(connection, listen, messages.topic_root, result)
        run.publish(connection, messages, result)
        if listen is not None:
            run.listen(connection, listen, result)
    except JitrError as exc:
        result.error = exc
    finally:
        if connection is not None:
            connection.close()
        result.seconds = clock() - run.start
    return result


def open_session(
    identity: DeviceIdentity,
    endpoint: Endpoint,
    *,
    root_ca: Path | None = None,
    client_id: str | None = None,
    options: ConnectOptions | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
    clock: Callable[[], float] = time.monotonic,
) -> Connection:
    """An accepted connection of ``identity`` (retried as :func:`run_device` retries), for a device that has
    more to say than telemetry (``jitr device provision``); the caller closes it. Raises a DeviceError."""
    run = _Run(options or ConnectOptions(), None, sleep, rand, clock)
    client_id = client_id or identity.thing_name
    result = DeviceResult(identity.thing_name, client_id, str(endpoint), "")
    return run.connect(client_context(identity, endpoint, root_ca), endpoint, result)


@dataclass(frozen=True)
class Listen:
    """Commands to the device: each message on ``<topic root>/<thing>/commands/#`` handed to ``on_command``,
    for ``seconds`` after the last publish (None: until interrupted)."""

    on_command: Callable[[str, bytes], None]
    seconds: float | None = None

    @staticmethod
    def topic_filter(topic_root: str, thing: str) -> str:
        return f"{topic_root}/{thing}/commands/#"


@dataclass
class _Run:
    """One device's run: its patience, its report callback, its clock; timed from ``start``."""

    options: ConnectOptions
    on_attempt: Callable[[Attempt], None] | None
    sleep: Callable[[float], None]
    rand: Callable[[], float]
    clock: Callable[[], float]
    start: float = field(init=False)

    def __post_init__(self) -> None:
        self.start = self.clock()

    def connect(self, context, endpoint: Endpoint, result: DeviceResult) -> Connection:
        """Attempt until accepted, or until :mod:`device.attempts` says a failure is final."""
        backoff, refusals = self.options.backoff, 0
        for number in range(1, backoff.attempts + 1):
            began = self.clock()
            connection, outcome, detail = open_connection(context, endpoint, result.client_id, self.options, self.clock)
            attempt = Attempt(number, began - self.start, self.clock() - began, outcome, detail)
            result.attempts.append(attempt)
            if outcome is Outcome.ACCEPTED and connection is not None:
                self._report(attempt)
                return connection
            refusals += outcome is Outcome.REFUSED
            error = failure(attempt, refusals, self.options.refusals_tolerated, result.endpoint)
            if error is None and number == backoff.attempts:
                error = exhausted(result.attempts, result.endpoint, self.clock() - self.start)
            if error is None:
                attempt.retry_in = backoff.delay(number - 1, self.rand)
            self._report(attempt)
            if error is not None:
                raise error
            self.sleep(attempt.retry_in or 0.0)
        raise AssertionError("unreachable: the last attempt either connects or fails")

    def _report(self, attempt: Attempt) -> None:
        if self.on_attempt is not None:
            self.on_attempt(attempt)

    def subscribe(self, connection: Connection, listen: Listen, topic_root: str, result: DeviceResult) -> None:
        """Subscribe to the device's commands (QoS 1); a SUBACK failure is the policy's denial."""
        topic_filter = Listen.topic_filter(topic_root, result.thing_name)
        granted: list[int] = []
        client = connection.client
        client.on_subscribe = lambda _c, _u, _mid, codes, _p: granted.extend(code.value for code in codes)

        def deliver(_client: Any, _userdata: Any, message: Any) -> None:
            result.commands_received += 1
            listen.on_command(message.topic, message.payload)

        client.on_message = deliver
        client.subscribe(topic_filter, qos=1)
        if not connection.pump_until(lambda: bool(granted), self.options.puback_timeout):
            raise EndpointUnreachableError(f"{result.endpoint} did not answer the SUBSCRIBE to {topic_filter}.")
        if granted[0] >= SUBACK_FAILURE:
            raise PolicyDeniedError(
                f"{result.endpoint} refused the subscription to {topic_filter}: the certificate's policy does not "
                f"allow client {result.client_id} to subscribe there (iot:Subscribe)."
            )

    def listen(self, connection: Connection, listen: Listen, result: DeviceResult) -> None:
        """Keep the connection (and its keep-alive) going while commands arrive, until the time is up."""
        deadline = None if listen.seconds is None else self.clock() + listen.seconds
        try:
            while not connection.closed and (deadline is None or self.clock() < deadline):
                connection.pump_for(1.0 if deadline is None else min(1.0, max(0.0, deadline - self.clock())))
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: how a listener without a time limit ends
            if deadline is not None:
                raise
            return
        if connection.closed:
            raise EndpointUnreachableError(
                f"{result.endpoint} closed the connection while the device listened for commands."
            )

    def publish(self, connection: Connection, messages: Messages, result: DeviceResult) -> None:
        """Publish at QoS 1, each message waiting for its PUBACK; a close on or right after one is a denial."""
        linger = self.options.linger
        for seq in range(messages.count):
            acked = connection.publish(
                result.topic, messages.payload_for(result.thing_name, seq), self.options.puback_timeout
            )
            if acked is None:
                raise _denied(result)
            if not acked:
                raise EndpointUnreachableError(
                    f"{result.endpoint} did not acknowledge a message on {result.topic} within "
                    f"{self.options.puback_timeout:g} s."
                )
            result.messages_sent += 1
            if result.time_to_first_publish is None:
                result.time_to_first_publish = self.clock() - self.start
            last = seq == messages.count - 1
            wait = messages.interval if not last else 0.0
            if linger:  # a broker that acknowledges first and enforces the policy after: not delivered
                connection.pump_for(linger if last else min(linger, wait))
                if connection.closed:
                    result.messages_sent -= 1
                    result.time_to_first_publish = result.time_to_first_publish if result.messages_sent else None
                    raise _denied(result)
                wait -= min(linger, wait)
            if wait:
                connection.pump_for(wait)
                if connection.closed:
                    raise EndpointUnreachableError(
                        f"{result.endpoint} closed the connection between messages after {result.messages_sent} "
                        f"sent: most likely another connection took client id {result.client_id} (AWS IoT keeps "
                        "the newest connection of a client id and closes the older one); else the certificate "
                        "was deactivated or detached meanwhile."
                    )


SUBACK_FAILURE = 0x80


def _denied(result: DeviceResult) -> PolicyDeniedError:
    return PolicyDeniedError(
        f"{result.endpoint} closed the connection on a publish to {result.topic}: the certificate's policy does not "
        f"allow client {result.client_id} to publish there (iot:Publish)."
    )


def reason_of(error: JitrError) -> str:
    """A short kebab-case reason: a DeviceError's own, else from the class name (MalformedError: ``malformed``)."""
    reason = getattr(error, "reason", None)
    if reason:
        return reason
    name = type(error).__name__.removesuffix("Error") or "error"
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
