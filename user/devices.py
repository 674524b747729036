"""The users API as the signed-in user calls it: whether a device registered, bindings, and credentials.

Every request carries the user's ID token (``Authorization``); the API's refusals come back as its own
sentence (:class:`base.http.ApiRefusedError`, exit 6), silence and 5xx are retried with backoff.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import urllib.parse
from dataclasses import dataclass
from typing import Any

from base.errors import AwsError
from base.http import Requests
from base.names import check_thing_name


@dataclass(frozen=True)
class Credentials:
    """Temporary AWS credentials that reach the user's devices, and where to use them."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: dt.datetime
    iot_endpoint: str
    region: str
    client_id_prefix: str
    topic_root: str
    things: tuple[str, ...]

    @classmethod
    def of(cls, answer: dict[str, Any]) -> Credentials:
        try:
            return cls(
                access_key_id=answer["accessKeyId"],
                secret_access_key=answer["secretAccessKey"],
                session_token=answer["sessionToken"],
                expiration=dt.datetime.fromisoformat(answer["expiration"]),
                iot_endpoint=answer["iotEndpoint"],
                region=answer["region"],
                client_id_prefix=answer["clientIdPrefix"],
                topic_root=answer["topicRoot"],
                things=tuple(answer["things"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AwsError(f"The users API answered credentials without {exc}.") from None

    def telemetry_topic(self, thing: str) -> str:
        return f"{self.topic_root}/{thing}/telemetry"

    def command_topic(self, thing: str, name: str) -> str:
        return f"{self.topic_root}/{thing}/commands/{name}"


class UsersApi:
    def __init__(self, api: str, id_token: str, requests: Requests | None = None) -> None:
        self.api = api
        self.requests = dataclasses.replace(
            requests or Requests(), headers={"authorization": id_token}, api="The users API"
        )

    def _url(self, *parts: str) -> str:
        return self.api + "/" + "/".join(urllib.parse.quote(part, safe="") for part in parts)

    def registered(self, thing: str) -> bool:
        return bool(self.requests("GET", self._url("devices", check_thing_name(thing), "registration"))["registered"])

    def bind(self, thing: str, code: str) -> dict[str, Any]:
        return self.requests("POST", self._url("bindings"), {"thingName": check_thing_name(thing), "code": code})

    def unbind(self, thing: str) -> dict[str, Any]:
        return self.requests("DELETE", self._url("bindings", check_thing_name(thing)))

    def devices(self) -> list[dict[str, Any]]:
        return list(self.requests("GET", self._url("bindings")).get("devices", []))

    def credentials(self, things: list[str] | None = None) -> Credentials:
        body = {"things": [check_thing_name(t) for t in things]} if things else None
        return Credentials.of(self.requests("POST", self._url("credentials"), body))
