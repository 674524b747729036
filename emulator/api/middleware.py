"""The WSGI layer in front of moto: name the IoT operation, apply quotas, answer or delegate.

A request signed for the ``iot`` service is matched, by HTTP method and path, against the
``requestUri`` of every operation in botocore's IoT model (``POST /cacertificate`` is
RegisterCACertificate). Past its quota it is answered ``ThrottlingException``; an operation the
emulator overrides goes to its handler; everything else, and every other service (S3, IAM, ...),
goes to moto unchanged.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl

from emulator.api import data_plane, identity_pools, info, lambda_invoke
from emulator.api.calls import (
    DEFAULT_REGION,
    DELEGATE,
    Answer,
    ApiSettings,
    Call,
    Handler,
    error_response,
    json_response,
)
from emulator.api.quotas import Quotas
from emulator.store.backends import account_id_from, iot_backend
from emulator.store.errors import InvalidRequest, IotServiceError, Throttling
from emulator.store.state import StateStore

log = logging.getLogger(__name__)

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_LABEL = re.compile(r"\{([A-Za-z0-9_]+)(\+?)\}")


@dataclass(frozen=True)
class Route:
    """One IoT operation's HTTP method and path pattern."""

    operation: str
    method: str
    pattern: re.Pattern[str]
    labels: int
    literal: int

    @classmethod
    def compile(cls, operation: str, method: str, request_uri: str) -> Route:
        path = request_uri.split("?", 1)[0]
        regex, literal, last = "", 0, 0
        for label in _LABEL.finditer(path):
            regex += re.escape(path[last : label.start()])
            literal += label.start() - last
            regex += f"(?P<{label.group(1)}>{'.+' if label.group(2) else '[^/]+'})"
            last = label.end()
        regex += re.escape(path[last:])
        literal += len(path) - last
        return cls(operation, method, re.compile(f"^{regex}/?$"), len(_LABEL.findall(path)), literal)


@functools.cache
def iot_routes() -> tuple[Route, ...]:
    """Every IoT operation's route, most specific first (fewest labels, longest literal text)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("iot")
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        routes.append(Route.compile(name, http["method"], http["requestUri"]))
    return tuple(sorted(routes, key=lambda route: (route.labels, -route.literal)))


def iot_operations() -> set[str]:
    return {route.operation for route in iot_routes()}


def match_operation(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The IoT operation a request addresses and its path parameters, or None."""
    for route in iot_routes():
        if route.method == method:
            found = route.pattern.match(path)
            if found:
                return route.operation, found.groupdict()
    return None


@dataclass(frozen=True)
class Signer:
    """Who signed a request, read from its SigV4 credential scope."""

    access_key: str
    region: str
    service: str


def signer_of(environ: Mapping[str, Any]) -> Signer | None:
    found = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    return Signer(*found.groups()) if found else None


def account_of(environ: Mapping[str, Any], access_key: str) -> str:
    """The account moto files the request under, resolved the way moto does."""
    if os.environ.get("MOTO_ACCOUNT_ID"):
        return os.environ["MOTO_ACCOUNT_ID"]
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return environ["HTTP_X_MOTO_ACCOUNT_ID"]
    return account_id_from(access_key)


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body; ``wsgi.input`` is replaced so moto can still read it if delegated to."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    return raw


