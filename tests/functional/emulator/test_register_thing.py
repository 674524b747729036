"""RegisterThing and CreateCertificateFromCsr in the emulator, answered as AWS IoT answers them."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from base.certificates import certificate_id

pytestmark = pytest.mark.timeout(60)


def csr(cn: str = "dev-1", key=None) -> tuple[str, object]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode(), key


def template(certificate: dict) -> str:
    return json.dumps(
        {
            "Parameters": {"SerialNumber": {"Type": "String"}, "CSR": {"Type": "String"}},
            "Resources": {
                "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "SerialNumber"}}},
                "certificate": {"Type": "AWS::IoT::Certificate", "Properties": {**certificate, "Status": "ACTIVE"}},
                "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "device"}},
            },
        }
    )


CSR_TEMPLATE = template({"CertificateSigningRequest": {"Ref": "CSR"}})


@pytest.fixture
def iot(fresh_iot):
    client = fresh_iot
    client.create_policy(policyName="device", policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    return client


def public(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_register_thing_signs_the_csr_and_makes_thing_policy_and_active_certificate(iot):
    request, key = csr("dev-1")
    answer = iot.register_thing(templateBody=CSR_TEMPLATE, parameters={"SerialNumber": "dev-1", "CSR": request})
    cert = x509.load_pem_x509_certificate(answer["certificatePem"].encode())
    assert public(cert) == public(key)
    arns = answer["resourceArns"]
    assert set(arns) == {"certificate", "thing", "policy"}
    cert_id = certificate_id(cert)
    assert arns["certificate"].endswith(f":cert/{cert_id}")
    assert iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"] == "ACTIVE"
    assert iot.list_thing_principals(thingName="dev-1")["principals"] == [arns["certificate"]]
    assert [p["policyName"] for p in iot.list_attached_policies(target=arns["certificate"])["policies"]] == ["device"]


def test_the_same_csr_twice_makes_two_certificates(iot):
    request, _key = csr()
    first = iot.register_thing(templateBody=CSR_TEMPLATE, parameters={"SerialNumber": "dev-1", "CSR": request})
    second = iot.register_thing(templateBody=CSR_TEMPLATE, parameters={"SerialNumber": "dev-1", "CSR": request})
    assert first["certificatePem"] != second["certificatePem"]
    assert len(iot.list_certificates()["certificates"]) == 2


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"SerialNumber": "dev-1"}, "CSR"),  # a declared parameter missing
        ({"SerialNumber": "dev-1", "CSR": "not a csr"}, "not a PEM certificate signing request"),
        ({"SerialNumber": "dev-1", "CSR": "RSA1024"}, "at least 2048 bits"),
    ],
)
def test_register_thing_refuses_what_aws_iot_refuses(iot, parameters, message):
    if parameters.get("CSR") == "RSA1024":
        parameters = parameters | {"CSR": csr(key=rsa.generate_private_key(public_exponent=65537, key_size=1024))[0]}
    with pytest.raises(ClientError) as refused:
        iot.register_thing(templateBody=CSR_TEMPLATE, parameters=parameters)
    assert refused.value.response["Error"]["Code"] == "InvalidRequestException"
    assert message in refused.value.response["Error"]["Message"]


def test_a_csr_whose_signature_does_not_verify_is_refused(iot):
    request, _key = csr()
    der = bytearray(x509.load_pem_x509_csr(request.encode()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(ClientError, match="does not verify"):
        iot.create_certificate_from_csr(certificateSigningRequest=forged)


def test_create_certificate_from_csr_keeps_the_csrs_key(iot):
    request, key = csr()
    answer = iot.create_certificate_from_csr(certificateSigningRequest=request, setAsActive=True)
    cert = x509.load_pem_x509_certificate(answer["certificatePem"].encode())
    assert public(cert) == public(key)  # moto's own puts a key of its own in the certificate
    assert answer["certificateId"] == certificate_id(cert)
    assert iot.describe_certificate(certificateId=answer["certificateId"])["certificateDescription"]["status"] == (
        "ACTIVE"
    )


def test_register_thing_with_a_certificate_id_uses_the_existing_certificate(iot):
    made = iot.create_keys_and_certificate(setAsActive=False)
    body = template({"CertificateId": {"Ref": "CertificateId"}}).replace('"CSR"', '"CertificateId"')
    answer = iot.register_thing(
        templateBody=body, parameters={"SerialNumber": "dev-2", "CertificateId": made["certificateId"]}
    )
    assert answer["resourceArns"]["certificate"] == made["certificateArn"]
    assert iot.describe_certificate(certificateId=made["certificateId"])["certificateDescription"]["status"] == "ACTIVE"
