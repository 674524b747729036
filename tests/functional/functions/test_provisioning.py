"""The provisioning API's function against the emulator's AWS API: every route, every refusal, one
certificate per serial under concurrency, and nothing half-made when a step fails."""

from __future__ import annotations

import concurrent.futures
import json
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from emulator.api import EmulatorApi
from tests.functional.functions.provisioning_stack import (
    API_URL,
    POLICY,
    STACK,
    Account,
    Failing,
    csr_pem,
    event,
)

pytestmark = pytest.mark.timeout(120)
ENROLL = "POST /devices/{serial}/certificate"
DELETE = "DELETE /devices/{serial}"
FORBIDDEN = "Unknown serial or wrong token."


@pytest.fixture(scope="module")
def emulator_api():
    api = EmulatorApi(mqtt_endpoint=("localhost", 18883)).start()
    yield api
    api.reset()
    api.stop()


@pytest.fixture
def account(emulator_api) -> Account:
    emulator_api.reset()
    return Account(emulator_api.url)


def public_der(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def nothing_made(account: Account, serial: str) -> None:
    assert account.certificates() == []
    assert serial not in account.things()


# -- GET /config ------------------------------------------------------------------------------------------


def test_config_sends_a_device_to_this_region_when_the_map_is_empty(account):
    status, body = account.send(event("GET /config", query={"country": "DE"}))
    assert status == 200
    assert body == {"region": "us-east-1", "iotEndpoint": "localhost:18883", "provisioningUrl": API_URL}


def test_config_prefers_country_and_state_then_country_then_default(account):
    west = {"iotEndpoint": "west-ats.iot.us-west-2.amazonaws.com", "provisioningUrl": "https://w.example/"}
    europe = {"iotEndpoint": "eu-ats.iot.eu-central-1.amazonaws.com", "provisioningUrl": "https://e.example"}
    account.set_region_map(
        {
            "default": "eu-central-1",
            "countries": {"US": "us-east-1", "US-CA": "us-west-2"},
            "regions": {"us-west-2": west, "eu-central-1": europe},
        }
    )
    regions = {
        (country, state): account.send(event("GET /config", query={"country": country, "state": state}))[1]["region"]
        for country, state in (("US", "CA"), ("us", "ny"), ("FR", ""))
    }
    assert regions == {("US", "CA"): "us-west-2", ("us", "ny"): "us-east-1", ("FR", ""): "eu-central-1"}
    assert account.send(event("GET /config", query={"country": "US", "state": "CA"}))[1]["provisioningUrl"] == (
        "https://w.example"
    )


@pytest.mark.parametrize(
    "query",
    [
        {},  # no country
        {"country": "DEU"},  # three letters
        {"country": "D1"},  # a digit
        {"country": "DE", "state": "CALIFORNIA"},  # a state name, not a code
    ],
)
def test_config_refuses_what_is_not_a_country_code_with_a_sentence(account, query):
    status, body = account.send(event("GET /config", query=query))
    assert status == 400 and body["message"].endswith(".")


def test_a_region_map_naming_a_region_without_endpoints_is_a_500_without_details(account, capsys):
    account.set_region_map({"countries": {"DE": "eu-central-1"}})
    status, body = account.send(event("GET /config", query={"country": "DE"}))
    assert status == 500 and "eu-central-1" not in body["message"]
    assert "eu-central-1" in capsys.readouterr().out  # the operator finds it in the log


# -- POST /devices/{serial}/certificate -------------------------------------------------------------------


def test_an_admitted_device_gets_a_certificate_for_its_own_key(account):
    token = account.admit("sn-1")
    csr, key = csr_pem("sn-1")
    status, body = account.enroll("sn-1", token, csr)
    assert status == 201
    cert = x509.load_pem_x509_certificate(body["certificatePem"].encode())
    assert public_der(cert) == public_der(key)
    assert body["thingName"] == "sn-1" and body["region"] == "us-east-1" and body["topicRoot"] == f"devices/{STACK}"
    assert body["iotEndpoint"] == "localhost:18883"
    described = account.iot.describe_certificate(certificateId=body["certificateId"])["certificateDescription"]
    assert described["status"] == "ACTIVE"
    arn = described["certificateArn"]
    assert account.iot.list_thing_principals(thingName="sn-1")["principals"] == [arn]
    assert [p["policyName"] for p in account.iot.list_attached_policies(target=arn)["policies"]] == [POLICY]
    assert account.iot.describe_thing(thingName="sn-1")["attributes"] == {"provisioningStack": STACK}
    row = account.row("sn-1")
    assert row["status"]["S"] == "REGISTERED" and row["certificateId"]["S"] == body["certificateId"]
    assert token not in json.dumps(row)  # only its hash is kept


def test_a_csr_without_a_common_name_is_accepted(account):
    token = account.admit("sn-2")
    assert account.enroll("sn-2", token, csr_pem(None)[0])[0] == 201


def test_unknown_serial_and_wrong_token_get_the_same_answer(account):
    token = account.admit("sn-3")
    unknown = account.enroll("nobody", token, csr_pem("nobody")[0])
    wrong = account.enroll("sn-3", "x" * len(token), csr_pem("sn-3")[0])
    assert unknown == wrong == (403, {"message": FORBIDDEN})
    nothing_made(account, "sn-3")


def test_too_many_wrong_tokens_disable_the_serial_until_it_is_admitted_again(account):
    token = account.admit("sn-4")
    for _ in range(5):
        assert account.enroll("sn-4", "wrong-token-0000000000", csr_pem("sn-4")[0])[0] == 403
    status, body = account.enroll("sn-4", token, csr_pem("sn-4")[0])
    assert status == 403 and "disabled" in body["message"]
    nothing_made(account, "sn-4")


def test_a_registered_device_is_refused_a_second_certificate(account):
    token = account.admit("sn-5")
    assert account.enroll("sn-5", token, csr_pem("sn-5")[0])[0] == 201
    status, body = account.enroll("sn-5", token, csr_pem("sn-5")[0])
    assert status == 409 and '"replace": true' in body["message"]
    assert len(account.certificates()) == 1


def test_replace_makes_the_new_certificate_active_before_the_old_one_goes(account):
    token = account.admit("sn-6")
    old = account.enroll("sn-6", token, csr_pem("sn-6")[0])[1]["certificateId"]
    calls = Failing(account.iot, {})
    status, body = account.send(
        event(ENROLL, "sn-6", {"token": token, "csr": csr_pem("sn-6")[0], "replace": True}), iot=calls
    )
    assert status == 201 and body["certificateId"] != old
    assert [c["certificateId"] for c in account.certificates()] == [body["certificateId"]]
    order = [name for name in calls.calls if name in ("register_thing", "update_certificate", "delete_certificate")]
    assert order == ["register_thing", "update_certificate", "delete_certificate"]  # the new one first
    assert account.row("sn-6")["certificateId"]["S"] == body["certificateId"]


def test_replace_for_a_device_that_is_not_registered_is_refused(account):
    token = account.admit("sn-7")
    status, body = account.enroll("sn-7", token, csr_pem("sn-7")[0], replace=True)
    assert status == 409 and "not registered" in body["message"]


def test_without_a_csr_the_api_asks_for_one_by_default(account):
    token = account.admit("sn-8")
    assert account.enroll("sn-8", token) == (400, {"message": "send a CSR: the key is made on the device."})


def test_server_made_keys_are_returned_once_when_the_stack_allows_them(account):
    token = account.admit("sn-9")
    status, body = account.send(
        event(ENROLL, "sn-9", {"token": token}), config=account.config(ALLOW_SERVER_KEYS="true")
    )
    assert status == 201
    key = serialization.load_pem_private_key(body["privateKey"].encode(), None)
    cert = x509.load_pem_x509_certificate(body["certificatePem"].encode())
    assert public_der(cert) == public_der(key)
    assert "privateKey" not in json.dumps(account.row("sn-9"))


def test_a_thing_of_the_same_name_that_another_fleet_owns_is_not_taken_over(account):
    account.iot.create_thing(thingName="sn-10", attributePayload={"attributes": {"owner": "someone-else"}})
    token = account.admit("sn-10")
    status, body = account.enroll("sn-10", token, csr_pem("sn-10")[0])
    assert status == 409 and "not this fleet's" in body["message"]
    assert account.certificates() == [] and account.row("sn-10")["status"]["S"] == "ADMITTED"


def test_concurrent_requests_for_one_serial_make_one_certificate(account):
    token = account.admit("sn-11")
    csrs = [csr_pem("sn-11")[0] for _ in range(8)]

    def enroll(index: int) -> int:
        request = event(ENROLL, "sn-11", {"token": token, "csr": csrs[index]})
        return account.send(request, request_id=f"req-{index}")[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(enroll, range(8)))
    assert statuses == [201] + [409] * 7
    assert len(account.certificates()) == 1


# -- nothing half-made --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        "describe_thing",  # before anything is made
        "register_thing",  # the template's call itself
    ],
)
def test_a_failing_iot_step_of_a_new_device_leaves_nothing_and_the_device_can_retry(account, operation, capsys):
    token = account.admit("sn-12")
    status, body = account.send(
        event(ENROLL, "sn-12", {"token": token, "csr": csr_pem("sn-12")[0]}),
        iot=Failing(account.iot, {operation: "InternalFailureException"}),
    )
    assert status == 429  # transient after every retry: the device backs off and tries again
    nothing_made(account, "sn-12")
    assert account.row("sn-12")["status"]["S"] == "ADMITTED"
    assert "Traceback" not in capsys.readouterr().out
    assert account.enroll("sn-12", token, csr_pem("sn-12")[0])[0] == 201


