"""Creators and deleters of API Gateway resources: HTTP APIs (``AWS::ApiGatewayV2::*``) and REST APIs
(``AWS::ApiGateway::*``), including the OpenAPI ``Body`` the SAM transform writes for
``AWS::Serverless::HttpApi`` and ``AWS::Serverless::Api``.

An API with a ``Body`` is created as API Gateway imports one: each path and method becomes a route (a
REST resource and method) with its Lambda proxy integration, each ``x-amazon-apigateway-authorizer``
of type ``jwt`` an authorizer, each ``security`` requirement the route's authorization. What the
emulator's gateway does not serve (WebSocket APIs, integrations other than Lambda proxy, Lambda and
IAM authorizers, REST authorizers) is refused by name before anything is created.
"""

from __future__ import annotations

from typing import Any

from emulator.cloudformation.context import Creator, Deleter, Deployment

ANY_METHOD = "x-amazon-apigateway-any-method"
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", ANY_METHOD}
V2, V1 = "AWS::ApiGatewayV2::", "AWS::ApiGateway::"


def _operations(body: dict[str, Any]):
    """(path, method, operation) of an OpenAPI/Swagger body, method upper-case (ANY for the any-method)."""
    for path, item in (body.get("paths") or {}).items():
        for method, operation in (item or {}).items():
            if method.lower() in _METHODS and isinstance(operation, dict):
                yield path, "ANY" if method == ANY_METHOD else method.upper(), operation


def _schemes(body: dict[str, Any]) -> dict[str, Any]:
    components = (body.get("components") or {}).get("securitySchemes") or {}
    return {**(body.get("securityDefinitions") or {}), **components}


def unsupported(logical: str, resource: dict[str, Any]) -> str | None:
    """Why the emulator cannot serve this API Gateway resource as declared, or None."""
    kind, props = resource.get("Type", ""), resource.get("Properties") or {}
    if kind in (V2 + "Api", V1 + "RestApi") and "BodyS3Location" in props:
        return f"{logical}: an API definition in S3 (BodyS3Location); put it inline as Body"
    if kind == V2 + "Api" and props.get("ProtocolType", "HTTP") != "HTTP":
        return f"{logical}: {props.get('ProtocolType')} APIs (the emulator serves HTTP and REST APIs)"
    if kind == V2 + "Integration" and str(props.get("IntegrationType", "")).upper() != "AWS_PROXY":
        return f"{logical}: integrations of type {props.get('IntegrationType')} (only Lambda proxy, AWS_PROXY)"
    if kind == V2 + "Authorizer" and str(props.get("AuthorizerType", "")).upper() != "JWT":
        return f"{logical}: {props.get('AuthorizerType')} authorizers (only JWT authorizers on HTTP APIs)"
    if kind == V1 + "Method":
        if str(props.get("AuthorizationType", "NONE")).upper() != "NONE":
            return (
                f"{logical}: REST API authorization {props.get('AuthorizationType')} (the emulator does not enforce it)"
            )
        if str((props.get("Integration") or {}).get("Type", "")).upper() != "AWS_PROXY":
            return f"{logical}: REST integrations other than Lambda proxy (AWS_PROXY)"
    body = props.get("Body")
    if kind not in (V2 + "Api", V1 + "RestApi") or not isinstance(body, dict):
        return None
    for path, method, operation in _operations(body):
        integration = operation.get("x-amazon-apigateway-integration") or {}
        if str(integration.get("type", "")).lower() != "aws_proxy":
            return f"{logical}: the integration of {method} {path} (only Lambda proxy, aws_proxy)"
    for name, scheme in _schemes(body).items():
        authorizer = scheme.get("x-amazon-apigateway-authorizer") or {}
        if kind == V1 + "RestApi" or str(authorizer.get("type", "")).lower() != "jwt":
            return f"{logical}: the authorizer {name} (only JWT authorizers on HTTP APIs)"
    return None


# -- HTTP APIs ------------------------------------------------------------------------------------------


def _http_api(d: Deployment, stack, logical, props, _code):
    v2 = d.client("apigatewayv2")
    body = props.get("Body")
    info = (body or {}).get("info") or {}
    name = props.get("Name") or info.get("title") or d._name(stack, logical)
    params: dict[str, Any] = {"Name": str(name), "ProtocolType": "HTTP"}
    for key in ("Description", "CorsConfiguration", "DisableExecuteApiEndpoint"):
        if key in props:
            params[key] = props[key]
    if body and "x-amazon-apigateway-cors" in body:
        params["CorsConfiguration"] = {k[:1].upper() + k[1:]: v for k, v in body["x-amazon-apigateway-cors"].items()}
    api_id = v2.create_api(**params)["ApiId"]
    if body:
        _import_http(v2, api_id, body)
    elif props.get("Target"):  # quick create: a $default route and stage on the target function
        integration = v2.create_integration(
            ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=props["Target"], PayloadFormatVersion="2.0"
        )["IntegrationId"]
        v2.create_route(ApiId=api_id, RouteKey=props.get("RouteKey", "$default"), Target=f"integrations/{integration}")
        v2.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
    endpoint = f"https://{api_id}.execute-api.{d.region}.amazonaws.com"
    return api_id, {"ApiId": api_id, "ApiEndpoint": endpoint}


