"""The data plane's HTTP Publish (``aws iot-data publish``, boto3's ``iot-data`` client): into the broker.

AWS IoT Core takes ``POST /topics/{topic}?qos=&retain=`` signed with SigV4 (service ``iotdata``) and
delivers the payload as an MQTT message: subscribers receive it and the rules engine sees it, exactly as
a device's publish. moto only records such a message; here it goes to the emulator's broker, which hands
it to subscribers (each one's ``iot:Receive`` is checked) and to the rules.

Authorization: AWS authorizes an HTTP publish by the caller's IAM policy (``iot:Publish`` on the topic's
ARN). The emulator, like moto for every other API, does not evaluate IAM policies: any signed caller
may publish, except to the topics only AWS IoT itself publishes to (``$aws/events/...``), which are
refused. A publish with no broker running is refused rather than dropped.
"""

from __future__ import annotations

from collections.abc import Mapping

from emulator.api.calls import ApiSettings
from emulator.store.errors import Forbidden, InvalidRequest, RequestEntityTooLarge, ServiceUnavailable

TOPIC_PREFIX = "/topics/"
MAX_PAYLOAD = 128 * 1024  # AWS IoT Core's message size limit
MAX_TOPIC_BYTES = 256
RESERVED_PREFIXES = ("$aws/events/",)  # published by AWS IoT itself


def is_publish(method: str, path: str) -> bool:
    return method == "POST" and path.startswith(TOPIC_PREFIX) and len(path) > len(TOPIC_PREFIX)


def publish(path: str, query: Mapping[str, str], payload: bytes, settings: ApiSettings, region: str) -> dict:
    """Deliver one HTTP-published message as the broker delivers an MQTT one; AWS's empty answer."""
    topic = path[len(TOPIC_PREFIX) :]
    if len(topic.encode()) > MAX_TOPIC_BYTES or "+" in topic or "#" in topic or not topic.strip("/"):
        raise InvalidRequest(f"Invalid topic name {topic!r}: at most 256 bytes, without wildcards.")
    if topic.startswith(RESERVED_PREFIXES):
        raise Forbidden(f"Publishing to {topic} is not allowed: AWS IoT publishes to $aws/events/ itself.")
    if len(payload) > MAX_PAYLOAD:
        raise RequestEntityTooLarge(f"The payload is {len(payload)} bytes; AWS IoT takes at most {MAX_PAYLOAD}.")
    qos = query.get("qos", "0")
    if qos not in ("0", "1"):
        raise InvalidRequest(f"Invalid qos {qos!r}: AWS IoT takes 0 or 1.")
    retain = query.get("retain", "false").lower() == "true"
    services = settings.services(region)
    if services is None:
        raise ServiceUnavailable(settings.not_served(region))
    if services.data_publish is None:
        raise ServiceUnavailable("The emulator's MQTT broker is not running; the message cannot be delivered.")
    try:
        services.data_publish(topic, payload, int(qos), retain)
    except Exception as exc:  # the broker stopped meanwhile, or timed out: not delivered, and said so
        raise ServiceUnavailable(f"The message to {topic} could not be delivered: {str(exc).rstrip('.')}.") from exc
    return {}