def test_a_failure_after_register_thing_removes_the_thing_and_certificate_it_made(account):
    token = account.admit("sn-13")
    table = Failing(account.dynamodb, {})
    updates = {"count": 0}

    def flaky_update(**kwargs):
        updates["count"] += 1
        if updates["count"] == 2:  # 1: the claim; 2: recording REGISTERED, after RegisterThing made everything
            raise RuntimeError("the table went away")
        return account.dynamodb.update_item(**kwargs)

    table.update_item = flaky_update
    request = event(ENROLL, "sn-13", {"token": token, "csr": csr_pem("sn-13")[0]})
    status, body = account.send(request, dynamodb=table)
    assert status == 500 and body == {"message": "The request failed; try again later."}
    nothing_made(account, "sn-13")
    assert account.row("sn-13")["status"]["S"] == "ADMITTED"


@pytest.mark.parametrize(
    "operation",
    [
        "update_certificate",  # the old certificate's INACTIVE
        "detach_policy",  # its policy
        "detach_thing_principal",  # its thing
        "delete_certificate",  # its deletion, last
    ],
)
def test_a_replace_that_fails_retiring_the_old_certificate_keeps_the_old_one_working(account, operation):
    token = account.admit("sn-14")
    old = account.enroll("sn-14", token, csr_pem("sn-14")[0])[1]["certificateId"]
    status, _body = account.send(
        event(ENROLL, "sn-14", {"token": token, "csr": csr_pem("sn-14")[0], "replace": True}),
        iot=Failing(account.iot, {operation: "KeyError"}, times=1),
    )
    assert status == 500
    certificates = account.certificates()
    assert [(c["certificateId"], c["status"]) for c in certificates] == [(old, "ACTIVE")]
    arn = certificates[0]["certificateArn"]
    assert account.iot.list_thing_principals(thingName="sn-14")["principals"] == [arn]
    assert [p["policyName"] for p in account.iot.list_attached_policies(target=arn)["policies"]] == [POLICY]
    assert account.row("sn-14")["certificateId"]["S"] == old
    assert account.enroll("sn-14", token, csr_pem("sn-14")[0], replace=True)[0] == 201  # and it can retry


