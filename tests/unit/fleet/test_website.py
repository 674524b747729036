"""What 'jitr fleet website' uploads: the built page's files with their content types, index.html last, and a
config.json of the stack's public settings; a stack without a web page, or a folder that is no built page,
is refused before anything is uploaded."""

from __future__ import annotations

import json

import pytest

from base.errors import InvalidInputError, NotFoundError
from cloud.stacks import StackInfo
from fleet.website import CONFIG_KEY, content_type, site_config, site_files, upload_order

OUTPUTS = {
    "UsersApiUrl": "https://abc123.execute-api.eu-central-1.amazonaws.com",
    "UserPoolId": "eu-central-1_AbCdEf123",
    "UserPoolClientId": "1example23456789",
    "WebsiteUrl": "http://stack-hostingbucket-1.s3-website.eu-central-1.amazonaws.com",
    "HostingBucketName": "stack-hostingbucket-1",
    "ArchiveBucketName": "stack-archive",
}


def built(tmp_path, *names: str):
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    return tmp_path


def test_every_file_goes_up_with_its_content_type_and_index_html_last(tmp_path):
    folder = built(tmp_path, "index.html", "error.html", "app.css", "src/main.js", "vendor/mqtt.esm.js", "config.json")
    files = upload_order(site_files(folder))
    assert [f.key for f in files] == ["app.css", "error.html", "src/main.js", "vendor/mqtt.esm.js", "index.html"]
    assert CONFIG_KEY not in [f.key for f in files]  # a stale config.json in the build is never uploaded
    assert content_type("main.js") == "text/javascript; charset=utf-8"
    assert content_type("index.html") == "text/html; charset=utf-8"


def test_a_folder_that_is_not_a_built_page_is_refused(tmp_path):
    with pytest.raises(NotFoundError, match="make web"):
        site_files(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match="no error.html"):
        site_files(built(tmp_path, "index.html"))


def test_config_json_holds_the_stacks_public_settings_and_nothing_else():
    info = StackInfo("stack", outputs=OUTPUTS)
    config = site_config(
        info, region="eu-central-1", iot_endpoint="a1-ats.iot.eu-central-1.amazonaws.com", cognito_endpoint=None
    )
    assert config == {
        "usersApiUrl": OUTPUTS["UsersApiUrl"],
        "userPoolId": OUTPUTS["UserPoolId"],
        "userPoolClientId": OUTPUTS["UserPoolClientId"],
        "websiteUrl": OUTPUTS["WebsiteUrl"],
        "stack": "stack",
        "region": "eu-central-1",
        "iotEndpoint": "a1-ats.iot.eu-central-1.amazonaws.com",
    }
    assert "secret" not in json.dumps(config).lower()
    local = site_config(
        info, region="us-east-1", iot_endpoint="localhost:8883", cognito_endpoint="http://127.0.0.1:5000"
    )
    assert local["cognitoEndpoint"] == "http://127.0.0.1:5000"


def test_a_stack_deployed_without_the_users_api_has_no_page_to_configure():
    info = StackInfo("stack", outputs={"ArchiveBucketName": "stack-archive"})
    with pytest.raises(InvalidInputError, match="USERS=true"):
        site_config(info, region="eu-central-1", iot_endpoint="x", cognito_endpoint=None)
