"""API Gateway's APIs as the emulator's gateway serves them, read from moto's models (HTTP and REST).

``jitr local deploy`` creates APIs with the same calls CloudFormation makes (CreateApi, CreateRoute,
CreateIntegration, CreateAuthorizer, CreateStage; CreateRestApi, CreateResource, PutMethod,
PutIntegration, CreateDeployment, CreateStage), so moto holds them and ``aws apigatewayv2 get-routes``
lists them; this module turns moto's objects into the plain description the gateway routes by.
Cognito user pools, whose tokens JWT authorizers check, are read here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_FUNCTION_IN_URI = re.compile(r"functions/(?P<arn>arn:[^/]+)/invocations")


@dataclass(frozen=True)
class Authorizer:
    """A JWT authorizer of an HTTP API (issuer, audiences, where the token is)."""

    name: str
    issuer: str
    audience: tuple[str, ...]
    identity_source: tuple[str, ...] = ("$request.header.Authorization",)


@dataclass(frozen=True)
class Route:
    """One route: HTTP API route key (``GET /devices/{serial}``, ``ANY /{proxy+}``, ``$default``) or a REST
    API resource path and method, the function its Lambda proxy integration invokes, and its authorization."""

    method: str  # GET, POST, ..., ANY (REST: ANY for x-amazon-apigateway-any-method)
    path: str  # /devices/{serial}; "$default" for an HTTP API's default route
    route_key: str
    function_arn: str | None  # None: an integration the emulator does not run
    payload_version: str  # "2.0" or "1.0"
    authorizer: Authorizer | None = None
    scopes: tuple[str, ...] = ()
    authorization_type: str = "NONE"
    resource_id: str = ""  # REST: the resource's id, for requestContext.resourceId
    timeout_ms: int = 30000


@dataclass(frozen=True)
class Throttle:
    burst: int
    rate: float


@dataclass(frozen=True)
class Stage:
    name: str
    variables: dict[str, str] = field(default_factory=dict)
    default_throttle: Throttle | None = None
    route_throttles: dict[str, Throttle] = field(default_factory=dict)  # route key (REST: "path/METHOD")


@dataclass(frozen=True)
class Cors:
    """An HTTP API's CORS configuration (its ``CorsConfiguration``)."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False


@dataclass(frozen=True)
class GatewayApi:
    api_id: str
    kind: str  # "HTTP" or "REST"
    name: str
    routes: tuple[Route, ...]
    stages: dict[str, Stage]
    cors: Cors | None = None


def _cors(config: dict[str, Any] | None) -> Cors | None:
    """moto keeps CorsConfiguration as it came (the wire's allowOrigins, or an import's AllowOrigins)."""
    if not config:
        return None
    value = {k[:1].lower() + k[1:]: v for k, v in config.items()}

    def names(key: str) -> tuple[str, ...]:
        return tuple(str(item) for item in value.get(key) or ())

    age = value.get("maxAge")
    return Cors(
        names("allowOrigins"),
        names("allowMethods"),
        names("allowHeaders"),
        names("exposeHeaders"),
        int(age) if age is not None else None,
        bool(value.get("allowCredentials", False)),
    )


def _function_arn(uri: str | None) -> str | None:
    """The function an integration invokes: its ARN, or the ARN in an apigateway invocation URI."""
    if not uri:
        return None
    found = _FUNCTION_IN_URI.search(uri)
    if found:
        return found.group("arn")
    return uri if uri.startswith("arn:") and ":lambda:" in uri and ":function:" in uri else None


def _throttle(settings: dict[str, Any] | None, burst_key: str, rate_key: str) -> Throttle | None:
    if not settings or (settings.get(burst_key) is None and settings.get(rate_key) is None):
        return None
    burst = settings.get(burst_key)
    rate = settings.get(rate_key)
    return Throttle(int(burst if burst is not None else 5000), float(rate if rate is not None else 10000))