def test_a_server_made_key_whose_registration_fails_leaves_no_certificate(account):
    token = account.admit("sn-24")
    status, _body = account.send(
        event(ENROLL, "sn-24", {"token": token}),
        config=account.config(ALLOW_SERVER_KEYS="true"),
        iot=Failing(account.iot, {"register_thing": "KeyError"}),
    )
    assert status == 500
    nothing_made(account, "sn-24")


def test_a_bad_csr_signature_is_refused_by_aws_iot_and_undone(account):
    token = account.admit("sn-15")
    good, _key = csr_pem("sn-15")
    der = bytearray(x509.load_pem_x509_csr(good.encode()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # inside the signature
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    status, body = account.enroll("sn-15", token, forged)
    assert status == 400 and "AWS IoT refused" in body["message"]
    nothing_made(account, "sn-15")
    assert account.row("sn-15")["status"]["S"] == "ADMITTED"


def _rsa_csr(bits: int) -> str:
    return csr_pem("sn-16", rsa.generate_private_key(public_exponent=65537, key_size=bits))[0]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{not json", "not valid JSON"),  # malformed JSON
        ("[1, 2]", "JSON object"),  # not an object
        ({"csr": "x"}, "token must be"),  # no token
        ({"token": "short", "csr": "x"}, "token must be"),  # a token too short to be one
        ({"token": 12345678901234567890, "csr": "x"}, "token must be"),  # a number
        ({"token": "token-of-the-device-0001", "csr": "hello"}, "not a PEM certificate request"),  # not PEM
        ({"token": "token-of-the-device-0001", "csr": 7}, "csr must be"),  # not a string
        (
            {
                "token": "token-of-the-device-0001",
                "csr": "-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----",
            },
            "not a PEM certificate request",
        ),  # not base64
        (
            {
                "token": "token-of-the-device-0001",
                "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
            },
            "not",
        ),  # base64 that is no DER
        ({"token": "token-of-the-device-0001", "csr": csr_pem("another-serial")[0]}, "must be 'sn-16'"),  # other CN
        ({"token": "token-of-the-device-0001", "csr": "RSA1024"}, "at least 2048"),  # weak RSA
        ({"token": "token-of-the-device-0001", "csr": "ED25519"}, "neither EC"),  # a key AWS IoT does not sign
        ({"token": "token-of-the-device-0001", "csr": "P521"}, "P-256 or P-384"),  # a curve the API does not take
        ({"token": "token-of-the-device-0001", "csr": "P256", "replace": "yes"}, "replace must be"),  # not a bool
        ("x" * 20000, "at most"),  # a body far larger than a CSR
    ],
)
def test_malformed_requests_are_400_with_a_sentence_and_nothing_made(account, body, fragment):
    account.admit("sn-16")
    if isinstance(body, dict) and body.get("csr") in ("RSA1024", "ED25519", "P521", "P256"):
        keys = {
            "ED25519": ed25519.Ed25519PrivateKey.generate(),
            "P521": ec.generate_private_key(ec.SECP521R1()),
            "P256": ec.generate_private_key(ec.SECP256R1()),
        }
        body = body | {"csr": _rsa_csr(1024) if body["csr"] == "RSA1024" else _key_csr(keys[body["csr"]])}
    status, answer = account.send(event(ENROLL, "sn-16", body))
    assert status == 400 and fragment in answer["message"], answer
    nothing_made(account, "sn-16")


def _key_csr(key) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sn-16")])
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, algorithm)
    return request.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize("serial", ["has space", "slash/es", "x" * 129, ""])
