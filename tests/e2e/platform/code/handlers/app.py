"""A function behind the test stack's HTTP and REST APIs: it answers as each route asks."""

import json
import os
import time

import boto3


def handler(event, context):
    path = event.get("rawPath") or event.get("path") or ""
    if path.endswith("/fail"):
        raise RuntimeError("the function failed on purpose")
    if path.endswith("/slow"):
        time.sleep(2)
    if path.endswith("/malformed"):
        return {"statusCode": "not a number"}
    if path.endswith("/plain"):
        return {"plain": True}
    if path.endswith("/store"):
        table = boto3.resource("dynamodb").Table(os.environ["TABLE"])
        table.put_item(Item={"thing": "t1", "owner": "ann"})
        found = table.get_item(Key={"thing": "t1"})["Item"]
        greeting = boto3.client("ssm").get_parameter(Name=os.environ["GREETING"])["Parameter"]["Value"]
        return {"statusCode": 201, "body": json.dumps({"item": found, "greeting": greeting})}
    return {
        "statusCode": 200,
        "headers": {"x-answered-by": context.function_name},
        "cookies": ["seen=1"],
        "body": json.dumps({"event": event, "self": os.environ.get("SELF_URL")}),
    }