def http_api(backend: Any, api_id: str) -> GatewayApi | None:
    api = backend.apis.get(api_id)
    if api is None or api.protocol_type != "HTTP":
        return None
    authorizers = {}
    for auth in api.authorizers.values():
        if (auth.authorizer_type or "").upper() == "JWT":
            config = auth.jwt_config or {}
            sources = auth.identity_source or ["$request.header.Authorization"]
            authorizers[auth.id] = Authorizer(
                auth.name,
                config.get("issuer") or config.get("Issuer") or "",
                tuple(config.get("audience") or config.get("Audience") or ()),
                tuple([sources] if isinstance(sources, str) else sources),
            )
    routes = []
    for route in api.routes.values():
        target = (route.target or "").removeprefix("integrations/")
        integration = api.integrations.get(target)
        method, _, path = route.route_key.partition(" ")
        if route.route_key == "$default":
            method, path = "ANY", "$default"
        routes.append(
            Route(
                method=method.upper(),
                path=path,
                route_key=route.route_key,
                function_arn=_function_arn(integration.integration_uri) if integration else None,
                payload_version=(integration.payload_format_version if integration else None) or "2.0",
                authorizer=authorizers.get(route.authorizer_id or ""),
                scopes=tuple(route.authorization_scopes or ()),
                authorization_type=(route.authorization_type or "NONE").upper(),
                timeout_ms=(integration.timeout_in_millis if integration else None) or 30000,
            )
        )
    stages = {}
    for stage in api.stages.values():
        default = _throttle(stage.default_route_settings, "throttlingBurstLimit", "throttlingRateLimit")
        per_route = {}
        for key, settings in (stage.route_settings or {}).items():
            limit = _throttle(settings, "throttlingBurstLimit", "throttlingRateLimit")
            if limit is not None:
                per_route[key] = limit
        stages[stage.name] = Stage(stage.name, dict(stage.stage_variables or {}), default, per_route)
    return GatewayApi(api.api_id, "HTTP", api.name or "", tuple(routes), stages, _cors(api.cors_configuration))


def rest_api(backend: Any, api_id: str) -> GatewayApi | None:
    api = backend.apis.get(api_id)
    if api is None:
        return None
    routes = []
    for resource in api.resources.values():
        path = resource.get_path()
        for method, spec in resource.resource_methods.items():
            integration = spec.method_integration
            routes.append(
                Route(
                    method=method.upper(),
                    path=path,
                    route_key=f"{method.upper()} {path}",
                    function_arn=_function_arn(integration.uri) if integration is not None else None,
                    payload_version="1.0",
                    authorization_type=(spec.authorization_type or "NONE").upper(),
                    resource_id=resource.id,
                    timeout_ms=int(getattr(integration, "timeout_in_millis", None) or 29000),
                )
            )
    stages = {}
    for stage in api.stages.values():
        settings = dict(stage.method_settings or {})
        default = _throttle(settings.pop("*/*", None), "throttlingBurstLimit", "throttlingRateLimit")
        per_route = {}
        for key, value in settings.items():
            limit = _throttle(value, "throttlingBurstLimit", "throttlingRateLimit")
            if limit is not None:
                per_route["/" + key.replace("~1", "/").lstrip("/")] = limit
        stages[stage.name] = Stage(stage.name, dict(stage.variables or {}), default, per_route)
    return GatewayApi(api.id, "REST", api.name or "", tuple(routes), stages)


def find_api(account: str, region: str, api_id: str) -> GatewayApi | None:
    """The HTTP or REST API of that id in one account and region, None if there is none."""
    from moto.apigateway.models import apigateway_backends
    from moto.apigatewayv2.models import apigatewayv2_backends

    found = http_api(apigatewayv2_backends[account][region], api_id)
    return found if found is not None else rest_api(apigateway_backends[account][region], api_id)


def user_pool_keys(account: str, region: str, pool_id: str) -> dict[str, Any] | None:
    """The JSON Web Key Set of a Cognito user pool of the emulator (what its ``jwks.json`` serves), None if
    the pool does not exist. moto signs every pool's tokens with one key; the issuer names the pool."""
    from moto.cognitoidp.models import cognitoidp_backends
    from moto.utilities.utils import load_resource

    if pool_id not in cognitoidp_backends[account][region].user_pools:
        return None
    keys: dict[str, Any] = load_resource("cognitoidp/resources/jwks-public.json")
    return keys