def test_a_serial_that_cannot_be_a_thing_name_is_400(account, serial):
    status, body = account.send(event(ENROLL, serial, {"token": "token-of-the-device-0001", "csr": "x"}))
    assert status == 400 and "serial" in body["message"]


def test_an_unknown_route_is_404(account):
    assert account.send(event("GET /devices"))[0] == 404


def test_an_unexpected_failure_is_500_without_a_traceback(account, capsys):
    token = account.admit("sn-17")
    status, body = account.send(
        event(ENROLL, "sn-17", {"token": token, "csr": csr_pem("sn-17")[0]}),
        iot=Failing(account.iot, {"register_thing": "KeyError"}),
    )
    assert (status, body) == (500, {"message": "The request failed; try again later."})
    out = capsys.readouterr().out
    assert '"decision": "failed"' in out and "Traceback" not in out and token not in out
    nothing_made(account, "sn-17")


def test_throttling_that_outlasts_the_retries_is_429_and_nothing_is_left(account):
    token = account.admit("sn-18")
    status, body = account.send(
        event(ENROLL, "sn-18", {"token": token, "csr": csr_pem("sn-18")[0]}),
        iot=Failing(account.iot, {"register_thing": "ThrottlingException"}),
    )
    assert status == 429 and "retry" in body["message"]
    nothing_made(account, "sn-18")


