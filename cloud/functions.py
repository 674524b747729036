"""The Lambda calls the kit makes: letting AWS IoT invoke a fleet's pre-provisioning hook."""

from __future__ import annotations

from base.errors import AwsError, NotFoundError
from cloud.session import aws_error_code, failed_call

IOT_PRINCIPAL = "iot.amazonaws.com"


def allow_iot_hook(session, function: str, template: str) -> str:
    """The ARN of ``function`` (a name or ARN), with a resource policy statement that lets AWS IoT invoke it
    from the provisioning template ``template`` (added once: a re-run finds it). AWS IoT rejects every
    request of a template whose hook it may not invoke."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = session.client("lambda")
    try:
        arn = client.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    except ClientError as exc:
        if aws_error_code(exc) == "ResourceNotFoundException":
            raise NotFoundError(f"There is no Lambda function {function} to use as the hook.") from exc
        raise failed_call(exc, "Lambda GetFunction") from exc
    except BotoCoreError as exc:
        raise failed_call(exc, "Lambda GetFunction") from exc
    _, _, _, region, account, _ = arn.split(":", 5)
    try:
        client.add_permission(
            FunctionName=arn,
            StatementId=f"jitr-provisioning-hook-{template}",
            Action="lambda:InvokeFunction",
            Principal=IOT_PRINCIPAL,
            SourceArn=f"arn:aws:iot:{region}:{account}:provisioningtemplate/{template}",
        )
    except ClientError as exc:
        if aws_error_code(exc) != "ResourceConflictException":  # the statement is there from an earlier run
            raise AwsError(f"Cannot let AWS IoT invoke {function}: {exc}.", code=aws_error_code(exc)) from exc
    except BotoCoreError as exc:
        raise failed_call(exc, "Lambda AddPermission") from exc
    return arn
