"""The emulator's AWS API endpoint: moto server on 127.0.0.1 plus the AWS IoT behaviour moto lacks.

Every test talks to a fresh in-process server over HTTP with boto3, through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization

from base.certificates import certificate_id, to_pem
from base.errors import InvalidInputError
from base.keys import generate_key
from ca.issue import Issuer, issue_root, make_name
from emulator.api import EmulatorApi
from emulator.store.errors import CertificateValidation, ResourceNotFound

pytestmark = pytest.mark.timeout(60)

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = "arn:aws:iam::123456789012:role/JITPRole"
NO_RETRIES = Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 1})
TEMPLATE = json.dumps(
    {
        "Parameters": {"AWS::IoT::Certificate::CommonName": {"Type": "String"}},
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}},
            }
        },
    }
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)  # the emulator checks validity against the real clock


def make_ca(cn: str = "Device CA") -> Issuer:
    key = generate_key("ec-p256")
    return Issuer(issue_root(key, make_name(cn, org="Acme"), now=_now(), days=30), key)


def pem(cert) -> str:
    return to_pem(cert).decode()


def verification_pem(issuer: Issuer, code: str) -> str:
    return pem(issuer.issue_verification(generate_key("ec-p256").public_key(), code, now=_now()))


def register(iot, issuer: Issuer, **params) -> dict:
    """RegisterCACertificate in DEFAULT mode with a correct verification certificate."""
    code = iot.get_registration_code()["registrationCode"]
    return iot.register_ca_certificate(
        caCertificate=pem(issuer.certificate), verificationCertificate=verification_pem(issuer, code), **params
    )


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture
def aws_env(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "MOTO_ACCOUNT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    return monkeypatch


@pytest.fixture
def start_api(aws_env):
    """Start an EmulatorApi on a free port; AWS_ENDPOINT_URL points at it; stopped and emptied after."""
    started: list[EmulatorApi] = []

    def start(**kwargs) -> EmulatorApi:
        api = EmulatorApi(**kwargs).start()
        api.reset()
        started.append(api)
        aws_env.setenv("AWS_ENDPOINT_URL", api.url)
        return api

    yield start
    for api in started:
        api.reset()
        api.stop()


@pytest.fixture
def api(start_api) -> EmulatorApi:
    return start_api(mqtt_endpoint=("localhost", 18883))


@pytest.fixture
def iot(api):
    return boto3.client("iot", config=NO_RETRIES)  # endpoint from AWS_ENDPOINT_URL


# -- the server -------------------------------------------------------------------------------------


def test_server_listens_on_loopback_on_a_free_port(api):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", api.url) and api.port > 0
    assert api.info()["endpointUrl"] == api.url


def test_unknown_quota_operation_is_refused_before_starting():
    with pytest.raises(InvalidInputError, match="UpdateCertificat"):
        EmulatorApi(quotas={"UpdateCertificat": 10})


# -- registration codes -----------------------------------------------------------------------------


def test_registration_code_is_64_hex_and_stable_per_account(iot):
    code = iot.get_registration_code()["registrationCode"]
    assert re.fullmatch(r"[0-9a-f]{64}", code)
    assert iot.get_registration_code()["registrationCode"] == code


def test_deleting_the_registration_code_issues_a_new_one(iot):
    old = iot.get_registration_code()["registrationCode"]
    iot.delete_registration_code()
    assert iot.get_registration_code()["registrationCode"] != old


# -- RegisterCACertificate ---------------------------------------------------------------------------


def test_register_ca_with_verification_certificate_returns_cacert_arn_and_der_id(iot):
    issuer = make_ca()
    answer = register(iot, issuer, setAsActive=True, allowAutoRegistration=True)
    ca_id = certificate_id(issuer.certificate)
    assert answer["certificateId"] == ca_id
    assert answer["certificateArn"] == f"arn:aws:iot:{REGION}:{ACCOUNT}:cacert/{ca_id}"


def _wrong_cn(iot, issuer):
    iot.get_registration_code()
    return {"verificationCertificate": verification_pem(issuer, "0" * 64)}


def _wrong_signer(iot, issuer):
    return {"verificationCertificate": verification_pem(make_ca(), iot.get_registration_code()["registrationCode"])}


def _no_verification(iot, issuer):
    return {}


def _not_pem(iot, issuer):
    return {"verificationCertificate": "not a certificate"}


@pytest.mark.parametrize(
    ("verification", "code"),
    [
        (_wrong_cn, "RegistrationCodeValidationException"),  # CN is not the account's code
        (_wrong_signer, "CertificateValidationException"),  # right code, another CA's key
        (_no_verification, "InvalidRequestException"),  # DEFAULT mode needs one
        (_not_pem, "CertificateValidationException"),  # unparseable
    ],
)
def test_default_mode_refuses_a_bad_verification_certificate(iot, verification, code):
    issuer = make_ca()
    with pytest.raises(ClientError) as excinfo:
        iot.register_ca_certificate(caCertificate=pem(issuer.certificate), **verification(iot, issuer))
    assert error_code(excinfo) == code
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert iot.list_ca_certificates()["certificates"] == []


def test_a_certificate_that_is_not_a_ca_is_refused(iot):
    issuer = make_ca()
    device = issuer.issue_device(generate_key("ec-p256").public_key(), "thing-1", country=None, now=_now(), days=1)
    with pytest.raises(ClientError) as excinfo:
        iot.register_ca_certificate(caCertificate=pem(device), certificateMode="SNI_ONLY")
    assert error_code(excinfo) == "CertificateValidationException"


def test_sni_only_registers_without_a_verification_certificate(iot):
    issuer = make_ca()
    answer = iot.register_ca_certificate(caCertificate=pem(issuer.certificate), certificateMode="SNI_ONLY")
    described = iot.describe_ca_certificate(certificateId=answer["certificateId"])["certificateDescription"]
    assert described["certificateMode"] == "SNI_ONLY"
    assert described["status"] == "INACTIVE" and described["autoRegistrationStatus"] == "DISABLE"  # the defaults


def test_registering_the_same_ca_twice_is_resource_already_exists(iot):
    issuer = make_ca()
    first = register(iot, issuer)
    with pytest.raises(ClientError) as excinfo:
        register(iot, issuer)
    assert error_code(excinfo) == "ResourceAlreadyExistsException"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert excinfo.value.response.get("resourceId") == first["certificateId"]


def test_an_eleventh_ca_with_the_same_subject_is_limit_exceeded(iot):
    for _ in range(10):
        register(iot, make_ca("Same Subject"))
    with pytest.raises(ClientError) as excinfo:
        register(iot, make_ca("Same Subject"))
    assert error_code(excinfo) == "LimitExceededException"


def test_registration_config_names_an_existing_jitp_template(iot):
    with pytest.raises(ClientError) as excinfo:
        register(iot, make_ca(), registrationConfig={"templateName": "missing", "roleArn": ROLE})
    assert error_code(excinfo) == "ResourceNotFoundException"
    iot.create_provisioning_template(templateName="fleet", templateBody=TEMPLATE, provisioningRoleArn=ROLE)
    with pytest.raises(ClientError) as excinfo:
        register(iot, make_ca(), registrationConfig={"templateName": "fleet", "roleArn": ROLE})
    assert error_code(excinfo) == "InvalidRequestException"  # a FLEET_PROVISIONING template
    iot.create_provisioning_template(templateName="jitp", templateBody=TEMPLATE, provisioningRoleArn=ROLE, type="JITP")
    answer = register(iot, make_ca(), registrationConfig={"templateName": "jitp", "roleArn": ROLE})
    config = iot.describe_ca_certificate(certificateId=answer["certificateId"])["registrationConfig"]
    assert config == {"templateName": "jitp", "roleArn": ROLE}


# -- DescribeCACertificate, UpdateCACertificate, ListCACertificates, DeleteCACertificate --------------


def test_describe_shows_auto_registration_and_registration_config(iot):
    issuer = make_ca()
    config = {"templateBody": TEMPLATE, "roleArn": ROLE}
    ca_id = register(iot, issuer, setAsActive=True, allowAutoRegistration=True, registrationConfig=config)[
        "certificateId"
    ]
    answer = iot.describe_ca_certificate(certificateId=ca_id)
    described = answer["certificateDescription"]
    assert described["status"] == "ACTIVE"
    assert described["autoRegistrationStatus"] == "ENABLE"
    assert described["certificateMode"] == "DEFAULT"
    assert described["ownedBy"] == ACCOUNT and described["customerVersion"] == 1 and described["generationId"]
    assert described["validity"]["notAfter"] == issuer.certificate.not_valid_after_utc
    assert answer["registrationConfig"] == config


def test_describing_an_unknown_ca_is_resource_not_found(iot):
    with pytest.raises(ClientError) as excinfo:
        iot.describe_ca_certificate(certificateId="0" * 64)
    assert error_code(excinfo) == "ResourceNotFoundException"


def test_update_toggles_status_auto_registration_and_config(iot):
    ca_id = register(iot, make_ca())["certificateId"]
    iot.update_ca_certificate(
        certificateId=ca_id,
        newStatus="ACTIVE",
        newAutoRegistrationStatus="ENABLE",
        registrationConfig={"templateBody": TEMPLATE, "roleArn": ROLE},
    )
    answer = iot.describe_ca_certificate(certificateId=ca_id)
    assert answer["certificateDescription"]["status"] == "ACTIVE"
    assert answer["certificateDescription"]["autoRegistrationStatus"] == "ENABLE"
    assert answer["certificateDescription"]["customerVersion"] == 2
    assert answer["registrationConfig"]["templateBody"] == TEMPLATE
    iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE", newAutoRegistrationStatus="DISABLE")
    iot.update_ca_certificate(certificateId=ca_id, removeAutoRegistration=True)
    answer = iot.describe_ca_certificate(certificateId=ca_id)
    assert answer["certificateDescription"]["status"] == "INACTIVE"
    assert answer["certificateDescription"]["autoRegistrationStatus"] == "DISABLE"
    assert "registrationConfig" not in answer or not answer["registrationConfig"]


def test_list_ca_certificates_pages_through_every_ca(iot):
    ids = {register(iot, make_ca(f"CA {n}"))["certificateId"] for n in range(3)}
    first = iot.list_ca_certificates(pageSize=2)
    rest = iot.list_ca_certificates(pageSize=2, marker=first["nextMarker"])
    listed = first["certificates"] + rest["certificates"]
    assert {ca["certificateId"] for ca in listed} == ids and "nextMarker" not in rest
    assert all(ca["certificateArn"].endswith(f"cacert/{ca['certificateId']}") for ca in listed)


def test_an_active_ca_must_be_deactivated_before_deletion(iot):
    ca_id = register(iot, make_ca(), setAsActive=True)["certificateId"]
    with pytest.raises(ClientError) as excinfo:
        iot.delete_ca_certificate(certificateId=ca_id)
    assert error_code(excinfo) == "CertificateStateException"
    iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE")
    iot.delete_ca_certificate(certificateId=ca_id)
    assert iot.list_ca_certificates()["certificates"] == []


def test_the_kits_register_command_works_against_the_emulator(iot, jitr, pki):
    first = jitr("ca", "register", "--dir", pki, "--json", "--jitp", "--role-arn", ROLE)
    assert first.exit_code == 0, first.output
    ca_id = json.loads(first.stdout)["caCertificateId"]
    again = jitr("ca", "register", "--dir", pki, "--json", "--jitp", "--role-arn", ROLE)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["outcome"] == "reused"
    described = iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]
    assert (described["status"], described["autoRegistrationStatus"]) == ("ACTIVE", "ENABLE")


# -- provisioning templates --------------------------------------------------------------------------


def test_provisioning_templates_are_created_described_listed_updated_and_deleted(iot):
    created = iot.create_provisioning_template(
        templateName="jitp-template", templateBody=TEMPLATE, provisioningRoleArn=ROLE, type="JITP", enabled=True
    )
    assert created["templateArn"] == f"arn:aws:iot:{REGION}:{ACCOUNT}:provisioningtemplate/jitp-template"
    assert created["defaultVersionId"] == 1
    described = iot.describe_provisioning_template(templateName="jitp-template")
    assert (described["type"], described["enabled"], described["templateBody"]) == ("JITP", True, TEMPLATE)
    assert described["provisioningRoleArn"] == ROLE
    iot.update_provisioning_template(templateName="jitp-template", enabled=False, description="off")
    updated = iot.describe_provisioning_template(templateName="jitp-template")
    assert (updated["enabled"], updated["description"]) == (False, "off")
    assert [t["templateName"] for t in iot.list_provisioning_templates()["templates"]] == ["jitp-template"]
    iot.delete_provisioning_template(templateName="jitp-template")
    assert iot.list_provisioning_templates()["templates"] == []
    with pytest.raises(ClientError) as excinfo:
        iot.describe_provisioning_template(templateName="jitp-template")
    assert error_code(excinfo) == "ResourceNotFoundException"


@pytest.mark.parametrize(
    "name",
    [
        "has space",  # outside ^[0-9A-Za-z_-]+$
        "dots.not.allowed",
        "x" * 37,  # longer than 36
    ],
)
def test_template_names_are_validated(iot, name):
    with pytest.raises(ClientError) as excinfo:
        iot.create_provisioning_template(templateName=name, templateBody=TEMPLATE, provisioningRoleArn=ROLE)
    assert error_code(excinfo) == "InvalidRequestException"


def test_a_template_name_of_36_characters_is_accepted(iot):
    iot.create_provisioning_template(templateName="A_b-" + "9" * 32, templateBody=TEMPLATE, provisioningRoleArn=ROLE)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"templateBody": "{not json"}, "InvalidRequestException"),
        ({"templateBody": "x" * 10241}, "InvalidRequestException"),  # over 10240 characters
        (
            {"type": "JITP", "preProvisioningHook": {"targetArn": "arn:aws:lambda:us-east-1:1:function:f"}},
            "InvalidRequestException",
        ),
    ],
)
def test_bad_templates_are_refused(iot, params, code):
    with pytest.raises(ClientError) as excinfo:
        iot.create_provisioning_template(
            **{"templateName": "t", "templateBody": TEMPLATE, "provisioningRoleArn": ROLE, **params}
        )
    assert error_code(excinfo) == code


def test_creating_a_template_twice_is_resource_already_exists(iot):
    iot.create_provisioning_template(templateName="t", templateBody=TEMPLATE, provisioningRoleArn=ROLE)
    with pytest.raises(ClientError) as excinfo:
        iot.create_provisioning_template(templateName="t", templateBody=TEMPLATE, provisioningRoleArn=ROLE)
    assert error_code(excinfo) == "ResourceAlreadyExistsException"


def test_a_template_a_ca_uses_cannot_be_deleted(iot):
    iot.create_provisioning_template(templateName="t", templateBody=TEMPLATE, provisioningRoleArn=ROLE, type="JITP")
    register(iot, make_ca(), registrationConfig={"templateName": "t", "roleArn": ROLE})
    with pytest.raises(ClientError) as excinfo:
        iot.delete_provisioning_template(templateName="t")
    assert error_code(excinfo) == "DeleteConflictException"


# -- DescribeEndpoint --------------------------------------------------------------------------------


def test_describe_endpoint_answers_the_local_broker(iot):
    answer = iot.describe_endpoint(endpointType="iot:Data-ATS")
    assert answer["endpointAddress"] == "localhost"
    assert answer["ResponseMetadata"]["HTTPHeaders"]["x-jitr-mqtt-port"] == "18883"


def test_describe_endpoint_follows_the_broker_started_later(start_api):
    api = start_api()
    iot = boto3.client("iot", config=NO_RETRIES)
    assert iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"].endswith(".amazonaws.com")  # moto's
    api.mqtt_endpoint = ("127.0.0.1", 28883)
    assert iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"] == "127.0.0.1"
    assert api.info()["mqttPort"] == 28883


# -- quotas ------------------------------------------------------------------------------------------


def _certificate_id(iot) -> str:
    return iot.create_keys_and_certificate(setAsActive=False)["certificateId"]


def test_calls_past_the_quota_are_throttled_like_aws(start_api):
    start_api(quotas={"UpdateCertificate": 5})
    iot = boto3.client("iot", config=NO_RETRIES)
    cert_id = _certificate_id(iot)
    codes = []
    for _ in range(20):
        try:
            iot.update_certificate(certificateId=cert_id, newStatus="ACTIVE")
            codes.append("OK")
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert exc.response["Error"]["Message"] == "Rate exceeded"
            codes.append(exc.response["Error"]["Code"])
    assert codes[:5] == ["OK"] * 5  # the bucket starts full: one second's worth
    assert "ThrottlingException" in codes
    for _ in range(20):
        iot.describe_certificate(certificateId=cert_id)  # no quota, never throttled


def test_throttled_calls_succeed_with_botocore_standard_retries(start_api):
    start_api(quotas={"UpdateCertificate": 5})
    iot = boto3.client("iot", config=Config(read_timeout=10, retries={"mode": "standard", "max_attempts": 10}))
    cert_id = _certificate_id(iot)
    retried = 0
    for _ in range(12):
        answer = iot.update_certificate(certificateId=cert_id, newStatus="ACTIVE")
        retried += answer["ResponseMetadata"]["RetryAttempts"]
    assert retried > 0


# -- moto's own IoT, and S3, through the same endpoint ------------------------------------------------


def test_motos_iot_calls_still_work_through_the_endpoint(iot):
    thing = iot.create_thing(thingName="thing-1")["thingArn"]
    cert = iot.create_keys_and_certificate(setAsActive=False)
    iot.create_policy(policyName="device", policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    iot.attach_policy(policyName="device", target=cert["certificateArn"])
    iot.attach_thing_principal(thingName="thing-1", principal=cert["certificateArn"])
    iot.update_certificate(certificateId=cert["certificateId"], newStatus="ACTIVE")
    assert iot.describe_certificate(certificateId=cert["certificateId"])["certificateDescription"]["status"] == "ACTIVE"
    assert iot.list_principal_things(principal=cert["certificateArn"])["things"] == ["thing-1"]
    assert thing.endswith(":thing/thing-1")


def test_s3_works_through_the_same_endpoint(api):
    s3 = boto3.client("s3", config=NO_RETRIES)
    s3.create_bucket(Bucket="jitr-archive")
    s3.put_object(Bucket="jitr-archive", Key="devices/thing-1/1700000000000", Body=b'{"t": 21.5}')
    assert s3.get_object(Bucket="jitr-archive", Key="devices/thing-1/1700000000000")["Body"].read() == b'{"t": 21.5}'


def test_motos_reset_api_also_forgets_the_emulators_state(api, iot):
    iot.create_thing(thingName="thing-1")
    iot.create_provisioning_template(templateName="t", templateBody=TEMPLATE, provisioningRoleArn=ROLE)
    code = iot.get_registration_code()["registrationCode"]
    request = urllib.request.Request(f"{api.url}/moto-api/reset", method="POST")  # unsigned, straight to moto
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    assert iot.list_things()["things"] == []
    assert iot.list_provisioning_templates()["templates"] == []
    assert iot.get_registration_code()["registrationCode"] != code


# -- the registry: the broker's and rules engine's view ----------------------------------------------


def test_registry_registers_a_device_certificate_pending_activation_under_its_ca(api, iot):
    issuer = make_ca()
    ca_id = register(iot, issuer, setAsActive=True, allowAutoRegistration=True)["certificateId"]
    device = issuer.issue_device(generate_key("ec-p256").public_key(), "thing-1", country="DE", now=_now(), days=1)
    registry = api.registry()
    assert registry.issuing_ca(device).id == ca_id and registry.ca(ca_id).auto_registers
    record = registry.register_certificate(to_pem(device), ca_certificate_id=ca_id)
    assert record.id == certificate_id(device) and record.status == "PENDING_ACTIVATION"
    der = device.public_bytes(serialization.Encoding.DER)  # what the broker gets from the TLS handshake
    assert registry.register_certificate(der, ca_certificate_id=ca_id) == record  # idempotent
    described = iot.describe_certificate(certificateId=record.id)["certificateDescription"]
    assert (described["status"], described["caCertificateId"]) == ("PENDING_ACTIVATION", ca_id)
    assert described["certificateArn"] == f"arn:aws:iot:{REGION}:{ACCOUNT}:cert/{record.id}"
    assert [c["certificateId"] for c in iot.list_certificates_by_ca(caCertificateId=ca_id)["certificates"]] == [
        record.id
    ]
    iot.update_certificate(certificateId=record.id, newStatus="ACTIVE")
    assert registry.certificate(record.id).status == "ACTIVE"


def test_registry_refuses_a_certificate_its_ca_did_not_sign(api, iot):
    ca_id = register(iot, make_ca())["certificateId"]
    stranger = make_ca().issue_device(generate_key("ec-p256").public_key(), "x", country=None, now=_now(), days=1)
    with pytest.raises(CertificateValidation):
        api.registry().register_certificate(to_pem(stranger), ca_certificate_id=ca_id)
    with pytest.raises(ResourceNotFound):
        api.registry().register_certificate(to_pem(stranger), ca_certificate_id="0" * 64)
    assert api.registry().issuing_ca(stranger) is None


def test_registry_reads_policies_things_templates_and_topic_rules(api, iot):
    cert = iot.create_keys_and_certificate(setAsActive=True)
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
    iot.create_policy(policyName="device", policyDocument=json.dumps(document))
    iot.attach_policy(policyName="device", target=cert["certificateArn"])
    iot.create_thing(thingName="thing-1", attributePayload={"attributes": {"country": "DE"}})
    iot.attach_thing_principal(thingName="thing-1", principal=cert["certificateArn"])
    iot.create_provisioning_template(templateName="jitp", templateBody=TEMPLATE, provisioningRoleArn=ROLE, type="JITP")
    action = {"s3": {"bucketName": "jitr-archive", "key": "${topic()}/${timestamp()}", "roleArn": ROLE}}
    iot.create_topic_rule(
        ruleName="archive",
        topicRulePayload={
            "sql": "SELECT * FROM 'devices/+/telemetry'",
            "actions": [action],
            "awsIotSqlVersion": "2016-03-23",
        },
    )
    registry = api.registry()
    [policy] = registry.policies_for(cert["certificateArn"])
    assert (policy.name, policy.document) == ("device", document)
    assert registry.things_for(cert["certificateArn"]) == ["thing-1"]
    assert registry.thing("thing-1").attributes == {"country": "DE"}
    assert registry.provisioning_template("jitp").document["Resources"]["thing"]["Type"] == "AWS::IoT::Thing"
    [rule] = registry.topic_rules()
    assert (rule.name, rule.sql, rule.actions, rule.sql_version) == (
        "archive",
        "SELECT * FROM 'devices/+/telemetry'",
        [action],
        "2016-03-23",
    )
    iot.disable_topic_rule(ruleName="archive")
    assert registry.topic_rules() == [] and registry.topic_rule("archive").disabled


@pytest.mark.parametrize(
    "sql",
    ["SELECT * FROM", "SELECT FROM 'devices/#'", "SELECT * FROM 'devices/#' WHERE (", "DELETE FROM 'a'"],
)
def test_a_topic_rule_whose_sql_does_not_parse_is_refused_and_not_created(iot, sql):
    payload = {"sql": sql, "actions": [], "awsIotSqlVersion": "2016-03-23"}
    with pytest.raises(ClientError) as caught:
        iot.create_topic_rule(ruleName="bad_sql", topicRulePayload=payload)
    assert caught.value.response["Error"]["Code"] == "SqlParseException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "bad_sql" not in [rule["ruleName"] for rule in iot.list_topic_rules()["rules"]]


def test_a_topic_rule_that_parses_is_created_and_can_be_replaced_but_not_with_bad_sql(iot):
    payload = {"sql": "SELECT temperature FROM 'devices/+/telemetry'", "actions": []}
    iot.create_topic_rule(ruleName="good_sql", topicRulePayload=payload)
    with pytest.raises(ClientError) as caught:
        iot.replace_topic_rule(ruleName="good_sql", topicRulePayload={**payload, "sql": "SELECT * FROM"})
    assert caught.value.response["Error"]["Code"] == "SqlParseException"
    rule = iot.get_topic_rule(ruleName="good_sql")["rule"]
    assert rule["sql"] == payload["sql"]
    iot.delete_topic_rule(ruleName="good_sql")


def test_describe_thing_answers_as_moto_did_and_404_for_an_unknown_thing(iot):
    iot.create_thing(thingName="dev-7", attributePayload={"attributes": {"owner": "x"}})
    described = iot.describe_thing(thingName="dev-7")
    assert {k: described[k] for k in ("thingName", "defaultClientId", "attributes", "version")} == {
        "thingName": "dev-7",
        "defaultClientId": "dev-7",
        "attributes": {"owner": "x"},
        "version": 1,
    }
    assert described["thingArn"].endswith(":thing/dev-7") and described["thingId"]
    with pytest.raises(ClientError) as missing:
        iot.describe_thing(thingName="dev-8")
    assert error_code(missing) == "ResourceNotFoundException"


def test_the_api_keeps_a_connection_alive_across_calls_and_reads_each_body_to_its_length(api):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    body = b"x" * 5000  # a body moto's own API page never reads: drained, or it would be taken for the next request
    for _ in range(3):
        connection.request("GET", "/moto-api/", body=body)
        first = connection.getresponse()
        first.read()
        assert first.status == 200 and first.getheader("Connection") != "close"
    connection.request("GET", "/moto-api/", headers={})  # the same socket: the next request line is intact
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200 and connection.sock is not None
    connection.request("GET", "/moto-api/", headers={"Connection": "close"})
    closing = connection.getresponse()
    closing.read()
    assert closing.getheader("Connection") == "close"