# -- DELETE /devices/{serial} -------------------------------------------------------------------------------


def test_delete_removes_certificate_and_thing_and_admits_the_serial_again(account):
    token = account.admit("sn-19")
    assert account.enroll("sn-19", token, csr_pem("sn-19")[0])[0] == 201
    status, body = account.send(event(DELETE, "sn-19", {"token": token}))
    assert (status, body) == (200, {"thingName": "sn-19", "status": "ADMITTED"})
    nothing_made(account, "sn-19")
    assert account.enroll("sn-19", token, csr_pem("sn-19")[0])[0] == 201  # and it can enroll again


def test_delete_with_disable_refuses_the_serial_afterwards(account):
    token = account.admit("sn-20")
    account.enroll("sn-20", token, csr_pem("sn-20")[0])
    assert account.send(event(DELETE, "sn-20", {"token": token, "disable": True}))[0] == 200
    status, body = account.enroll("sn-20", token, csr_pem("sn-20")[0])
    assert status == 403 and "disabled" in body["message"]


def test_delete_needs_the_token_and_a_registered_device(account):
    token = account.admit("sn-21")
    assert account.send(event(DELETE, "sn-21", {"token": token}))[0] == 409  # nothing registered yet
    account.enroll("sn-21", token, csr_pem("sn-21")[0])
    assert account.send(event(DELETE, "sn-21", {"token": "wrong-token-0000000000"})) == (403, {"message": FORBIDDEN})
    assert len(account.certificates()) == 1


# -- a request that died holding the claim --------------------------------------------------------------------


def _claimed(account: Account, serial: str, *, until: int) -> None:
    account.dynamodb.update_item(
        TableName="prov-test-fleet",
        Key={"serial": {"S": serial}},
        UpdateExpression="SET #s = :c, claimId = :id, claimedUntil = :u, previousStatus = :p",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":c": {"S": "CLAIMED"},
            ":id": {"S": "dead-request"},
            ":u": {"N": str(until)},
            ":p": {"S": "ADMITTED"},
        },
    )


def test_a_live_claim_is_answered_in_progress(account):
    token = account.admit("sn-22")
    _claimed(account, "sn-22", until=int(time.time()) + 60)
    status, body = account.enroll("sn-22", token, csr_pem("sn-22")[0])
    assert status == 409 and "in progress" in body["message"]


def test_a_lapsed_claim_is_taken_over_and_what_its_request_left_is_cleared(account):
    token = account.admit("sn-23")
    # the dead request had got as far as RegisterThing: a thing of this stack with a certificate on it
    account.iot.create_thing(thingName="sn-23", attributePayload={"attributes": {"provisioningStack": STACK}})
    leftover = account.iot.create_certificate_from_csr(certificateSigningRequest=csr_pem("sn-23")[0], setAsActive=True)
    account.iot.attach_thing_principal(thingName="sn-23", principal=leftover["certificateArn"])
    _claimed(account, "sn-23", until=int(time.time()) - 1)
    status, body = account.enroll("sn-23", token, csr_pem("sn-23")[0])
    assert status == 201
    assert [c["certificateId"] for c in account.certificates()] == [body["certificateId"]]


def test_a_delete_that_conflicts_with_a_detachment_not_yet_applied_is_retried(account):
    token = account.admit("sn-25")
    assert account.enroll("sn-25", token, csr_pem("sn-25")[0])[0] == 201
    iot = Failing(account.iot, {"delete_certificate": "DeleteConflictException"}, times=2)  # as AWS may, briefly
    assert account.send(event(DELETE, "sn-25", {"token": token}), iot=iot)[0] == 200
    assert iot.calls.count("delete_certificate") == 3
    nothing_made(account, "sn-25")
