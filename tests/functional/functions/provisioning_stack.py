"""The provisioning function against the emulator's AWS API (moto lacks RegisterThing): what the stack
leaves in the account, the function loaded as Lambda loads it, and API Gateway events for it."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca.jitp_template import device_policy
from tests.functional.functions.loading import load_function

STACK = "prov-test"
TABLE = "prov-test-fleet"
POLICY = "prov-test-device-policy"
MAP_PARAMETER = f"/jitr/{STACK}/region-map"
URL_PARAMETER = f"/jitr/{STACK}/provisioning-url"
API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com"
NO_RETRIES = Config(connect_timeout=5, read_timeout=20, retries={"total_max_attempts": 1})


app: Any = load_function("provisioning")
api_edge: Any = sys.modules["api_edge"]  # the module beside app.py that keeps the container's cache


def csr_pem(cn: str | None, key: Any = None) -> tuple[str, Any]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode(), key


def event(route: str, serial: str | None = None, body: Any = None, query: dict | None = None) -> dict:
    """An HTTP API payload 2.0 event as API Gateway sends it."""
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    return {
        "version": "2.0",
        "routeKey": route,
        "pathParameters": {"serial": serial} if serial is not None else {},
        "queryStringParameters": query or {},
        "body": raw,
        "isBase64Encoded": False,
    }


class Failing:
    """A client whose named operations raise ``code`` (``times`` times, or for ever) before calling through."""

    def __init__(self, client: Any, failures: dict[str, str], times: int | None = None) -> None:
        self.client, self.failures, self.times = client, failures, times
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            with self.lock:
                self.calls.append(name)
                code = self.failures.get(name)
                if code is not None and self.times is not None:
                    self.times -= 1
                    if self.times < 0:
                        code = None
            if code == "KeyError":
                raise KeyError("injected")
            if code is not None:
                raise ClientError({"Error": {"Code": code, "Message": f"{code} injected"}}, name)
            return target(**kwargs)

        call.__name__ = name
        return call


@dataclass
class Account:
    """The emulator's account with what the stack makes: the fleet table, the region map, the device policy."""

    url: str
    iot: Any = field(init=False)
    dynamodb: Any = field(init=False)
    ssm: Any = field(init=False)

    def __post_init__(self) -> None:
        api_edge._cache.clear()  # a container's cached region map and endpoint: each test is a fresh account
        session = boto3.Session(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="t")
        self.iot, self.dynamodb, self.ssm = (
            session.client(name, endpoint_url=self.url, config=NO_RETRIES)  # type: ignore[call-overload]
            for name in ("iot", "dynamodb", "ssm")
        )
        self.dynamodb.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "serial", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "serial", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.set_region_map({})
        self.ssm.put_parameter(Name=URL_PARAMETER, Value=API_URL, Type="String")
        self.iot.create_policy(policyName=POLICY, policyDocument=json.dumps(device_policy(f"devices/{STACK}")))

    def set_region_map(self, document: dict) -> None:
        """Change the map, and let the function see it at once (it caches it for a minute)."""
        self.ssm.put_parameter(Name=MAP_PARAMETER, Value=json.dumps(document), Type="String", Overwrite=True)
        api_edge._cache.clear()

    def admit(self, serial: str, token: str = "token-of-the-device-0001") -> str:
        hashed = hashlib.sha256(token.encode()).hexdigest()
        item = {
            "serial": {"S": serial},
            "tokenHash": {"S": hashed},
            "status": {"S": "ADMITTED"},
            "disabled": {"BOOL": False},
        }
        self.dynamodb.put_item(TableName=TABLE, Item=item)
        return token

    def row(self, serial: str) -> dict:
        return self.dynamodb.get_item(TableName=TABLE, Key={"serial": {"S": serial}}, ConsistentRead=True)["Item"]

    def certificates(self) -> list[dict]:
        return self.iot.list_certificates()["certificates"]

    def things(self) -> list[str]:
        return [thing["thingName"] for thing in self.iot.list_things()["things"]]

    def config(self, **changes: Any) -> Any:
        env = {
            "FLEET_TABLE": TABLE,
            "POLICY_NAME": POLICY,
            "STACK_NAME": STACK,
            "AWS_REGION": "us-east-1",
            "REGION_MAP_PARAMETER": MAP_PARAMETER,
            "API_URL_PARAMETER": URL_PARAMETER,
            "TOPIC_ROOT": f"devices/{STACK}",
        }
        return app.Config.from_env(env | changes)

    def work(self, *, config: Any = None, iot: Any = None, dynamodb: Any = None, request_id: str = "req-1") -> Any:
        clients = app.Clients(iot=iot or self.iot, dynamodb=dynamodb or self.dynamodb, ssm=self.ssm)
        calls = app.Calls(sleep=lambda _s: None)
        return app.Provisioning(config or self.config(), clients, calls, request_id)

    def send(self, request: dict, **work: Any) -> tuple[int, dict]:
        answer = app.handle(request, self.work(**work))
        return answer["statusCode"], json.loads(answer["body"])

    def enroll(self, serial: str, token: str, csr: str | None = None, **extra: Any) -> tuple[int, dict]:
        body = {"token": token, **({"csr": csr} if csr is not None else {}), **extra}
        return self.send(event("POST /devices/{serial}/certificate", serial, body))