def _import_http(v2, api_id: str, body: dict[str, Any]) -> None:
    authorizers: dict[str, str] = {}
    for name, scheme in _schemes(body).items():
        spec = scheme["x-amazon-apigateway-authorizer"]
        jwt = spec.get("jwtConfiguration") or {}
        sources = spec.get("identitySource") or "$request.header.Authorization"
        authorizers[name] = v2.create_authorizer(
            ApiId=api_id,
            AuthorizerType="JWT",
            Name=name,
            IdentitySource=[s.strip() for s in sources.split(",")] if isinstance(sources, str) else list(sources),
            JwtConfiguration={"Issuer": jwt.get("issuer", ""), "Audience": list(jwt.get("audience") or [])},
        )["AuthorizerId"]
    default_security = body.get("security") or []
    for path, method, operation in _operations(body):
        spec = operation["x-amazon-apigateway-integration"]
        params: dict[str, Any] = {
            "ApiId": api_id,
            "IntegrationType": "AWS_PROXY",
            "IntegrationUri": spec["uri"],
            "IntegrationMethod": spec.get("httpMethod", "POST"),
            "PayloadFormatVersion": str(spec.get("payloadFormatVersion", "2.0")),
        }
        if spec.get("timeoutInMillis"):
            params["TimeoutInMillis"] = int(spec["timeoutInMillis"])
        integration = v2.create_integration(**params)["IntegrationId"]
        route: dict[str, Any] = {
            "ApiId": api_id,
            "RouteKey": "$default" if path == "$default" else f"{method} {path}",
            "Target": f"integrations/{integration}",
        }
        for requirement in operation.get("security", default_security):
            for scheme, scopes in requirement.items():
                if scheme in authorizers:
                    route |= {"AuthorizationType": "JWT", "AuthorizerId": authorizers[scheme]}
                    if scopes:
                        route["AuthorizationScopes"] = list(scopes)
        v2.create_route(**route)


def _http_stage(d: Deployment, stack, logical, props, _code):
    keys = ("AutoDeploy", "Description", "StageVariables", "DefaultRouteSettings", "RouteSettings")
    params = {k: props[k] for k in keys if k in props}
    d.client("apigatewayv2").create_stage(ApiId=props["ApiId"], StageName=props["StageName"], **params)
    return props["StageName"], {"ApiId": props["ApiId"]}


def _passthrough(operation: str, id_key: str, keys: tuple[str, ...]) -> Creator:
    """An HTTP API child resource whose CloudFormation properties are the API's own parameters."""

    def create(d: Deployment, stack, logical, props, _code):
        params = {k: props[k] for k in keys if k in props}
        answer = getattr(d.client("apigatewayv2"), operation)(ApiId=props["ApiId"], **params)
        return answer[id_key], {"ApiId": props["ApiId"]}

    return create


def _v2_delete(operation: str, key: str) -> Deleter:
    def delete(d: Deployment, item):
        api = item["attributes"]["ApiId"]
        getattr(d.client("apigatewayv2"), operation)(ApiId=api, **{key: item["physicalId"]})

    return delete


# -- REST APIs ------------------------------------------------------------------------------------------


def _rest_api(d: Deployment, stack, logical, props, _code):
    v1 = d.client("apigateway")
    body = props.get("Body")
    info = (body or {}).get("info") or {}
    params: dict[str, Any] = {"name": str(props.get("Name") or info.get("title") or d._name(stack, logical))}
    if "Description" in props:
        params["description"] = props["Description"]
    if props.get("BinaryMediaTypes"):
        params["binaryMediaTypes"] = props["BinaryMediaTypes"]
    api = v1.create_rest_api(**params)
    api_id, root = api["id"], api["rootResourceId"]
    if body:
        resources = {"/": root}
        for path, method, operation in _operations(body):
            resource = _resource_for(v1, api_id, resources, path)
            spec = operation["x-amazon-apigateway-integration"]
            timeout = int(spec["timeoutInMillis"]) if spec.get("timeoutInMillis") else None
            _proxy_method(v1, api_id, resource, method, spec.get("httpMethod", "POST"), spec["uri"], timeout)
    return api_id, {"RootResourceId": root}


def _proxy_method(v1, api: str, resource: str, method: str, http_method: str, uri: str, timeout: int | None) -> None:
    """A REST method without authorization and its Lambda proxy integration."""
    v1.put_method(restApiId=api, resourceId=resource, httpMethod=method, authorizationType="NONE")
    extra = {"timeoutInMillis": timeout} if timeout else {}
    v1.put_integration(
        restApiId=api,
        resourceId=resource,
        httpMethod=method,
        type="AWS_PROXY",
        integrationHttpMethod=http_method,
        uri=uri,
        **extra,
    )


