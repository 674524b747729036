"""Lambda proxy integration payloads: the event API Gateway sends and the answer it makes of the result.

Format 2.0 (HTTP APIs' default) and 1.0 (REST APIs, and HTTP APIs that ask for it), as the API
Gateway developer guide's "Working with AWS Lambda proxy integrations" describes them: headers
lowercased and joined by commas in 2.0, last value plus ``multiValue*`` lists in 1.0; absent (2.0) or
null (1.0) fields when a request has no query string, path parameters or body; binary bodies base64.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from emulator.store.gateway import Route

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "application/x-www-form")


@dataclass
class Request:
    """One HTTP request as the gateway received it, the API's prefix and stage taken off its path."""

    method: str
    path: str  # the path the route is matched against: /devices/abc
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    api_id: str
    stage: str
    request_id: str
    domain: str
    account_id: str
    protocol: str = "HTTP/1.1"
    started: float = field(default_factory=time.time)

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ",".join(values) if values else None


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def message(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> Response:
    """API Gateway's own answers: ``{"message": "..."}`` with the status."""
    return Response(
        status, [("Content-Type", "application/json"), *(headers or [])], json.dumps({"message": text}).encode()
    )


def _body(request: Request) -> tuple[str | None, bool]:
    if not request.body:
        return None, False
    kind = (request.header("content-type") or "").lower()
    textual = kind.startswith(_TEXT_TYPES) or kind.endswith(("+json", "+xml")) or not kind
    if textual:
        try:
            return request.body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(request.body).decode(), True


def source_arn(request: Request, region: str) -> str:
    """The execute-api ARN the invocation comes from, which the function's resource policy must allow."""
    resource = f"{request.api_id}/{request.stage}/{request.method}{request.path}"
    return f"arn:aws:execute-api:{region}:{request.account_id}:{resource}"


def _request_time(started: float) -> str:
    return dt.datetime.fromtimestamp(started, dt.UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def event_v2(
    request: Request, route: Route, parameters: Mapping[str, str], claims: Mapping[str, str] | None, variables: dict
) -> dict[str, Any]:
    """Payload format 2.0."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            cookies += [part.strip() for part in value.split(";") if part.strip()]
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(request.raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    body, encoded = _body(request)
    stage = request.stage
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": request.path if stage == "$default" else f"/{stage}{request.path}",
        "rawQueryString": request.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": request.account_id,
            "apiId": request.api_id,
            "domainName": request.domain,
            "domainPrefix": request.domain.split(".")[0],
            "http": {
                "method": request.method,
                "path": request.path if stage == "$default" else f"/{stage}{request.path}",
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request.request_id,
            "routeKey": route.route_key,
            "stage": stage,
            "time": _request_time(request.started),
            "timeEpoch": int(request.started * 1000),
        },
        "isBase64Encoded": encoded,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if parameters:
        event["pathParameters"] = dict(parameters)
    if variables:
        event["stageVariables"] = dict(variables)
    if body is not None:
        event["body"] = body
    if claims is not None:
        scopes = claims.get("scope")
        event["requestContext"]["authorizer"] = {
            "jwt": {"claims": dict(claims), "scopes": scopes.split() if scopes else None}
        }
    return event


def event_v1(request: Request, route: Route, parameters: Mapping[str, str], claims: Any, variables: dict) -> dict:
    """Payload format 1.0 (REST APIs' proxy integration)."""
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(request.raw_query, keep_blank_values=True):
        query[name] = value
        multi_query.setdefault(name, []).append(value)
    body, encoded = _body(request)
    path = request.path if request.stage == "$default" else f"/{request.stage}{request.path}"
    context: dict[str, Any] = {
        "accountId": request.account_id,
        "apiId": request.api_id,
        "domainName": request.domain,
        "domainPrefix": request.domain.split(".")[0],
        "extendedRequestId": request.request_id,
        "httpMethod": request.method,
        "identity": {
            "sourceIp": request.source_ip,
            "userAgent": request.header("user-agent"),
        },
        "path": path,
        "protocol": request.protocol,
        "requestId": request.request_id,
        "requestTime": _request_time(request.started),
        "requestTimeEpoch": int(request.started * 1000),
        "resourceId": route.resource_id or route.route_key,
        "resourcePath": route.path,
        "stage": request.stage,
    }
    if claims is not None:
        context["authorizer"] = {"claims": dict(claims), "scopes": None}
    return {
        "version": "1.0",
        "resource": route.path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(parameters) or None,
        "stageVariables": dict(variables) or None,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": encoded,
    }


class MalformedResult(ValueError):
    """The function answered something API Gateway cannot turn into an HTTP response."""


def _as_body(result: Mapping[str, Any]) -> bytes:
    body = result.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        body = json.dumps(body)
    if result.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise MalformedResult("isBase64Encoded but the body is not base64") from exc
    return body.encode()


def _status(result: Mapping[str, Any]) -> int:
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError) as exc:
        raise MalformedResult("statusCode is not a number") from exc
    if not 100 <= status <= 599:
        raise MalformedResult("statusCode is not an HTTP status")
    return status


def _headers(result: Mapping[str, Any], multi: bool) -> list[tuple[str, str]]:
    headers = result.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise MalformedResult("headers is not an object")
    out = [(str(k), str(v)) for k, v in headers.items()]
    if multi:
        for name, values in (result.get("multiValueHeaders") or {}).items():
            out = [item for item in out if item[0].lower() != str(name).lower()]
            out += [(str(name), str(v)) for v in (values if isinstance(values, list) else [values])]
    return out


def response_v2(result: Any) -> Response:
    """The HTTP API's answer to a 2.0 result: a ``statusCode`` object, or any JSON (200 application/json)."""
    if not isinstance(result, Mapping) or "statusCode" not in result:
        return Response(200, [("Content-Type", "application/json")], json.dumps(result).encode())
    headers = _headers(result, multi=False)
    headers += [("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or []]
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return Response(_status(result), headers, _as_body(result))


def response_v1(result: Any) -> Response:
    """The REST API's answer to a 1.0 result, which must be an object with ``statusCode``."""
    if not isinstance(result, Mapping) or "statusCode" not in result:
        raise MalformedResult("the result has no statusCode")
    headers = _headers(result, multi=True)
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return Response(_status(result), headers, _as_body(result))
