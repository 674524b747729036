"""A stack of user pool, identity pool and role, as issue 15's users need it: deployed through moto, a
signed-in user's ID token is exchanged for temporary credentials, STS answers AssumeRole for the role,
and destroy removes all of it."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from emulator.cloudformation.deploy import StackDeployer
from tests.e2e.test_api_gateway import PASSWORD, sign_in

pytestmark = pytest.mark.timeout(120)

TEMPLATE = Path(__file__).parent / "platform" / "identity.yaml"


@pytest.fixture
def stack(aws):
    record = StackDeployer(aws).deploy(TEMPLATE, "identity", {})
    yield record["outputs"] | {"session": aws, "record": record}


def test_the_identity_pool_trusts_the_user_pool_and_maps_signed_in_users_to_the_stacks_role(stack):
    identity = stack["session"].client("cognito-identity")
    pool = identity.describe_identity_pool(IdentityPoolId=stack["IdentityPoolId"])
    assert pool["AllowUnauthenticatedIdentities"] is False
    assert pool["CognitoIdentityProviders"][0]["ProviderName"] == stack["ProviderName"]
    assert stack["ProviderName"] == f"cognito-idp.us-east-1.amazonaws.com/{stack['UserPoolId']}"
    roles = identity.get_identity_pool_roles(IdentityPoolId=stack["IdentityPoolId"])["Roles"]
    assert roles == {"authenticated": stack["RoleArn"]}


def test_a_signed_in_user_gets_temporary_credentials_that_work_against_the_emulator(stack):
    tokens = sign_in(stack, "ann")
    identity = stack["session"].client("cognito-identity")
    logins = {stack["ProviderName"]: tokens["IdToken"]}

    identity_id = identity.get_id(IdentityPoolId=stack["IdentityPoolId"], Logins=logins)["IdentityId"]
    credentials = identity.get_credentials_for_identity(IdentityId=identity_id, Logins=logins)["Credentials"]

    temporary = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretKey"],
        aws_session_token=credentials["SessionToken"],
        region_name="us-east-1",
    )
    role_name = stack["RoleArn"].rsplit("/", 1)[1]
    caller = temporary.client("sts").get_caller_identity()["Arn"]
    assert caller == f"arn:aws:sts::123456789012:assumed-role/{role_name}/CognitoIdentityCredentials"
    assert temporary.client("iot").describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"] == "localhost"
    again = identity.get_id(IdentityPoolId=stack["IdentityPoolId"], Logins={stack["ProviderName"]: sign_again(stack)})
    assert again["IdentityId"] == identity_id  # one identity a user, at every sign-in


def sign_again(stack, username: str = "ann") -> str:
    """A new ID token of a user who signed in before."""
    answer = (
        stack["session"]
        .client("cognito-idp")
        .initiate_auth(
            ClientId=stack["AppClientId"],
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD},
        )
    )
    return answer["AuthenticationResult"]["IdToken"]


def _refused(call, message: str, code: str = "NotAuthorizedException") -> None:
    with pytest.raises(ClientError) as refused:
        call()
    assert (refused.value.response["Error"]["Code"], refused.value.response["Error"]["Message"]) == (code, message)


def test_logins_that_prove_nothing_get_no_identity_and_no_credentials(stack):
    identity = stack["session"].client("cognito-identity")
    pool, provider = stack["IdentityPoolId"], stack["ProviderName"]
    tokens = sign_in(stack, "ann")
    header, payload, signature = tokens["IdToken"].split(".")
    tampered = ".".join([header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")])

    _refused(
        lambda: identity.get_id(IdentityPoolId=pool), "Unauthenticated access is not supported for this identity pool."
    )
    _refused(
        lambda: identity.get_id(IdentityPoolId=pool, Logins={provider: tampered}),
        "Invalid login token. Couldn't verify signed token.",
    )
    _refused(
        lambda: identity.get_id(IdentityPoolId=pool, Logins={provider: tokens["AccessToken"]}),
        "Invalid login token. Not an ID token of this identity pool's app clients.",
    )
    _refused(
        lambda: identity.get_id(
            IdentityPoolId=pool, Logins={"cognito-idp.us-east-1.amazonaws.com/us-east-1_other": tokens["IdToken"]}
        ),
        "Invalid login token. Token is not from a supported provider of this identity pool.",
    )
    _refused(
        lambda: identity.get_id(
            IdentityPoolId="us-east-1:00000000-0000-0000-0000-000000000000", Logins={provider: tokens["IdToken"]}
        ),
        "IdentityPool 'us-east-1:00000000-0000-0000-0000-000000000000' not found.",
        "ResourceNotFoundException",
    )


def test_an_identity_gets_credentials_only_with_a_login_of_its_own_user(stack):
    identity = stack["session"].client("cognito-identity")
    pool, provider = stack["IdentityPoolId"], stack["ProviderName"]
    ann, bob = sign_in(stack, "ann")["IdToken"], sign_in(stack, "bob")["IdToken"]
    anns = identity.get_id(IdentityPoolId=pool, Logins={provider: ann})["IdentityId"]
    assert identity.get_id(IdentityPoolId=pool, Logins={provider: bob})["IdentityId"] != anns

    mismatch = "Logins don't match. Please include at least one valid login for this identity or identity pool."
    _refused(lambda: identity.get_credentials_for_identity(IdentityId=anns), mismatch)
    _refused(lambda: identity.get_credentials_for_identity(IdentityId=anns, Logins={provider: bob}), mismatch)
    _refused(
        lambda: identity.get_credentials_for_identity(IdentityId="us-east-1:11111111-1111-1111-1111-111111111111"),
        "Identity 'us-east-1:11111111-1111-1111-1111-111111111111' not found.",
        "ResourceNotFoundException",
    )
    identity.set_identity_pool_roles(IdentityPoolId=pool, Roles={})  # the pool loses its role
    _refused(
        lambda: identity.get_credentials_for_identity(IdentityId=anns, Logins={provider: ann}),
        "Invalid identity pool configuration. Check assigned IAM roles for this pool.",
        "InvalidIdentityPoolConfigurationException",
    )


def test_sts_answers_assume_role_for_the_stacks_role_with_the_roles_identity(stack):
    sts = stack["session"].client("sts")

    assumed = sts.assume_role(RoleArn=stack["RoleArn"], RoleSessionName="device-owner", DurationSeconds=900)

    role_name = stack["RoleArn"].rsplit("/", 1)[1]
    assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::123456789012:assumed-role/{role_name}/device-owner"
    as_role = boto3.Session(
        aws_access_key_id=assumed["Credentials"]["AccessKeyId"],
        aws_secret_access_key=assumed["Credentials"]["SecretAccessKey"],
        aws_session_token=assumed["Credentials"]["SessionToken"],
        region_name="us-east-1",
    )
    assert as_role.client("sts").get_caller_identity()["Arn"] == assumed["AssumedRoleUser"]["Arn"]
    policy = stack["session"].client("iam").get_role_policy(RoleName=role_name, PolicyName="own-device")
    document = policy["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document["Statement"][0]["Resource"].endswith(":client/${cognito-identity.amazonaws.com:sub}")


def test_destroy_removes_the_identity_pool_the_role_and_the_user_pool(stack):
    StackDeployer(stack["session"]).destroy("identity")

    session = stack["session"]
    assert session.client("cognito-identity").list_identity_pools(MaxResults=10)["IdentityPools"] == []
    assert session.client("cognito-idp").list_user_pools(MaxResults=10)["UserPools"] == []
    role_names = [r["RoleName"] for r in session.client("iam").list_roles()["Roles"]]
    assert stack["RoleArn"].rsplit("/", 1)[1] not in role_names
