"""What AWS IoT Core allows of topics and QoS, for the broker's modules."""

from __future__ import annotations

MAX_QOS = 1  # AWS IoT Core speaks QoS 0 and 1; QoS 2 publishes are refused, subscriptions granted QoS 1


def is_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter
