"""API Gateway in the emulator, tried with curl: a SAM stack's HTTP API (payload 2.0, JWT authorizer on
the stack's Cognito user pool, route throttling) and REST API (payload 1.0), answered as AWS answers."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import boto3
import pytest

from emulator.cloudformation.deploy import StackDeployer
from emulator.cloudformation.sam import TemplateError

pytestmark = pytest.mark.timeout(120)

PLATFORM = Path(__file__).parent / "platform" / "template.yaml"
PASSWORD = "Corr3ct-Horse!"


def curl(url: str, *args: str) -> tuple[int, dict[str, str], str]:
    """Status, headers (lower-case names) and body of one curl request."""
    done = subprocess.run(
        ["curl", "-s", "-i", "--max-time", "20", *args, url], capture_output=True, text=True, timeout=30, check=True
    )
    head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return int(lines[0].split()[1]), headers, body


@pytest.fixture(scope="module")
def stack(local_iot):
    local_iot.api.reset()
    session = boto3.Session(region_name=local_iot.info()["region"])
    record = StackDeployer(session).deploy(PLATFORM, "platform", {})
    yield record["outputs"] | {"session": session, "record": record}
    StackDeployer(session).destroy("platform")


def sign_in(stack, username: str = "ann") -> dict:
    idp = stack["session"].client("cognito-idp")
    pool, client = stack["UserPoolId"], stack["AppClientId"]
    idp.admin_create_user(UserPoolId=pool, Username=username, TemporaryPassword=PASSWORD)
    idp.admin_set_user_password(UserPoolId=pool, Username=username, Password=PASSWORD, Permanent=True)
    answer = idp.initiate_auth(
        ClientId=client, AuthFlow="USER_PASSWORD_AUTH", AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD}
    )
    return answer["AuthenticationResult"]


def test_stack_outputs_build_execute_api_urls_that_work_locally(stack, local_iot):
    gateway = local_iot.info()["apigateway_url"]
    assert stack["HttpUrl"].startswith(gateway + "/") and stack["RestUrl"].startswith(gateway + "/")
    assert stack["RestUrl"].endswith("/prod")


def test_http_api_route_receives_payload_2_and_its_answer_is_served(stack):
    status, headers, body = curl(stack["HttpUrl"] + "/open/42?colour=red&colour=blue&size=", "-H", "Cookie: a=1; b=2")
    assert status == 200
    assert headers["x-answered-by"].startswith("platform-Answer")
    assert headers["set-cookie"] == "seen=1"
    assert headers["apigw-requestid"]
    event = json.loads(body)["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /open/{id}"
    assert event["rawPath"] == "/open/42"
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"colour": "red,blue", "size": ""}
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"] and event["headers"]["user-agent"].startswith("curl/")
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["requestContext"]["stage"] == "$default"
    assert "body" not in event and event["isBase64Encoded"] is False


def test_http_api_greedy_route_takes_any_method_and_binary_bodies_arrive_base64(stack, tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(bytes(range(256)))
    status, _, body = curl(
        stack["HttpUrl"] + "/any/a/b/c",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        f"@{blob}",
    )
    event = json.loads(body)["event"]
    assert status == 200
    assert event["routeKey"] == "ANY /any/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b/c"}
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == bytes(range(256))


def test_a_plain_object_result_is_answered_as_json_with_200(stack):
    status, headers, body = curl(stack["HttpUrl"] + "/any/plain")
    assert (status, headers["content-type"], json.loads(body)) == (200, "application/json", {"plain": True})


def test_rest_api_route_receives_payload_1_under_its_stage(stack):
    status, headers, body = curl(stack["RestUrl"] + "/items/7?q=1&q=2", "-X", "POST", "-d", '{"n": 1}')
    event = json.loads(body)["event"]
    assert status == 200 and headers["x-amzn-requestid"]
    assert (event["resource"], event["path"], event["httpMethod"]) == ("/items/{id}", "/items/7", "POST")
    assert event["pathParameters"] == {"id": "7"}
    assert event["queryStringParameters"] == {"q": "2"}
    assert event["multiValueQueryStringParameters"] == {"q": ["1", "2"]}
    assert event["requestContext"]["stage"] == "prod" and event["requestContext"]["path"] == "/prod/items/7"
    assert event["body"] == '{"n": 1}' and event["stageVariables"] is None


def test_unknown_routes_are_answered_as_each_kind_of_api_answers_them(stack):
    assert curl(stack["HttpUrl"] + "/nowhere")[::2] == (404, '{"message": "Not Found"}')
    assert curl(stack["RestUrl"] + "/nowhere")[::2] == (403, '{"message": "Missing Authentication Token"}')
    assert curl(stack["RestUrl"].removesuffix("/prod") + "/dev/items/1")[0] == 403  # no such stage


def test_function_failures_answer_internal_server_error(stack):
    assert curl(stack["HttpUrl"] + "/any/fail")[::2] == (500, '{"message": "Internal Server Error"}')
    assert curl(stack["HttpUrl"] + "/any/malformed")[::2] == (500, '{"message": "Internal Server Error"}')
    assert curl(stack["RestUrl"] + "/items/fail")[::2] == (502, '{"message": "Internal server error"}')


def test_a_function_slower_than_the_integration_timeout_answers_503(stack):
    assert curl(stack["HttpUrl"] + "/any/slow")[::2] == (503, '{"message": "Service Unavailable"}')


def test_jwt_route_passes_the_signed_in_users_claims(stack):
    tokens = sign_in(stack, "ann")
    status, _, body = curl(
        stack["HttpUrl"] + "/closed", "-X", "POST", "-H", f"Authorization: Bearer {tokens['IdToken']}", "-d", "{}"
    )
    jwt = json.loads(body)["event"]["requestContext"]["authorizer"]["jwt"]
    assert status == 200
    assert jwt["claims"]["cognito:username"] == "ann" and jwt["claims"]["aud"] == stack["AppClientId"]
    assert jwt["claims"]["exp"].isdigit()  # claims arrive as strings, as HTTP APIs pass them
    access = curl(stack["HttpUrl"] + "/closed", "-X", "POST", "-H", f"Authorization: {tokens['AccessToken']}")
    assert access[0] == 200  # an access token's client_id stands for aud; "Bearer " is optional


def test_jwt_route_refuses_missing_tampered_and_foreign_tokens_with_401(stack):
    tokens = sign_in(stack, "bob")
    status, headers, body = curl(stack["HttpUrl"] + "/closed", "-X", "POST")
    assert (status, body, headers["www-authenticate"]) == (401, '{"message": "Unauthorized"}', "Bearer")
    head, claims, signature = tokens["IdToken"].split(".")
    forged = json.loads(base64.urlsafe_b64decode(claims + "=="))
    forged["cognito:username"] = "admin"
    forged_claims = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    status, headers, _ = curl(
        stack["HttpUrl"] + "/closed", "-X", "POST", "-H", f"Authorization: Bearer {head}.{forged_claims}.{signature}"
    )
    assert status == 401 and 'error="invalid_token"' in headers["www-authenticate"]
    idp = stack["session"].client("cognito-idp")  # a second pool of the same account: its tokens are not ours
    other = idp.create_user_pool(PoolName="other")["UserPool"]["Id"]
    client = idp.create_user_pool_client(
        UserPoolId=other, ClientName="c", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    idp.admin_create_user(UserPoolId=other, Username="eve", TemporaryPassword=PASSWORD)
    idp.admin_set_user_password(UserPoolId=other, Username="eve", Password=PASSWORD, Permanent=True)
    foreign = idp.initiate_auth(
        ClientId=client, AuthFlow="USER_PASSWORD_AUTH", AuthParameters={"USERNAME": "eve", "PASSWORD": PASSWORD}
    )["AuthenticationResult"]["IdToken"]
    status, headers, _ = curl(stack["HttpUrl"] + "/closed", "-X", "POST", "-H", f"Authorization: Bearer {foreign}")
    assert status == 401 and "valid issuer" in headers["www-authenticate"]


def test_route_throttling_from_the_template_answers_429(stack):
    answers = [curl(stack["HttpUrl"] + "/limited") for _ in range(4)]
    assert [status for status, _, _ in answers[:2]] == [200, 200]  # the burst of 2, then 0.5 a second
    throttled = [body for status, _, body in answers[2:] if status == 429]
    assert throttled and throttled[0] == '{"message": "Too Many Requests"}'
    assert curl(stack["HttpUrl"] + "/open/1")[0] == 200  # other routes keep their own (default) limits


def test_a_request_body_over_10_mb_answers_413(stack, tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"x" * (10 * 1024 * 1024 + 1))
    status, _, body = curl(stack["HttpUrl"] + "/any/upload", "-H", "Expect:", "--data-binary", f"@{big}")
    assert (status, body) == (413, '{"message": "Request Entity Too Large"}')


def test_the_function_uses_the_stacks_table_and_parameter(stack):
    status, _, body = curl(stack["HttpUrl"] + "/any/store")
    assert status == 201
    assert json.loads(body) == {"item": {"thing": "t1", "owner": "ann"}, "greeting": "hello"}
    ddb = stack["session"].client("dynamodb")
    table = next(r["physicalId"] for r in stack["record"]["resources"] if r["logicalId"] == "Table")
    assert ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
    indexes = ddb.describe_table(TableName=table)["Table"]["GlobalSecondaryIndexes"]
    assert [i["IndexName"] for i in indexes] == ["byOwner"]


def test_api_gateway_lists_the_deployed_apis_and_routes(stack):
    v2 = stack["session"].client("apigatewayv2")
    api = next(a for a in v2.get_apis()["Items"] if stack["HttpUrl"].endswith(a["ApiId"]))
    routes = {r["RouteKey"]: r.get("AuthorizationType") for r in v2.get_routes(ApiId=api["ApiId"])["Items"]}
    assert routes["POST /closed"] == "JWT" and routes["GET /open/{id}"] in (None, "NONE")


def test_a_template_with_a_resource_the_emulator_cannot_make_is_refused_by_name_before_anything_is_made(
    stack, tmp_path
):
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n"
        "  Kept:\n    Type: AWS::DynamoDB::Table\n    Properties:\n      TableName: never-made\n"
        "      AttributeDefinitions: [{AttributeName: k, AttributeType: S}]\n"
        "      KeySchema: [{AttributeName: k, KeyType: HASH}]\n"
        "  Queue:\n    Type: AWS::SQS::Queue\n"
        "  Socket:\n    Type: AWS::ApiGatewayV2::Api\n    Properties: {Name: ws, ProtocolType: WEBSOCKET}\n"
    )
    with pytest.raises(TemplateError, match=r"Queue: AWS::SQS::Queue; Socket: WEBSOCKET APIs"):
        StackDeployer(stack["session"]).deploy(template, "refused", {})
    assert "never-made" not in stack["session"].client("dynamodb").list_tables()["TableNames"]


def test_destroy_removes_the_apis_table_user_pool_and_parameter(stack):
    session = stack["session"]
    record = StackDeployer(session).deploy(PLATFORM, "second", {})
    ids = {r["logicalId"]: r["physicalId"] for r in record["resources"]}
    StackDeployer(session).destroy("second")
    assert ids["Http"] not in [a["ApiId"] for a in session.client("apigatewayv2").get_apis()["Items"]]
    assert ids["Rest"] not in [a["id"] for a in session.client("apigateway").get_rest_apis()["items"]]
    assert ids["Table"] not in session.client("dynamodb").list_tables()["TableNames"]
    pools = session.client("cognito-idp").list_user_pools(MaxResults=60)["UserPools"]
    assert ids["Users"] not in [p["Id"] for p in pools]
    assert session.client("ssm").get_parameters(Names=[ids["Greeting"]])["InvalidParameters"] == [ids["Greeting"]]
    assert curl(record["outputs"]["HttpUrl"] + "/open/1")[0] == 404


def test_cors_preflight_is_answered_by_the_gateway_for_allowed_origins_only(stack):
    url = stack["HttpUrl"] + "/closed"  # a JWT route: the preflight needs no token, as on AWS
    preflight = (
        "-X",
        "OPTIONS",
        "-H",
        "Access-Control-Request-Method: POST",
        "-H",
        "Access-Control-Request-Headers: authorization",
    )

    status, headers, body = curl(url, *preflight, "-H", "Origin: https://app.example.com")
    assert (status, body) == (204, "")
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert headers["access-control-allow-methods"] == "GET,POST"
    assert headers["access-control-allow-headers"] == "authorization,content-type"
    assert headers["access-control-max-age"] == "300"

    status, headers, _ = curl(url, *preflight, "-H", "Origin: https://evil.example.net")
    assert status == 204 and not any(name.startswith("access-control-") for name in headers)
    status, headers, _ = curl(
        url, "-X", "OPTIONS", "-H", "Access-Control-Request-Method: DELETE", "-H", "Origin: https://app.example.com"
    )
    assert status == 204 and "access-control-allow-origin" not in headers  # a method the API does not allow


def test_answers_to_an_allowed_origin_carry_the_configured_cors_headers(stack):
    status, headers, _ = curl(stack["HttpUrl"] + "/open/1", "-H", "Origin: https://app.example.com")
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert headers["access-control-expose-headers"] == "x-answered-by"
    status, headers, _ = curl(stack["HttpUrl"] + "/open/1", "-H", "Origin: https://evil.example.net")
    assert status == 200 and "access-control-allow-origin" not in headers
    status, headers, _ = curl(stack["HttpUrl"] + "/closed", "-X", "POST", "-H", "Origin: https://app.example.com")
    assert status == 401 and headers["access-control-allow-origin"] == "https://app.example.com"


def test_a_route_whose_function_is_gone_answers_500_and_the_gateway_keeps_serving(stack):
    session = stack["session"]
    record = StackDeployer(session).deploy(PLATFORM, "orphaned", {})
    function = next(r["physicalId"] for r in record["resources"] if r["type"] == "AWS::Lambda::Function")
    session.client("lambda").delete_function(FunctionName=function)

    status, _, body = curl(record["outputs"]["HttpUrl"] + "/open/1")
    rest_status, _, rest_body = curl(record["outputs"]["RestUrl"] + "/items/1")

    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
    assert (rest_status, json.loads(rest_body)) == (500, {"message": "Internal server error"})
    assert curl(stack["HttpUrl"] + "/open/1")[0] == 200  # the other stack's API still answers
    StackDeployer(session).destroy("orphaned")  # and destroy tolerates the function already gone
