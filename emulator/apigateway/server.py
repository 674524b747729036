"""The emulator's API Gateway: the HTTP and REST APIs deployed into it, served on 127.0.0.1.

An API's URL on AWS is ``https://{api-id}.execute-api.{region}.amazonaws.com/{stage}/...`` (HTTP APIs'
``$default`` stage has no stage segment). Here it is ``http://127.0.0.1:{port}/{api-id}/{stage}/...``,
or the AWS form's path with the ``Host`` header naming the API (``curl -H 'Host: {api-id}.execute-api...'``);
``jitr local deploy`` writes stack outputs and function variables that build the AWS URL in the local form.

Each request is answered as API Gateway answers it: the route chosen as AWS chooses (an HTTP API's
unknown route 404 ``{"message":"Not Found"}``, a REST API's 403 ``{"message":"Missing Authentication
Token"}``), the stage's throttling (429 ``Too Many Requests``), the route's JWT authorizer (401/403),
the function invoked with its resource policy checked and the proxy payload of the route's format; a
function error or a malformed result answers 500 (HTTP API) or 502 (REST API), a function that takes
longer than the integration's timeout 503 (HTTP API) or 504 (REST API).
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import parse_qsl

from emulator.api.loopback import HOST, LoopbackServer
from emulator.api.quotas import TokenBucket
from emulator.apigateway import cors, jwt_authorizer, payloads
from emulator.apigateway.payloads import Request, Response, message
from emulator.apigateway.routing import choose
from emulator.lambdas.pool import FunctionError, LambdaError
from emulator.store.gateway import GatewayApi, Route, find_api, user_pool_keys

log = logging.getLogger("jitr.emulator.apigateway")
MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit, HTTP and REST APIs alike
PRINCIPAL = "apigateway.amazonaws.com"


class ApiGateway(LoopbackServer):
    """Serves every API Gateway API of one account and region on a loopback port."""

    def __init__(self, *, account_id: str, region: str, lambdas: Any, port: int = 0) -> None:
        super().__init__(port=port, name="jitr-apigateway")
        self.account_id, self.region, self.lambdas = account_id, region, lambdas
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}
        self._lock = threading.Lock()
        self._invocations = ThreadPoolExecutor(32, thread_name_prefix="jitr-apigw")
        self.find_api: Callable[[str], GatewayApi | None] = lambda api_id: find_api(account_id, region, api_id)

    def stop(self) -> None:
        super().stop()
        self._invocations.shutdown(wait=False, cancel_futures=True)

    def api_url(self, api_id: str) -> str:
        """Where an API's ``https://{api_id}.execute-api.{region}.amazonaws.com`` is served locally."""
        return f"{self.url}/{api_id}"

    # -- WSGI ----------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        try:
            answer = self._answer(environ)
        except Exception:  # the gateway itself failed: API Gateway's own 500, and the emulator keeps serving
            log.exception("API Gateway request failed")
            answer = message(500, "Internal Server Error")
        start_response(
            f"{answer.status} {_reason(answer.status)}",
            [*answer.headers, ("Content-Length", str(len(answer.body)))],
        )
        return [answer.body]

    def _answer(self, environ: dict[str, Any]) -> Response:
        path = environ.get("PATH_INFO", "") or "/"
        host = (environ.get("HTTP_HOST") or "").split(":")[0]
        api: GatewayApi | None = None
        if ".execute-api." in host:
            api = self.find_api(host.split(".")[0])
        if api is None:
            first, _, rest = path.lstrip("/").partition("/")
            api = self.find_api(first) if first else None
            path = "/" + rest
        if api is None:
            return message(404, "Not Found")
        stage, path = _stage_of(api, path)
        if stage is None:
            return message(404, "Not Found") if api.kind == "HTTP" else _missing_token()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY:
            return message(413, "Request Entity Too Large")
        body = environ["wsgi.input"].read(length) if length else b""
        request = Request(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            path=path,
            raw_query=environ.get("QUERY_STRING", ""),
            headers=_headers(environ),
            body=body,
            source_ip=environ.get("REMOTE_ADDR", HOST),
            api_id=api.api_id,
            stage=stage,
            request_id=_request_id(api.kind),
            domain=f"{api.api_id}.execute-api.{self.region}.amazonaws.com",
            account_id=self.account_id,
            protocol=environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        )
        if api.cors is not None and cors.is_preflight(request) and not _routed_preflight(api, request):
            answer = cors.preflight(api.cors, request)
        else:
            answer = self._route(api, request)
            if api.cors is not None:
                answer = cors.decorate(api.cors, request, answer)
        id_header = "apigw-requestid" if api.kind == "HTTP" else "x-amzn-RequestId"
        answer.headers.append((id_header, request.request_id))
        return answer

    def _route(self, api: GatewayApi, request: Request) -> Response:
        http = api.kind == "HTTP"
        matched = choose(api.routes, request.method, request.path)
        if matched is None:
            return message(404, "Not Found") if http else _missing_token()
        route = matched.route
        if not self._allowed(api, request.stage, route):
            return message(429, "Too Many Requests")
        claims = None
        if route.authorizer is not None and route.authorization_type == "JWT":
            headers = {k.lower(): v for k, v in request.headers}
            query = dict(parse_qsl(request.raw_query, keep_blank_values=True))
            token = jwt_authorizer.token_of(route.authorizer, headers, query)
            try:
                claims = jwt_authorizer.authorize(route.authorizer, token, route.scopes, self._keys)
            except jwt_authorizer.Denied as denied:
                text = "Unauthorized" if denied.status == 401 else "Forbidden"
                return message(denied.status, text, [("www-authenticate", denied.www_authenticate())])
        if route.function_arn is None:
            log.warning(
                "route %s of API %s has no Lambda proxy integration the emulator runs", route.route_key, api.api_id
            )
            return message(500, "Internal Server Error" if http else "Internal server error")
        variables = api.stages[request.stage].variables if request.stage in api.stages else {}
        if route.payload_version == "1.0":
            event = payloads.event_v1(request, route, matched.path_parameters, claims, variables)
        else:
            event = payloads.event_v2(request, route, matched.path_parameters, claims, variables)
        return self._invoke(route, request, event, http)

    def _invoke(self, route: Route, request: Request, event: dict[str, Any], http: bool) -> Response:
        error = "Internal Server Error" if http else "Internal server error"
        source = payloads.source_arn(request, self.region)
        future = self._invocations.submit(
            self.lambdas.invoke, route.function_arn, event, principal=PRINCIPAL, source_arn=source
        )
        try:
            result = future.result(timeout=route.timeout_ms / 1000)
        except FutureTimeout:
            return message(503, "Service Unavailable") if http else message(504, "Endpoint request timed out")
        except FunctionError as exc:
            log.info("%s %s: the function failed: %s", request.method, request.path, exc)
            return message(500 if http else 502, error)
        except LambdaError as exc:  # no such function, or its resource policy does not allow API Gateway
            log.warning("%s %s: %s", request.method, request.path, exc)
            return message(500, error)
        try:
            if route.payload_version == "1.0":
                return payloads.response_v1(result)
            return payloads.response_v2(result)
        except payloads.MalformedResult as exc:
            log.warning("%s %s: malformed Lambda proxy response: %s", request.method, request.path, exc)
            return message(500 if http else 502, error)

    def _keys(self, region: str, pool_id: str):
        return user_pool_keys(self.account_id, region, pool_id) if region == self.region else None

    def _allowed(self, api: GatewayApi, stage_name: str, route: Route) -> bool:
        stage = api.stages.get(stage_name)
        if stage is None:
            return True
        key = route.route_key if api.kind == "HTTP" else f"{route.path}/{route.method}"
        limit = stage.route_throttles.get(key) or stage.default_throttle
        if limit is None:
            return True
        with self._lock:
            bucket = self._buckets.get((api.api_id, stage_name, key))
            if bucket is None or (bucket.rate, bucket.capacity) != (limit.rate, float(limit.burst)):
                bucket = self._buckets[(api.api_id, stage_name, key)] = TokenBucket(limit.rate, float(limit.burst))
        return bucket.take()


def _routed_preflight(api: GatewayApi, request: Request) -> bool:
    """Whether a route takes this preflight request itself: an explicit OPTIONS route, or ``$default``."""
    matched = choose(api.routes, request.method, request.path)
    return matched is not None and (matched.route.method == "OPTIONS" or matched.route.path == "$default")


def _stage_of(api: GatewayApi, path: str) -> tuple[str | None, str]:
    """The stage a path names and the path after it; an HTTP API's ``$default`` stage takes the rest."""
    first, _, rest = path.lstrip("/").partition("/")
    if first and first in api.stages and first != "$default":
        return first, "/" + rest
    if api.kind == "HTTP" and "$default" in api.stages:
        return "$default", path
    return None, path


def _headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").title(), value))
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers.append((key.replace("_", "-").title(), environ[key]))
    return headers


def _request_id(kind: str) -> str:
    if kind == "HTTP":  # HTTP APIs' ids look like "Mc7UVioPPHcEKPA="
        return base64.b64encode(os.urandom(10)).decode()
    return str(uuid.uuid4())


def _missing_token() -> Response:
    return message(403, "Missing Authentication Token", [("x-amzn-ErrorType", "MissingAuthenticationTokenException")])


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
