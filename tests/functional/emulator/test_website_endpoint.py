"""The emulator's S3 website endpoint answers as S3's does: index and error documents, the folder redirect,
403 where the bucket policy does not let everyone read, 404 only with a public listing, S3's own errors."""

from __future__ import annotations

import http.client
import json

import boto3
import pytest
from moto import mock_aws

from emulator.website.server import WebsiteEndpoint, local_website_url

BUCKET = "site-bucket"
PUBLIC_READ = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}
    ],
}


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_website(
            Bucket=BUCKET,
            WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}, "ErrorDocument": {"Key": "error.html"}},
        )
        client.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(PUBLIC_READ))
        for key, body, kind in (
            ("index.html", b"<h1>home</h1>", "text/html"),
            ("error.html", b"<h1>lost</h1>", "text/html"),
            ("docs/index.html", b"<h1>docs</h1>", "text/html"),
            ("app.js", b"export {}", "text/javascript"),
        ):
            client.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=kind)
        yield client


@pytest.fixture
def endpoint(s3):
    served = WebsiteEndpoint(account_id="123456789012").start()
    try:
        yield served
    finally:
        served.stop()


def get(endpoint, path: str, bucket: str = BUCKET, method: str = "GET", headers: dict | None = None):
    """A request as a browser at the bucket's website URL sends it (its name in Host), to 127.0.0.1."""
    host = local_website_url(endpoint.url, bucket, "us-east-1").removeprefix("http://")
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    try:
        connection.request(method, path, headers={"Host": host, **(headers or {})})
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()


def test_the_root_and_a_folder_answer_their_index_document_with_its_content_type(endpoint):
    status, headers, body = get(endpoint, "/")
    assert (status, body, headers["Content-Type"]) == (200, b"<h1>home</h1>", "text/html")
    assert get(endpoint, "/docs/")[2] == b"<h1>docs</h1>"
    assert get(endpoint, "/app.js")[1]["Content-Type"] == "text/javascript"


def test_a_folder_without_its_slash_is_redirected_to_it(endpoint):
    status, headers, _ = get(endpoint, "/docs")
    assert (status, headers["Location"]) == (302, "/docs/")


def test_a_missing_key_is_403_with_the_error_document_unless_everyone_may_list_the_bucket(endpoint, s3):
    assert get(endpoint, "/nowhere.html")[::2] == (403, b"<h1>lost</h1>")  # S3 hides what it does not let you list
    listing = {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"}
    policy = {**PUBLIC_READ, "Statement": [*PUBLIC_READ["Statement"], listing]}
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
    assert get(endpoint, "/nowhere.html")[::2] == (404, b"<h1>lost</h1>")


def test_without_a_public_read_policy_every_object_is_403_access_denied(endpoint, s3):
    s3.delete_bucket_policy(Bucket=BUCKET)
    status, _, body = get(endpoint, "/")
    assert status == 403 and b"Code: AccessDenied" in body


def test_a_public_access_block_that_restricts_public_buckets_closes_the_site(endpoint, s3):
    block = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": True,
    }
    s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=block)
    assert get(endpoint, "/")[0] == 403


def test_other_methods_unknown_buckets_and_buckets_without_a_website_get_s3s_errors(endpoint, s3):
    status, _, body = get(endpoint, "/", method="PUT")
    assert status == 405 and b"MethodNotAllowed" in body
    status, _, body = get(endpoint, "/", bucket="no-such-bucket")
    assert status == 404 and b"NoSuchBucket" in body
    s3.create_bucket(Bucket="plain-bucket")
    status, _, body = get(endpoint, "/", bucket="plain-bucket")
    assert status == 404 and b"NoSuchWebsiteConfiguration" in body


def test_head_answers_the_headers_alone_and_a_known_etag_is_304(endpoint):
    status, headers, body = get(endpoint, "/", method="HEAD")
    assert (status, body) == (200, b"")
    assert get(endpoint, "/", headers={"If-None-Match": headers["ETag"]})[0] == 304


def test_the_bucket_can_be_named_in_the_path_by_clients_that_do_not_resolve_localhost_names(endpoint):
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    connection.request("GET", f"/{BUCKET}/app.js")
    assert connection.getresponse().read() == b"export {}"
    connection.close()
    assert endpoint.sites("us-east-1") == {BUCKET: local_website_url(endpoint.url, BUCKET, "us-east-1")}


def test_a_bucket_that_redirects_every_request_sends_each_path_to_the_other_host(endpoint, s3):
    s3.create_bucket(Bucket="old-site")
    s3.put_bucket_website(
        Bucket="old-site",
        WebsiteConfiguration={"RedirectAllRequestsTo": {"HostName": "example.com", "Protocol": "https"}},
    )
    status, headers, _ = get(endpoint, "/docs/page.html", bucket="old-site")
    assert (status, headers["Location"]) == (301, "https://example.com/docs/page.html")
