"""Requests AWS IoT answers itself over MQTT (the fleet provisioning API's ``$aws/certificates/...`` and
``$aws/provisioning-templates/...``): ``on_request``'s answers, sent to the requesting connection alone.

A mixin of :class:`emulator.mqtt.aws_broker._AwsIotBroker`, on amqtt's subscriptions and delivery as that
module is (amqtt's internals stay in ``emulator/mqtt/``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from amqtt.contexts import Action

from emulator.mqtt.hooks import SessionInfo
from emulator.mqtt.topics import MAX_QOS, is_wildcard

log = logging.getLogger(__name__)

SERVICE_PREFIXES = ("$aws/certificates/", "$aws/provisioning-templates/")  # requests AWS IoT answers itself


class ServiceRequests:
    """The broker's answers to requests on AWS IoT's own topics."""

    async def _serve(self, info: SessionInfo, topic: str, payload: bytes) -> list[tuple[str, bytes]] | None:
        """A request to AWS IoT itself (the fleet provisioning MQTT API): ``on_request``'s answers, or None when
        the topic is not one it serves (then the message is routed as any other)."""
        if not topic.startswith(SERVICE_PREFIXES):
            return None
        broker: Any = self
        return await broker.dispatch.answer(info, topic, payload)

    async def _answer(self, session: Any, handler: Any, topic: str, payload: bytes) -> None:
        """An answer to this connection alone (AWS: "through the same MQTT connection used to publish the
        request"), if it subscribes to a filter matching ``topic`` and may receive it; else it is lost, as
        AWS IoT's documentation warns a client that publishes before it subscribes."""
        broker: Any = self
        granted = [
            qos
            for topic_filter, subscriptions in list(broker._subscriptions.items())
            if topic_filter == topic or (is_wildcard(topic_filter) and broker._matches(topic, topic_filter))
            for subscriber, qos in subscriptions
            if subscriber is session
        ]
        if not granted or not await broker._topic_filtering(session, topic, Action.RECEIVE):
            log.info("Client %s does not subscribe to %s: its answer is dropped", session.client_id, topic)
            return
        delivery = asyncio.ensure_future(handler.mqtt_publish(topic, payload, min(max(granted), MAX_QOS), retain=False))
        broker._background.add(delivery)
        delivery.add_done_callback(broker._delivered)
