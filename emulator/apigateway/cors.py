"""CORS on HTTP APIs, as API Gateway's guide describes it: with a ``CorsConfiguration``, preflight
``OPTIONS`` requests are answered by API Gateway itself (no route needed), and every answer to a
request with an allowed ``Origin`` carries the configured headers, replacing any the integration sent.

A preflight is an ``OPTIONS`` request with ``Origin`` and ``Access-Control-Request-Method``. It is
answered 204 here unless an explicit ``OPTIONS`` route or the ``$default`` route matches it (the
guide's note: ``$default`` catches OPTIONS too); the CORS headers are given only when the origin and
the method are allowed, so a browser blocks what the configuration does not allow. REST APIs' CORS is
OPTIONS methods with mock integrations, which the emulator refuses at deploy.
"""

from __future__ import annotations

from collections.abc import Iterable

from emulator.apigateway.payloads import Request, Response
from emulator.store.gateway import Cors

_ORIGIN, _REQUEST_METHOD = "origin", "access-control-request-method"


def _header(request: Request, name: str) -> str | None:
    return next((value for key, value in request.headers if key.lower() == name), None)


def is_preflight(request: Request) -> bool:
    return request.method == "OPTIONS" and bool(_header(request, _ORIGIN)) and bool(_header(request, _REQUEST_METHOD))


def _allowed_origin(cors: Cors, origin: str | None) -> str | None:
    """What ``Access-Control-Allow-Origin`` answers for ``origin``: ``*``, the origin itself, or None (not allowed)."""
    if not origin:
        return None
    for allowed in cors.allow_origins:
        if allowed == "*":
            return origin if cors.allow_credentials else "*"
        if allowed.endswith("://*") and origin.lower().startswith(allowed[:-1].lower()):
            return origin
        if allowed.lower() == origin.lower():
            return origin
    return None


def _listed(values: Iterable[str], value: str) -> bool:
    return any(item == "*" or item.upper() == value.upper() for item in values)


def preflight(cors: Cors, request: Request) -> Response:
    """API Gateway's own answer to a preflight request."""
    origin = _allowed_origin(cors, _header(request, _ORIGIN))
    method = _header(request, _REQUEST_METHOD) or ""
    headers: list[tuple[str, str]] = []
    if origin is not None and _listed(cors.allow_methods, method):
        headers.append(("Access-Control-Allow-Origin", origin))
        headers.append(("Access-Control-Allow-Methods", ",".join(cors.allow_methods)))
        if cors.allow_headers:
            headers.append(("Access-Control-Allow-Headers", ",".join(cors.allow_headers)))
        if cors.max_age is not None:
            headers.append(("Access-Control-Max-Age", str(cors.max_age)))
        if cors.allow_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
    return Response(204, headers, b"")


def decorate(cors: Cors, request: Request, answer: Response) -> Response:
    """``answer`` with the configured CORS headers for an allowed origin; the integration's own are dropped."""
    kept = [(k, v) for k, v in answer.headers if not k.lower().startswith("access-control-")]
    origin = _allowed_origin(cors, _header(request, _ORIGIN))
    if origin is not None:
        kept.append(("Access-Control-Allow-Origin", origin))
        if cors.expose_headers:
            kept.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
        if cors.allow_credentials:
            kept.append(("Access-Control-Allow-Credentials", "true"))
    return Response(answer.status, kept, answer.body)
