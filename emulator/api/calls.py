"""One IoT call as the emulator's handlers see it, and the JSON they answer with.

AWS IoT is a REST-JSON API: parameters come in the path (``/cacertificate/{caCertificateId}``),
the query string (``?setAsActive=true``) and a JSON body; answers are JSON with timestamps as
epoch seconds, and errors carry their code in the ``x-amzn-ErrorType`` header, which is where
botocore reads ``Error.Code`` from.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, overload

from emulator.api.quotas import Quotas
from emulator.store.backends import iot_arn, iot_backend
from emulator.store.errors import InvalidRequest, IotServiceError
from emulator.store.state import RegionState

DEFAULT_REGION = "us-east-1"
T = TypeVar("T")


@dataclass
class RegionServices:
    """What serves one region beside the AWS API: its MQTT endpoint, its broker's publish (the data plane's
    HTTP Publish), and the Lambda runtime that runs its functions."""

    mqtt_endpoint: tuple[str, int] | None = None
    data_publish: Callable[[str, bytes, int, bool], None] | None = None
    lambda_runtime: Any = None
    # told of a certificate's new status (UpdateCertificate), so the broker can close its connections
    certificate_changed: Callable[[str, str], int] | None = None


class ApiSettings:
    """Server settings the handlers read, such as the MQTT endpoint DescribeEndpoint answers.

    ``api_url`` is where the endpoint listens (set once it does): registration tasks link their
    reports there. ``quotas`` are the per-API limits, which work the emulator does in the
    background (a registration task's calls) spends like API callers do.

    ``regions`` holds the services of each region the emulator serves (``jitr local up --region R``,
    repeatable), as AWS has a data endpoint and a Lambda service per region. Without any (an API
    endpoint alone, as some tests run it), ``mqtt_endpoint``, ``data_publish`` and ``lambda_runtime``
    serve every region.
    """

    def __init__(
        self, mqtt_endpoint: tuple[str, int] | None = None, *, quotas: Quotas | None = None, api_url: str | None = None
    ) -> None:
        self.mqtt_endpoint = mqtt_endpoint
        self.quotas = quotas
        self.api_url = api_url
        # the broker's publish (topic, payload, qos, retain), for the data plane's HTTP Publish; None: no broker
        self.data_publish: Callable[[str, bytes, int, bool], None] | None = None
        self.lambda_runtime: Any = None  # the Lambda runtime that runs Invoke requests, once it is up
        self.local_info: dict[str, Any] | None = None  # where the emulator's services are (GET /_jitr/info)
        self.regions: dict[str, RegionServices] = {}

    def services(self, region: str) -> RegionServices | None:
        """What serves ``region``; None when the emulator serves other regions only."""
        if not self.regions:
            return RegionServices(self.mqtt_endpoint, self.data_publish, self.lambda_runtime)
        return self.regions.get(region)

    def not_served(self, region: str) -> str:
        """The sentence for a request in a region the emulator does not serve."""
        served = ", ".join(self.regions)
        return f"The emulator serves {served}, not {region}; start it with --region {region} as well."


@dataclass(frozen=True)
class Answer:
    """A JSON answer with a status and extra headers (most handlers just return a dict)."""

    body: Mapping[str, Any] = field(default_factory=dict)
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


DELEGATE = object()  # returned by a handler that leaves the call to moto after all


@dataclass(frozen=True)
class Call:
    """An IoT operation addressed to the emulator, its parameters already split out."""

    operation: str
    account: str
    region: str
    path: Mapping[str, str]
    query: Mapping[str, str]
    body: Mapping[str, Any]
    state: RegionState
    settings: ApiSettings
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names, such as x-amzn-principal

    @property
    def backend(self):
        """moto's IoT backend for this account and region."""
        return iot_backend(self.account, self.region)

    def arn(self, resource: str) -> str:
        return iot_arn(self.region, self.account, resource)

    def flag(self, name: str) -> bool | None:
        """A boolean query parameter (``true``/``false``), or None when absent."""
        value = self.query.get(name)
        if value is None:
            return None
        if value.lower() not in ("true", "false"):
            raise InvalidRequest(f"{name} must be true or false, not {value!r}.")
        return value.lower() == "true"

    @overload
    def text(self, name: str, *, required: Literal[True], max_length: int | None = None) -> str: ...

    @overload
    def text(self, name: str, *, required: bool = False, max_length: int | None = None) -> str | None: ...

    def text(self, name: str, *, required: bool = False, max_length: int | None = None) -> str | None:
        """A string member of the JSON body (required: present, or InvalidRequestException)."""
        value = self.body.get(name)
        if value is None:
            if required:
                raise InvalidRequest(f"{name} is required.")
            return None
        if not isinstance(value, str):
            raise InvalidRequest(f"{name} must be a string.")
        if max_length is not None and len(value) > max_length:
            raise InvalidRequest(f"{name} is {len(value)} characters; at most {max_length} are allowed.")
        return value

    def query_int(self, name: str, default: int, *, low: int, high: int) -> int:
        """An integer query parameter within [low, high], such as ``pageSize``."""
        value = self.query.get(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise InvalidRequest(f"{name} must be an integer, not {value!r}.") from None
        if not low <= number <= high:
            raise InvalidRequest(f"{name} must be between {low} and {high}.")
        return number


Handler = Callable[[Call], "Mapping[str, Any] | Answer | object"]


def page(items: Sequence[T], token: str | None, size: int) -> tuple[list[T], str | None]:
    """One page of ``items`` and the token of the next (the base64 of an offset), or None at the end."""
    start = 0
    if token:
        try:
            start = int(base64.b64decode(token, validate=True).decode())
        except ValueError:
            raise InvalidRequest("The pagination token is not valid.") from None
    end = start + size
    return list(items[start:end]), base64.b64encode(str(end).encode()).decode() if end < len(items) else None


def walk_page(
    values: Callable[[], Iterable[T]], token: str | None, size: int, key: Callable[[T], str]
) -> tuple[list[T], str | None]:
    """One page of a long sequence (``values()`` gives it afresh, walked lazily: a page costs its offset, not
    the whole sequence's copy) and the next page's token, which holds the offset and the key of the last item given.
    When items came or went before that offset, the last item is looked for again, so no item is given
    twice or skipped; a token whose item is gone altogether is refused."""
    offset, last = 0, None
    if token:
        try:
            decoded = json.loads(base64.b64decode(token, validate=True))
            offset, last = int(decoded["o"]), str(decoded["k"])
        except (ValueError, KeyError, TypeError):
            raise InvalidRequest("The pagination token is not valid.") from None
    items = iter(values())
    if offset:
        previous = next(itertools.islice(items, offset - 1, None), None)
        if previous is None or key(previous) != last:  # the sequence changed under the token: find the item
            items, offset = iter(values()), 0
            for item in items:
                offset += 1
                if key(item) == last:
                    break
            else:
                raise InvalidRequest("The pagination token is no longer valid: start the listing again.")
    found = list(itertools.islice(items, size + 1))
    if len(found) <= size:
        return found, None
    found = found[:size]
    following = {"o": offset + size, "k": key(found[-1])}
    return found, base64.b64encode(json.dumps(following).encode()).decode()


def epoch(value: dt.datetime) -> float:
    """Epoch seconds; moto's naive datetimes are UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return epoch(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _headers(extra: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", str(uuid.uuid4()))]
    return headers + list((extra or {}).items())


def json_response(answer: Answer) -> tuple[int, list[tuple[str, str]], bytes]:
    body = json.dumps(answer.body, default=_encode).encode() if answer.body else b"{}"
    return answer.status, _headers(answer.headers), body


def error_response(error: IotServiceError) -> tuple[int, list[tuple[str, str]], bytes]:
    """AWS's REST-JSON error: code in ``x-amzn-ErrorType`` (and ``__type``), text in ``message``."""
    body = {"__type": error.code, **error.body()}
    return error.status, _headers({"x-amzn-ErrorType": f"{error.code}:"}), json.dumps(body, default=_encode).encode()
