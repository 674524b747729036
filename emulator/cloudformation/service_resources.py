"""Creators and deleters of the rest of a small serverless stack: DynamoDB tables (with TTL and global
secondary indexes), Cognito user pools, app clients and identity pools, SSM parameters, and IAM
managed and inline policies. Each is made with the API call CloudFormation makes, through moto; Ref
and Fn::GetAtt answer what CloudFormation documents for the type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.cloudformation.context import Creator, Deleter, Deployment, Updater, iam_document

_TABLE_KEYS = (
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "BillingMode",
    "ProvisionedThroughput",
    "StreamSpecification",
    "SSESpecification",
    "TableClass",
    "DeletionProtectionEnabled",
)
# CloudFormation's AWS::Cognito::UserPool properties that CreateUserPool takes under the same name
_POOL_KEYS = (
    "Policies",
    "LambdaConfig",
    "AutoVerifiedAttributes",
    "AliasAttributes",
    "UsernameAttributes",
    "SmsVerificationMessage",
    "EmailVerificationMessage",
    "EmailVerificationSubject",
    "VerificationMessageTemplate",
    "SmsAuthenticationMessage",
    "MfaConfiguration",
    "DeviceConfiguration",
    "EmailConfiguration",
    "SmsConfiguration",
    "UserPoolTags",
    "AdminCreateUserConfig",
    "Schema",
    "UserPoolAddOns",
    "UsernameConfiguration",
    "AccountRecoverySetting",
    "DeletionProtection",
)
_CLIENT_KEYS = (
    "ClientName",
    "GenerateSecret",
    "RefreshTokenValidity",
    "AccessTokenValidity",
    "IdTokenValidity",
    "TokenValidityUnits",
    "ReadAttributes",
    "WriteAttributes",
    "ExplicitAuthFlows",
    "SupportedIdentityProviders",
    "CallbackURLs",
    "LogoutURLs",
    "DefaultRedirectURI",
    "AllowedOAuthFlows",
    "AllowedOAuthScopes",
    "AllowedOAuthFlowsUserPoolClient",
    "PreventUserExistenceErrors",
    "EnableTokenRevocation",
)


def _table(d: Deployment, stack, logical, props, _code):
    ddb = d.client("dynamodb")
    name = props.get("TableName") or d._name(stack, logical, limit=255)
    params: dict[str, Any] = {k: props[k] for k in _TABLE_KEYS if k in props}
    if params.get("BillingMode") != "PAY_PER_REQUEST" and "ProvisionedThroughput" not in params:
        params["BillingMode"] = "PAY_PER_REQUEST"  # CloudFormation requires one of them; PAY_PER_REQUEST is SAM's
    answer = ddb.create_table(TableName=name, **params)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    attributes = {"Arn": answer["TableArn"]}
    if answer.get("LatestStreamArn"):
        attributes["StreamArn"] = answer["LatestStreamArn"]
    return name, attributes


def _user_pool(d: Deployment, stack, logical, props, _code):
    name = props.get("UserPoolName") or d._name(stack, logical, limit=128)
    params = {k: props[k] for k in _POOL_KEYS if k in props}
    pool = d.client("cognito-idp").create_user_pool(PoolName=name, **params)["UserPool"]
    provider = f"cognito-idp.{d.region}.amazonaws.com/{pool['Id']}"
    return pool["Id"], {
        "Arn": pool["Arn"],
        "ProviderName": provider,
        "ProviderURL": f"https://{provider}",
        "UserPoolId": pool["Id"],
    }


def _user_pool_client(d: Deployment, stack, logical, props, _code):
    params = {k: props[k] for k in _CLIENT_KEYS if k in props}
    params.setdefault("ClientName", logical)
    client = d.client("cognito-idp").create_user_pool_client(UserPoolId=props["UserPoolId"], **params)
    client = client["UserPoolClient"]
    attributes = {"UserPoolId": props["UserPoolId"], "ClientId": client["ClientId"], "Name": client["ClientName"]}
    if client.get("ClientSecret"):
        attributes["ClientSecret"] = client["ClientSecret"]
    return client["ClientId"], attributes


def _identity_pool(d: Deployment, stack, logical, props, _code):
    params = {
        k: props[k]
        for k in (
            "CognitoIdentityProviders",
            "SupportedLoginProviders",
            "DeveloperProviderName",
            "OpenIdConnectProviderARNs",
        )
        if k in props
    }
    name = props.get("IdentityPoolName") or d._name(stack, logical, separator="_", limit=128)
    pool = d.client("cognito-identity").create_identity_pool(
        IdentityPoolName=name,
        AllowUnauthenticatedIdentities=bool(props.get("AllowUnauthenticatedIdentities", False)),
        **params,
    )
    return pool["IdentityPoolId"], {"Name": pool["IdentityPoolName"]}


def _identity_roles(d: Deployment, stack, logical, props, _code):
    params = {"RoleMappings": props["RoleMappings"]} if props.get("RoleMappings") else {}
    d.client("cognito-identity").set_identity_pool_roles(
        IdentityPoolId=props["IdentityPoolId"], Roles=props.get("Roles") or {}, **params
    )
    return props["IdentityPoolId"], {}


def _parameter_options(props: dict) -> dict:
    """PutParameter's optional arguments the template gives."""
    return {k: props[k] for k in ("Description", "AllowedPattern", "Tier", "DataType") if k in props}


