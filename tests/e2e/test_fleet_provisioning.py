"""Fleet provisioning by claim over MQTT, against the emulator, with paho as the device.

A claim certificate (made with the control plane's CreateKeysAndCertificate, ACTIVE, with a claim policy)
connects, asks for a certificate on ``$aws/certificates/create[-from-csr]/json`` and provisions a thing with
``$aws/provisioning-templates/<name>/provision/json``; the answers come on ``.../accepted`` or
``.../rejected`` to that connection alone.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from base.certificates import certificate_id
from emulator.lambdas.log_groups import parse_event_line
from tests.e2e.conftest import Device, create_function, wait_for

pytestmark = pytest.mark.timeout(90)

TEMPLATE = "fleet"
CLAIM_POLICY = "claim"
DEVICE_POLICY = "device"
CREATE, CREATE_CSR = "$aws/certificates/create/json", "$aws/certificates/create-from-csr/json"
PROVISION = f"$aws/provisioning-templates/{TEMPLATE}/provision/json"
ARN = "arn:aws:iot:us-east-1:123456789012"


def claim_policy(template: str = TEMPLATE) -> str:
    """The claim certificate's policy: connect, and the provisioning topics only."""
    topics = ["$aws/certificates/create/*", "$aws/certificates/create-from-csr/*"]
    topics.append(f"$aws/provisioning-templates/{template}/provision/*")
    publish = [f"{ARN}:topic/{topic}" for topic in topics]
    subscribe = [f"{ARN}:topicfilter/{topic}" for topic in topics]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/*"},
                {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": publish},
                {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": subscribe},
            ],
        }
    )


THING = "${iot:Connection.Thing.ThingName}"
DEVICE_POLICY_DOCUMENT = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/{THING}"},
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{ARN}:topic/things/{THING}/*"},
        ],
    }
)

TEMPLATE_BODY = json.dumps(
    {
        "Parameters": {
            "SerialNumber": {"Type": "String"},
            "Site": {"Type": "String", "Default": "factory"},
            "AWS::IoT::Certificate::Id": {"Type": "String"},
        },
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {"ThingName": {"Ref": "SerialNumber"}, "AttributePayload": {"site": {"Ref": "Site"}}},
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": DEVICE_POLICY}},
        },
        "DeviceConfiguration": {"site": {"Ref": "Site"}},
    }
)


def write_identity(folder: Path, name: str, cert_pem: str, key_pem: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    cert.write_text(cert_pem)
    key.write_text(key_pem)
    key.chmod(0o600)
    return cert, key


@pytest.fixture
def claim(emulator, aws, tmp_path):
    """The template, the device and claim policies, and an ACTIVE claim certificate with its files."""
    iot = aws.client("iot")
    iot.create_policy(policyName=DEVICE_POLICY, policyDocument=DEVICE_POLICY_DOCUMENT)
    iot.create_policy(policyName=CLAIM_POLICY, policyDocument=claim_policy())
    made = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName=CLAIM_POLICY, target=made["certificateArn"])
    iot.create_provisioning_template(
        templateName=TEMPLATE,
        templateBody=TEMPLATE_BODY,
        provisioningRoleArn="arn:aws:iam::123456789012:role/Provisioning",
        enabled=True,
        type="FLEET_PROVISIONING",
    )
    cert, key = write_identity(tmp_path / "claim", "claim", made["certificatePem"], made["keyPair"]["PrivateKey"])
    return {"cert": cert, "key": key, "id": made["certificateId"], "iot": iot}


def connect(emulator, cert: Path, key: Path, client_id: str):
    return Device(emulator, cert, key, client_id).session()


def ask(session, topic: str, payload: dict) -> tuple[str, dict]:
    """Subscribe to the answers of ``topic``, publish the request, and return the answer's topic and body."""
    assert session.subscribe(f"{topic}/accepted", f"{topic}/rejected") == [1, 1]
    session.publish(topic, payload)
    return session.received()


def csr_for(key, cn: str = "sensor-1") -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


def registration(made: dict, **parameters: str) -> dict:
    """RegisterThing's request: the token of a certificate just made, and the template's parameters."""
    return {"certificateOwnershipToken": made["certificateOwnershipToken"], "parameters": parameters}


def test_a_claimed_device_gets_keys_a_thing_and_an_active_certificate_then_connects(emulator, claim, tmp_path):
    session = connect(emulator, claim["cert"], claim["key"], "factory-line-1")
    topic, made = ask(session, CREATE, {})
    assert topic == f"{CREATE}/accepted"
    assert set(made) == {"certificateId", "certificatePem", "privateKey", "certificateOwnershipToken"}
    iot = claim["iot"]
    assert iot.describe_certificate(certificateId=made["certificateId"])["certificateDescription"]["status"] == (
        "PENDING_ACTIVATION"
    )

    topic, provisioned = ask(session, PROVISION, registration(made, SerialNumber="sensor-1"))

    assert topic == f"{PROVISION}/accepted", provisioned
    assert provisioned == {"thingName": "sensor-1", "deviceConfiguration": {"site": "factory"}}
    cert_arn = f"{ARN}:cert/{made['certificateId']}"
    assert iot.describe_certificate(certificateId=made["certificateId"])["certificateDescription"]["status"] == "ACTIVE"
    assert iot.list_thing_principals(thingName="sensor-1")["principals"] == [cert_arn]
    assert [p["policyName"] for p in iot.list_attached_policies(target=cert_arn)["policies"]] == [DEVICE_POLICY]
    assert iot.describe_thing(thingName="sensor-1")["attributes"] == {"site": "factory"}
    cert, key = write_identity(tmp_path / "device", "sensor-1", made["certificatePem"], made["privateKey"])
    device = connect(emulator, cert, key, "sensor-1")
    device.publish("things/sensor-1/telemetry", {"t": 21})  # its own policy applies now


def test_with_a_csr_the_certificate_is_for_the_device_key_which_never_leaves_it(emulator, claim):
    session = connect(emulator, claim["cert"], claim["key"], "factory-line-1")
    key = ec.generate_private_key(ec.SECP256R1())
    topic, made = ask(session, CREATE_CSR, {"certificateSigningRequest": csr_for(key)})
    assert topic == f"{CREATE_CSR}/accepted"
    assert "privateKey" not in made
    cert = x509.load_pem_x509_certificate(made["certificatePem"].encode())
    assert cert.public_key() == key.public_key()
    assert certificate_id(cert) == made["certificateId"]
    topic, provisioned = ask(session, PROVISION, registration(made, SerialNumber="sensor-2", Site="lab"))
    assert provisioned == {"thingName": "sensor-2", "deviceConfiguration": {"site": "lab"}}


def test_an_ownership_token_is_spent_by_the_registration_that_uses_it(emulator, claim):
    session = connect(emulator, claim["cert"], claim["key"], "factory-line-1")
    _topic, made = ask(session, CREATE, {})
    request = registration(made, SerialNumber="sensor-3")
    assert ask(session, PROVISION, request)[0] == f"{PROVISION}/accepted"

    session.publish(PROVISION, {**request, "parameters": {"SerialNumber": "sensor-4"}})
    topic, rejected = session.received()

    assert topic == f"{PROVISION}/rejected"
    assert rejected["statusCode"] == 400 and rejected["errorCode"] == "InvalidCertificateOwnershipToken"
    assert "sensor-4" not in [t["thingName"] for t in claim["iot"].list_things()["things"]]


def test_an_expired_or_unknown_or_empty_token_is_rejected_and_nothing_is_made(emulator, claim, monkeypatch):
    monkeypatch.setattr(emulator.regions["us-east-1"].fleet.tokens, "ttl", 0.0)  # every token expires at once
    session = connect(emulator, claim["cert"], claim["key"], "factory-line-1")
    _topic, made = ask(session, CREATE, {})
    expired = registration(made, SerialNumber="late")
    assert ask(session, PROVISION, expired)[1]["errorCode"] == "InvalidCertificateOwnershipToken"
    session.publish(PROVISION, {"certificateOwnershipToken": "made-up", "parameters": {"SerialNumber": "late"}})
    assert session.received()[1]["errorCode"] == "InvalidCertificateOwnershipToken"
    session.publish(PROVISION, {"parameters": {"SerialNumber": "late"}})
    empty = session.received()[1]
    assert empty == {
        "statusCode": 400,
        "errorCode": "InvalidCertificateOwnershipToken",
        "errorMessage": "Certificate ownership token cannot be empty.",
    }
    assert claim["iot"].list_things()["things"] == []
    status = claim["iot"].describe_certificate(certificateId=made["certificateId"])["certificateDescription"]["status"]
    assert status == "PENDING_ACTIVATION"


def bad_signature(csr_pem: str) -> str:
    """The CSR with the last byte of its signature changed: it parses, and its signature does not verify."""
    der = bytearray(x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    body = base64.encodebytes(bytes(der)).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join(["-----BEGIN CERTIFICATE REQUEST-----", *lines, "-----END CERTIFICATE REQUEST-----", ""])


def test_bad_requests_are_rejected_with_the_reason(emulator, claim):
    session = connect(emulator, claim["cert"], claim["key"], "factory-line-1")
    key = ec.generate_private_key(ec.SECP256R1())
    tampered = bad_signature(csr_for(key))
    small = ec.generate_private_key(ec.SECP256K1())
    assert session.subscribe(f"{CREATE_CSR}/+", f"{CREATE}/+") == [1, 1]
    for payload, why in [
        ({"certificateSigningRequest": tampered}, "does not verify"),
        ({"certificateSigningRequest": csr_for(small)}, "secp256k1"),
        ({}, "certificateSigningRequest must be a PEM CSR"),
    ]:
        session.publish(CREATE_CSR, payload)
        topic, rejected = session.received()
        assert topic == f"{CREATE_CSR}/rejected"
        assert rejected["statusCode"] == 400 and why in rejected["errorMessage"]
    session.client.publish(CREATE, b"not json", qos=1).wait_for_publish(5)
    assert session.received() == (
        f"{CREATE}/rejected",
        {"statusCode": 400, "errorCode": "InvalidPayload", "errorMessage": "The request is not valid JSON."},
    )


def test_a_template_that_is_missing_disabled_or_not_for_fleet_provisioning_is_rejected(emulator, claim, aws):
    iot = claim["iot"]
    iot.update_provisioning_template(templateName=TEMPLATE, enabled=False)
    session = connect(emulator, claim["cert"], claim["key"], "factory-line-1")
    _topic, made = ask(session, CREATE, {})
    request = registration(made, SerialNumber="s")
    assert ask(session, PROVISION, request)[1]["errorMessage"] == f"The provisioning template {TEMPLATE} is disabled."
    iot.delete_provisioning_template(templateName=TEMPLATE)
    session.publish(PROVISION, request)
    assert session.received()[1]["statusCode"] == 404
    assert iot.list_things()["things"] == []


def test_the_answer_goes_to_the_requesting_connection_only(emulator, claim):
    other = connect(emulator, claim["cert"], claim["key"], "factory-line-2")
    assert other.subscribe(f"{CREATE}/accepted") == [1]
    session = connect(emulator, claim["cert"], claim["key"], "factory-line-1")
    assert ask(session, CREATE, {})[0] == f"{CREATE}/accepted"
    assert other.received_nothing(0.5)


def test_a_request_before_subscribing_gets_no_answer(emulator, claim):
    session = connect(emulator, claim["cert"], claim["key"], "factory-line-1")
    session.publish(CREATE, {})
    assert session.received_nothing(0.5)


def test_the_claim_policy_is_enforced_like_any_other(emulator, claim):
    iot = claim["iot"]
    iot.create_provisioning_template(
        templateName="other", templateBody=TEMPLATE_BODY, provisioningRoleArn="arn:aws:iam::123456789012:role/P",
        enabled=True,
    )  # fmt: skip
    session = connect(emulator, claim["cert"], claim["key"], "factory-line-1")
    _topic, made = ask(session, CREATE, {})
    other = "$aws/provisioning-templates/other/provision/json"
    assert session.subscribe(f"{other}/accepted") == [0x80]  # not its template: no subscription
    session.send(other, {"certificateOwnershipToken": made["certificateOwnershipToken"]})
    assert session.disconnected.wait(5)  # publishing outside the policy ends the connection, as on AWS
    assert iot.list_things()["things"] == []


HOOK = """
import json, time

def lambda_handler(event, context):
    print(json.dumps(event))
    serial = event["parameters"].get("SerialNumber", "")
    if serial == "slow":
        time.sleep(8)
    if serial == "garbage":
        return "yes"
    if serial.startswith("allowed-"):
        return {"allowProvisioning": True, "parameterOverrides": {"Site": "from-hook"}}
    return {"allowProvisioning": False}
"""


def test_a_pre_provisioning_hook_decides_and_can_override_parameters(emulator, claim, aws):
    iot = claim["iot"]
    arn = create_function(aws, "claim-hook", HOOK, Timeout=15)
    aws.client("lambda").add_permission(
        FunctionName="claim-hook", StatementId="iot", Action="lambda:InvokeFunction", Principal="iot.amazonaws.com"
    )
    iot.update_provisioning_template(templateName=TEMPLATE, preProvisioningHook={"targetArn": arn})
    session = connect(emulator, claim["cert"], claim["key"], "factory-line-1")
    assert session.subscribe(f"{CREATE}/accepted", f"{PROVISION}/+") == [1, 1]

    def register(serial: str) -> tuple[str, dict]:
        session.publish(CREATE, {})
        token = session.received()[1]["certificateOwnershipToken"]
        session.publish(PROVISION, {"certificateOwnershipToken": token, "parameters": {"SerialNumber": serial}})
        return session.received(timeout=15)

    allowed = {"thingName": "allowed-1", "deviceConfiguration": {"site": "from-hook"}}
    assert register("allowed-1") == (f"{PROVISION}/accepted", allowed)
    denied = register("stranger")
    assert denied[0] == f"{PROVISION}/rejected" and denied[1]["statusCode"] == 403
    assert "refused" in denied[1]["errorMessage"]
    assert "allowProvisioning" in register("garbage")[1]["errorMessage"]
    assert "within 5 s" in register("slow")[1]["errorMessage"]
    assert [t["thingName"] for t in iot.list_things()["things"]] == ["allowed-1"]
    first = next(e for e in hook_events(emulator) if e["parameters"].get("SerialNumber") == "allowed-1")
    assert first["claimCertificateId"] == claim["id"]
    assert first["clientId"] == "factory-line-1"
    assert first["templateArn"] == f"{ARN}:provisioningtemplate/{TEMPLATE}"
    assert set(first) == {"claimCertificateId", "certificateId", "certificatePem", "templateArn", "clientId"} | {
        "parameters"
    }


def test_a_hook_that_iot_may_not_invoke_rejects_the_request(emulator, claim, aws):
    arn = create_function(aws, "claim-hook-closed", HOOK)
    claim["iot"].update_provisioning_template(templateName=TEMPLATE, preProvisioningHook={"targetArn": arn})
    session = connect(emulator, claim["cert"], claim["key"], "factory-line-1")
    _topic, made = ask(session, CREATE, {})
    request = registration(made, SerialNumber="allowed-2")
    topic, rejected = ask(session, PROVISION, request)
    assert topic == f"{PROVISION}/rejected" and "may not invoke" in rejected["errorMessage"], rejected


def hook_events(emulator) -> list[dict]:
    """The events the hook printed (one JSON line each) in its log group."""
    events = []
    for path in emulator.lambdas.logs.log_dir.glob("aws_lambda_claim-hook*.log"):
        for line in path.read_text().splitlines():
            message = parse_event_line(line)[1]
            if message.startswith("{"):
                events.append(json.loads(message))
    return events


def test_the_aws_iot_device_sdk_identity_client_provisions_a_device(emulator, claim) -> None:
    """A client no one here wrote: the AWS IoT Device SDK v2 for Python's fleet provisioning client."""
    from awscrt import mqtt as crt_mqtt
    from awsiot import iotidentity, mqtt_connection_builder

    info = emulator.info()
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",
        port=info["mqtt_port"],
        cert_filepath=str(claim["cert"]),
        pri_key_filepath=str(claim["key"]),
        ca_filepath=info["endpoint_ca"],
        client_id="sdk-claim",
        clean_session=True,
        keep_alive_secs=30,
    )
    connection.connect().result(10)
    try:
        identity = iotidentity.IotIdentityClient(connection)
        answers: dict[str, Any] = {}
        qos = crt_mqtt.QoS.AT_LEAST_ONCE
        created, _ = identity.subscribe_to_create_keys_and_certificate_accepted(
            iotidentity.CreateKeysAndCertificateSubscriptionRequest(), qos, lambda r: answers.setdefault("keys", r)
        )
        created.result(10)
        registered, _ = identity.subscribe_to_register_thing_accepted(
            iotidentity.RegisterThingSubscriptionRequest(template_name=TEMPLATE),
            qos,
            lambda r: answers.setdefault("thing", r),
        )
        registered.result(10)
        identity.publish_create_keys_and_certificate(iotidentity.CreateKeysAndCertificateRequest(), qos).result(10)
        keys = wait_for(lambda: answers.get("keys"))
        identity.publish_register_thing(
            iotidentity.RegisterThingRequest(
                template_name=TEMPLATE,
                certificate_ownership_token=keys.certificate_ownership_token,
                parameters={"SerialNumber": "sdk-device"},
            ),
            qos,
        ).result(10)
        thing = wait_for(lambda: answers.get("thing"))
    finally:
        connection.disconnect().result(10)

    assert thing.thing_name == "sdk-device"
    assert thing.device_configuration == {"site": "factory"}
    described = claim["iot"].describe_certificate(certificateId=keys.certificate_id)["certificateDescription"]
    assert described["status"] == "ACTIVE"
