"""Lambda's Invoke API (``aws lambda invoke``, boto3 ``lambda.invoke``): the deployed code, run by the
emulator's Lambda runtime, answered as Lambda answers.

moto's own Invoke needs Docker; here the request goes to the runtime the emulator wires in
(``ApiSettings.lambda_runtime``): ``RequestResponse`` (the default) runs the function and answers 200
with its result, or 200 with ``X-Amz-Function-Error: Unhandled`` and Lambda's error payload; ``Event``
queues an asynchronous invocation (AWS's retries) and answers 202; ``DryRun`` answers 204. As with
every API, the caller's IAM policy is not evaluated.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

from emulator.lambdas.pool import FunctionError, LambdaError

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
Response = tuple[int, list[tuple[str, str]], bytes]


def function_of(method: str, path: str) -> str | None:
    """The function an Invoke request names (name, ARN or partial ARN), or None for another request."""
    found = INVOKE_PATH.match(path) if method == "POST" else None
    return unquote(found.group("name")) if found else None


def _error(status: int, code: str, message: str) -> Response:
    body = json.dumps({"Type": "User", "message": message}).encode()
    return status, [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)], body


def not_served(sentence: str) -> Response:
    """An Invoke in a region whose functions the emulator does not run."""
    return _error(503, "ServiceException", sentence)


def invoke(runtime: Any, name: str, headers: dict[str, str], payload: bytes) -> Response:
    """Answer one Invoke request through ``runtime`` (emulator.lambdas.runtime.LambdaRuntime)."""
    kind = headers.get("x-amz-invocation-type") or "RequestResponse"
    if kind not in INVOCATION_TYPES:
        return _error(400, "InvalidParameterValueException", f"InvocationType {kind!r} is not valid.")
    try:
        event = json.loads(payload) if payload.strip() else {}
    except ValueError:
        return _error(400, "InvalidRequestContentException", "Could not parse request body into json.")
    if runtime is None:
        return _error(503, "ServiceException", "The emulator's Lambda runtime is not running.")
    try:
        if kind == "DryRun":
            runtime.check_exists(name)
            return 204, [("X-Amz-Executed-Version", "$LATEST")], b""
        if kind == "Event":
            runtime.invoke_async(name, event)
            return 202, [], b""
        result = runtime.invoke(name, event)
    except FunctionError as exc:
        headers_out = [("Content-Type", "application/json"), ("X-Amz-Function-Error", "Unhandled")]
        return 200, [*headers_out, ("X-Amz-Executed-Version", "$LATEST")], json.dumps(exc.error).encode()
    except LambdaError as exc:
        return _error(404, "ResourceNotFoundException", str(exc))
    body = json.dumps(result).encode()
    return 200, [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")], body