def _parameter(d: Deployment, stack, logical, props, _code):
    name = props.get("Name") or f"/{d._name(stack, logical)}"
    params = _parameter_options(props)
    d.client("ssm").put_parameter(Name=name, Value=str(props["Value"]), Type=props.get("Type", "String"), **params)
    return name, {"Type": props.get("Type", "String"), "Value": str(props["Value"])}


def _update_parameter(d: Deployment, item: dict, props: dict) -> tuple[dict, Callable[[], None]]:
    """CloudFormation's in-place update of a parameter's value (only a new Name replaces it): PutParameter
    with Overwrite; undone by putting the value it had back."""
    ssm, name = d.client("ssm"), item["physicalId"]
    before = ssm.get_parameter(Name=name)["Parameter"]
    params = _parameter_options(props)
    kind = props.get("Type", "String")
    ssm.put_parameter(Name=name, Value=str(props["Value"]), Type=kind, Overwrite=True, **params)

    def undo() -> None:
        ssm.put_parameter(Name=name, Value=before["Value"], Type=before["Type"], Overwrite=True)

    return {"Type": kind, "Value": str(props["Value"])}, undo


def _managed_policy(d: Deployment, stack, logical, props, _code):
    iam = d.client("iam")
    name = props.get("ManagedPolicyName") or d._name(stack, logical, limit=128)
    params = {k: props[k] for k in ("Description", "Path") if k in props}
    arn = iam.create_policy(PolicyName=name, PolicyDocument=iam_document(props["PolicyDocument"]), **params)["Policy"][
        "Arn"
    ]
    for role in props.get("Roles") or []:
        iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    return arn, {"PolicyArn": arn, "Roles": list(props.get("Roles") or [])}


def _delete_managed_policy(d: Deployment, item):
    iam = d.client("iam")
    for role in item["attributes"].get("Roles") or []:
        iam.detach_role_policy(RoleName=role, PolicyArn=item["physicalId"])
    iam.delete_policy(PolicyArn=item["physicalId"])


def _inline_policy(d: Deployment, stack, logical, props, _code):
    iam = d.client("iam")
    document = iam_document(props["PolicyDocument"])
    for role in props.get("Roles") or []:
        iam.put_role_policy(RoleName=role, PolicyName=props["PolicyName"], PolicyDocument=document)
    return f"{stack}-{logical}", {"PolicyName": props["PolicyName"], "Roles": list(props.get("Roles") or [])}


def _delete_inline_policy(d: Deployment, item):
    iam = d.client("iam")
    for role in item["attributes"].get("Roles") or []:
        iam.delete_role_policy(RoleName=role, PolicyName=item["attributes"]["PolicyName"])


CREATORS: dict[str, Creator] = {
    "AWS::DynamoDB::Table": _table,
    "AWS::Cognito::UserPool": _user_pool,
    "AWS::Cognito::UserPoolClient": _user_pool_client,
    "AWS::Cognito::IdentityPool": _identity_pool,
    "AWS::Cognito::IdentityPoolRoleAttachment": _identity_roles,
    "AWS::SSM::Parameter": _parameter,
    "AWS::IAM::ManagedPolicy": _managed_policy,
    "AWS::IAM::Policy": _inline_policy,
}

DELETERS: dict[str, Deleter] = {
    "AWS::DynamoDB::Table": lambda d, i: d.client("dynamodb").delete_table(TableName=i["physicalId"]),
    "AWS::Cognito::UserPool": lambda d, i: d.client("cognito-idp").delete_user_pool(UserPoolId=i["physicalId"]),
    "AWS::Cognito::UserPoolClient": lambda d, i: d.client("cognito-idp").delete_user_pool_client(
        UserPoolId=i["attributes"]["UserPoolId"], ClientId=i["physicalId"]
    ),
    "AWS::Cognito::IdentityPool": lambda d, i: d.client("cognito-identity").delete_identity_pool(
        IdentityPoolId=i["physicalId"]
    ),
    "AWS::SSM::Parameter": lambda d, i: d.client("ssm").delete_parameter(Name=i["physicalId"]),
    "AWS::IAM::ManagedPolicy": _delete_managed_policy,
    "AWS::IAM::Policy": _delete_inline_policy,
}

# what CloudFormation updates in place (see resources.UPDATERS): the properties that still replace, the updater
UPDATERS: dict[str, tuple[tuple[str, ...], Updater]] = {
    "AWS::SSM::Parameter": (("Name",), _update_parameter),
}
