"""MQTT topic filters, as AWS IoT rules use them in ``FROM '<topic filter>'``."""

from __future__ import annotations


def is_valid_topic_filter(topic_filter: str) -> bool:
    """Whether ``topic_filter`` is a valid MQTT filter: ``+`` and ``#`` fill a whole level, ``#`` only the last."""
    levels = topic_filter.split("/")
    if not topic_filter or "\x00" in topic_filter:
        return False
    return all(
        ("#" not in level or (level == "#" and i == len(levels) - 1)) and ("+" not in level or level == "+")
        for i, level in enumerate(levels)
    )


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching: ``+`` is one level, ``#`` the rest (the parent too); a wildcard never matches a leading ``$``.

    So ``'#'`` does not see ``$aws/events/...`` topics: subscribe to them by name, as on AWS IoT.
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels, topic_levels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= len(topic_levels) or level not in ("+", topic_levels[i]):
            return False
    return len(filter_levels) == len(topic_levels)
