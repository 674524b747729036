"""``GET /config``: which region a device should use, from the stack's region map.

The map is an SSM parameter holding JSON (the stack makes it from its RegionMap parameter)::

    {"default": "eu-central-1",
     "countries": {"DE": "eu-central-1", "US": "us-east-1", "US-CA": "us-west-2"},
     "regions": {"us-west-2": {"iotEndpoint": "abc-ats.iot.us-west-2.amazonaws.com",
                               "provisioningUrl": "https://xyz.execute-api.us-west-2.amazonaws.com"}}}

The entry for COUNTRY-STATE wins, then COUNTRY, then ``default`` (absent: the function's own region).
The function's own region needs no entry under ``regions``: its IoT endpoint is DescribeEndpoint's
answer and its provisioning URL the stack's own API. Any other region the map sends devices to must be
listed with both, or the answer is a 500 that names the gap in the log.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
STATE_RE = re.compile(r"^[A-Z0-9]{1,3}$")
PORT_HEADER = "x-jitr-mqtt-port"  # the local emulator's broker port (its DescribeEndpoint answers it there)


class MapError(ValueError):
    """The region map is not usable; the operator must fix the parameter."""


@dataclass(frozen=True)
class Destination:
    region: str
    iot_endpoint: str
    provisioning_url: str

    def as_dict(self) -> dict[str, str]:
        return {"region": self.region, "iotEndpoint": self.iot_endpoint, "provisioningUrl": self.provisioning_url}


def check_place(country: Any, state: Any) -> tuple[str, str | None]:
    """The country (two letters) and optional state, upper-cased; ValueError with the sentence for the device."""
    if not isinstance(country, str) or not COUNTRY_RE.match(country.upper()):
        raise ValueError("country must be a two-letter country code (ISO 3166-1 alpha-2), such as DE.")
    if state in (None, ""):
        return country.upper(), None
    if not isinstance(state, str) or not STATE_RE.match(state.upper()):
        raise ValueError("state must be a subdivision code of one to three letters or digits, such as CA.")
    return country.upper(), state.upper()


def parse_map(text: str | None) -> dict[str, Any]:
    if not text or not text.strip():
        return {}
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise MapError(f"the region map is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise MapError("the region map is not a JSON object")
    for member in ("countries", "regions"):
        if not isinstance(document.get(member, {}), dict):
            raise MapError(f"the region map's {member} is not an object")
    if not isinstance(document.get("default", ""), str):
        raise MapError("the region map's default is not a region name")
    return document


def choose_region(document: dict[str, Any], own_region: str, country: str, state: str | None) -> str:
    countries = document.get("countries") or {}
    for key in ([f"{country}-{state}"] if state else []) + [country]:
        if isinstance(countries.get(key), str):
            return countries[key]
    return document.get("default") or own_region


def destination(
    document: dict[str, Any], region: str, *, own_region: str, own_endpoint: str, own_url: str
) -> Destination:
    listed = (document.get("regions") or {}).get(region)
    if listed is None and region != own_region:
        raise MapError(f"the region map sends devices to {region} but lists no iotEndpoint and provisioningUrl for it")
    listed = listed if isinstance(listed, dict) else {}
    endpoint, url = listed.get("iotEndpoint"), listed.get("provisioningUrl")
    if region == own_region:
        endpoint, url = endpoint or own_endpoint, url or own_url
    if not isinstance(endpoint, str) or not isinstance(url, str) or not endpoint or not url:
        raise MapError(f"the region map's entry for {region} lacks iotEndpoint or provisioningUrl")
    return Destination(region, endpoint, url.rstrip("/"))


def data_endpoint(iot: Any, call: Any) -> str:
    """The account's ATS data endpoint in this region (HOST; HOST:PORT on the local emulator)."""
    answer = call(iot.describe_endpoint, endpointType="iot:Data-ATS")
    port = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get(PORT_HEADER)
    return f"{answer['endpointAddress']}:{port}" if port else answer["endpointAddress"]