def _json_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _http_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers by lower-case name (``x-amzn-principal``), for members sent as headers."""
    return {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}


def _wsgi_path(environ: Mapping[str, Any]) -> str:
    path = environ.get("PATH_INFO", "")
    return path.encode("latin-1").decode("utf-8", "replace") if isinstance(path, str) else path.decode()


class IotMiddleware:
    """WSGI application: the emulator's IoT operations and quotas, then moto."""

    def __init__(
        self,
        app: Callable,
        *,
        handlers: Mapping[str, Handler],
        quotas: Quotas,
        store: StateStore,
        settings: ApiSettings,
    ) -> None:
        self.app = app
        self.handlers = dict(handlers)
        self.quotas = quotas
        self.store = store
        self.settings = settings

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        try:
            return self._handle(environ, start_response)
        finally:
            self.store.touch()  # the state may have changed: the next periodic snapshot looks

    def _handle(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = _wsgi_path(environ)
        if method == "GET" and path == info.INFO_PATH:
            return _send(start_response, *info.answer(self.settings.local_info))
        if method == "POST" and path == "/moto-api/reset":
            self.store.clear()  # moto forgets its backends; forget ours with them
        signer = signer_of(environ)
        if signer and signer.service == "iotdata" and data_plane.is_publish(method, path):
            return self._data_publish(environ, start_response, path, signer.region or DEFAULT_REGION)
        function = lambda_invoke.function_of(method, path) if signer and signer.service == "lambda" else None
        if function is not None:
            region = (signer.region if signer else None) or DEFAULT_REGION
            services = self.settings.services(region)
            if services is None:
                return _send(start_response, *lambda_invoke.not_served(self.settings.not_served(region)))
            invoked = lambda_invoke.invoke(
                services.lambda_runtime, function, _http_headers(environ), _read_body(environ)
            )
            return _send(start_response, *invoked)
        identity_operation = identity_pools.operation_of(environ.get("HTTP_X_AMZ_TARGET")) if method == "POST" else None
        if identity_operation is not None:  # Cognito Identity: GetId and GetCredentialsForIdentity come unsigned
            return self._identity_call(environ, start_response, identity_operation, signer)
        matched = match_operation(method, path) if signer and signer.service == "iot" else None
        if matched is None or signer is None:
            return self.app(environ, start_response)
        operation, path_params = matched
        account = account_of(environ, signer.access_key)
        region = signer.region or DEFAULT_REGION
        iot_backend(account, region)  # its attachments indexed before moto's own handlers touch them
        try:
            if not self.quotas.allow(operation, account, region):
                raise Throttling()
            handler = self.handlers.get(operation)
            if handler is None:
                return self.app(environ, start_response)
            call = Call(
                operation=operation,
                account=account,
                region=region,
                path=path_params,
                query=dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)),
                body=_json_body(_read_body(environ)),
                state=self.store.region(account, region),
                settings=self.settings,
                headers=_http_headers(environ),
            )
            result = handler(call)
        except IotServiceError as error:
            return _send(start_response, *error_response(error))
        except Exception as exc:  # a bug in a handler: answer like AWS, keep the traceback in the log
            log.exception("emulator handler for %s failed", operation)
            return _send(start_response, *error_response(IotServiceError(f"Internal failure: {exc}")))
        if result is DELEGATE:
            return self.app(environ, start_response)
        answer = result if isinstance(result, Answer) else Answer(cast(Mapping[str, Any], result))
        return _send(start_response, *json_response(answer))

    def _identity_call(
        self, environ: dict[str, Any], start_response: Callable, operation: str, signer: Any
    ) -> Iterable[bytes]:
        account = account_of(environ, signer.access_key) if signer else account_of(environ, "")
        try:
            body = _json_body(_read_body(environ))
            answer = identity_pools.HANDLERS[operation](self.store, account, body)
        except IotServiceError as error:
            return _send(start_response, *error_response(error))
        except Exception as exc:  # a bug in a handler: answer like AWS, keep the traceback in the log
            log.exception("emulator handler for %s failed", operation)
            return _send(start_response, *error_response(IotServiceError(f"Internal failure: {exc}")))
        status, headers, payload = json_response(Answer(answer))
        headers = [(k, "application/x-amz-json-1.1" if k == "Content-Type" else v) for k, v in headers]
        return _send(start_response, status, headers, payload)

    def _data_publish(
        self, environ: dict[str, Any], start_response: Callable, path: str, region: str
    ) -> Iterable[bytes]:
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        try:
            answer = data_plane.publish(path, query, _read_body(environ), self.settings, region)
        except IotServiceError as error:
            return _send(start_response, *error_response(error))
        return _send(start_response, *json_response(Answer(answer)))


_REASONS = {
    200: "OK",
    202: "Accepted",
    204: "No Content",
    403: "Forbidden",
    413: "Payload Too Large",
    503: "Service Unavailable",
    400: "Bad Request",
    404: "Not Found",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    500: "Internal Server Error",
}


def _send(start_response: Callable, status: int, headers: list[tuple[str, str]], body: bytes) -> list[bytes]:
    headers = [*headers, ("Content-Length", str(len(body)))]
    start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
    return [body]