def _resource_for(v1, api_id: str, resources: dict[str, str], path: str) -> str:
    """The id of the resource at ``path``, creating it and its missing ancestors."""
    if path in resources:
        return resources[path]
    parent, _, part = path.rstrip("/").rpartition("/")
    parent_id = _resource_for(v1, api_id, resources, parent or "/")
    resources[path] = v1.create_resource(restApiId=api_id, parentId=parent_id, pathPart=part)["id"]
    return resources[path]


def _rest_resource(d: Deployment, stack, logical, props, _code):
    answer = d.client("apigateway").create_resource(
        restApiId=props["RestApiId"], parentId=props["ParentId"], pathPart=props["PathPart"]
    )
    return answer["id"], {"RestApiId": props["RestApiId"]}


def _rest_method(d: Deployment, stack, logical, props, _code):
    v1 = d.client("apigateway")
    api, resource, method = props["RestApiId"], props["ResourceId"], props["HttpMethod"].upper()
    integration = props["Integration"]
    timeout = int(integration["TimeoutInMillis"]) if integration.get("TimeoutInMillis") else None
    _proxy_method(
        v1, api, resource, method, integration.get("IntegrationHttpMethod", "POST"), integration["Uri"], timeout
    )
    return f"{api}|{resource}|{method}", {"RestApiId": api}


def _deployment(d: Deployment, stack, logical, props, _code):
    params = {k[:1].lower() + k[1:]: props[k] for k in ("StageName", "Description") if k in props}
    answer = d.client("apigateway").create_deployment(restApiId=props["RestApiId"], **params)
    return answer["id"], {"RestApiId": props["RestApiId"], "StageName": props.get("StageName")}


def _delete_deployment(d: Deployment, item):
    v1, api = d.client("apigateway"), item["attributes"]["RestApiId"]
    if item["attributes"].get("StageName"):
        v1.delete_stage(restApiId=api, stageName=item["attributes"]["StageName"])
    v1.delete_deployment(restApiId=api, deploymentId=item["physicalId"])


def _rest_stage(d: Deployment, stack, logical, props, _code):
    v1, api, name = d.client("apigateway"), props["RestApiId"], props["StageName"]
    params = {"variables": props["Variables"]} if props.get("Variables") else {}
    v1.create_stage(restApiId=api, stageName=name, deploymentId=props["DeploymentId"], **params)
    operations = []
    for setting in props.get("MethodSettings") or []:
        resource = (
            str(setting.get("ResourcePath", "/*")).replace("/", "~1") if setting.get("ResourcePath") != "/*" else "*"
        )
        prefix = f"/{resource}/{setting.get('HttpMethod', '*')}"
        for key, path in (
            ("ThrottlingBurstLimit", "throttling/burstLimit"),
            ("ThrottlingRateLimit", "throttling/rateLimit"),
        ):
            if key in setting:
                operations.append({"op": "replace", "path": f"{prefix}/{path}", "value": str(setting[key])})
    if operations:
        v1.update_stage(restApiId=api, stageName=name, patchOperations=operations)
    return name, {"RestApiId": api}


CREATORS: dict[str, Creator] = {
    V2 + "Api": _http_api,
    V2 + "Stage": _http_stage,
    V2 + "Integration": _passthrough(
        "create_integration",
        "IntegrationId",
        ("IntegrationType", "IntegrationUri", "IntegrationMethod", "PayloadFormatVersion", "TimeoutInMillis"),
    ),
    V2 + "Route": _passthrough(
        "create_route",
        "RouteId",
        ("RouteKey", "Target", "AuthorizationType", "AuthorizerId", "AuthorizationScopes", "OperationName"),
    ),
    V2 + "Authorizer": _passthrough(
        "create_authorizer", "AuthorizerId", ("AuthorizerType", "Name", "IdentitySource", "JwtConfiguration")
    ),
    V1 + "RestApi": _rest_api,
    V1 + "Resource": _rest_resource,
    V1 + "Method": _rest_method,
    V1 + "Deployment": _deployment,
    V1 + "Stage": _rest_stage,
}

DELETERS: dict[str, Deleter] = {
    V2 + "Api": lambda d, i: d.client("apigatewayv2").delete_api(ApiId=i["physicalId"]),
    V2 + "Stage": _v2_delete("delete_stage", "StageName"),
    V2 + "Integration": _v2_delete("delete_integration", "IntegrationId"),
    V2 + "Route": _v2_delete("delete_route", "RouteId"),
    V2 + "Authorizer": _v2_delete("delete_authorizer", "AuthorizerId"),
    V1 + "RestApi": lambda d, i: d.client("apigateway").delete_rest_api(restApiId=i["physicalId"]),
    V1 + "Resource": lambda d, i: d.client("apigateway").delete_resource(
        restApiId=i["attributes"]["RestApiId"], resourceId=i["physicalId"]
    ),
    V1 + "Method": lambda d, i: d.client("apigateway").delete_method(
        restApiId=i["attributes"]["RestApiId"],
        resourceId=i["physicalId"].split("|")[1],
        httpMethod=i["physicalId"].split("|")[2],
    ),
    V1 + "Deployment": _delete_deployment,
    V1 + "Stage": lambda d, i: d.client("apigateway").delete_stage(
        restApiId=i["attributes"]["RestApiId"], stageName=i["physicalId"]
    ),
}
