"""Enrollment's requests: retried on 429, 5xx and silence with backoff, stopped at once on a refusal; http
only on loopback; files written only with a certificate for the device's own key."""

from __future__ import annotations

import json

import pytest

from base.backoff import Backoff
from base.errors import InvalidInputError
from base.http import Requests
from device.enroll import check_url, enroll, provisioning_requests
from device.errors import EndpointUnreachableError, EnrollmentRefusedError


def script(*answers):
    """A transport that answers each call with the next item: (status, body dict) or an exception."""
    calls = []
    pending = list(answers)

    def transport(method, url, body, timeout, headers=None):
        calls.append((method, url, json.loads(body) if body else None))
        answer = pending.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, document = answer
        return status, json.dumps(document).encode()

    return transport, calls


def requests(transport, attempts: int = 4) -> Requests:
    backoff = Backoff(base=0.01, cap=0.01, attempts=attempts)
    return provisioning_requests(transport=transport, backoff=backoff, sleep=lambda _s: None)


def test_429_5xx_and_silence_are_retried_until_an_answer():
    transport, calls = script(OSError("refused"), (429, {"message": "busy"}), (503, {}), (200, {"ok": True}))
    assert requests(transport)("GET", "https://api.example/config") == {"ok": True}
    assert len(calls) == 4


def test_a_refusal_stops_at_once_with_the_apis_sentence():
    transport, calls = script((403, {"message": "Unknown serial or wrong token."}), (200, {}))
    with pytest.raises(EnrollmentRefusedError, match="Unknown serial or wrong token") as refused:
        requests(transport)("POST", "https://api.example/devices/x/certificate", {})
    assert refused.value.exit_code == 18 and len(calls) == 1


def test_an_api_that_never_answers_is_unreachable_after_the_attempts():
    transport, calls = script(*[OSError("timed out")] * 3)
    with pytest.raises(EndpointUnreachableError, match="3 attempts"):
        requests(transport, attempts=3)("GET", "https://api.example/config")
    assert len(calls) == 3


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example/prod",  # a token in clear over a network
        "ftp://127.0.0.1/x",  # not HTTP
        "api.example",  # no scheme
    ],
)
def test_only_https_or_loopback_http_is_accepted(url):
    with pytest.raises(InvalidInputError, match="https://"):
        check_url(url, "The provisioning API URL")


def _signed(csr_pem: str, *, other_key: bool = False) -> str:
    """The certificate an AWS IoT-like issuer makes for the CSR (for another key, when asked)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from base.certificates import to_pem
    from emulator.iot.aws_issuer import AwsIssuer
    from tests.conftest import NOW

    csr = x509.load_pem_x509_csr(csr_pem.encode())
    if other_key:
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(csr.subject)
            .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        )
    return to_pem(AwsIssuer(NOW).sign(csr, now=NOW)).decode()


def _answering(seen: dict, *, other_key: bool = False):
    def transport(method, url, body, timeout, headers=None):
        request = json.loads(body)
        seen.update(request)
        pem = _signed(request["csr"], other_key=other_key)
        return 201, json.dumps({"certificatePem": pem, "thingName": "sn-1"}).encode()

    return transport


def test_a_certificate_for_another_key_saves_nothing(tmp_path):
    with pytest.raises(Exception, match="another key"):
        enroll(requests(_answering({}, other_key=True)), "http://127.0.0.1:1/api", "sn-1", "t" * 20, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_enroll_sends_a_csr_whose_cn_is_the_serial_and_writes_a_private_key(tmp_path):
    from cryptography import x509

    seen: dict = {}
    enrolled = enroll(requests(_answering(seen)), "http://127.0.0.1:1/api", "sn-1", "t" * 20, tmp_path)
    csr = x509.load_pem_x509_csr(seen["csr"].encode())
    assert csr.subject.rfc4514_string() == "CN=sn-1" and seen["token"] == "t" * 20 and "replace" not in seen
    assert oct(enrolled.key.stat().st_mode & 0o777) == "0o600" and enrolled.certificate.is_file()


def test_an_existing_identity_is_not_overwritten_without_replace(tmp_path):
    from base.errors import AlreadyExistsError

    enroll(requests(_answering({})), "http://127.0.0.1:1/api", "sn-1", "t" * 20, tmp_path)
    transport, calls = script()
    with pytest.raises(AlreadyExistsError, match="--replace"):
        enroll(requests(transport), "http://127.0.0.1:1/api", "sn-1", "t" * 20, tmp_path)
    assert calls == []  # refused before any request
