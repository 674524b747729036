"""Lambda's Invoke API (``aws lambda invoke``, boto3 ``lambda.invoke``): the deployed code, run by the
emulator's Lambda runtime, answered as Lambda answers.

moto's own Invoke needs Docker; here the request goes to the runtime the emulator wires in
(``ApiSettings.lambda_runtime``): ``RequestResponse`` (the default) runs the function and answers 200
with its result, or 200 with ``X-Amz-Function-Error: Unhandled`` and Lambda's error payload; ``Event``
queues an asynchronous invocation (AWS's retries) and answers 202; ``DryRun`` answers 204. With
``LogType: Tail`` a synchronous answer carries ``X-Amz-Log-Result``, the last 4 KB of the invocation's
log, base64. A synchronous invocation of a function whose reserved concurrency is all busy answers 429
``TooManyRequestsException`` (Reason ``ReservedFunctionConcurrentInvocationLimitExceeded``). As with
every API, the caller's IAM policy is not evaluated.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import unquote

from emulator.lambdas.pool import FunctionError, LambdaError, Throttled

LOG_TAIL_BYTES = 4096  # what LogType Tail returns of the log: its last 4 KB

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
        ran = runtime.run(name, event)
    except Throttled:
        throttled = {
            "Type": "User",
            "message": "Rate Exceeded.",
            "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
        }
        return (
            429,
            [("Content-Type", "application/json"), ("x-amzn-ErrorType", "TooManyRequestsException")],
            json.dumps(throttled).encode(),
        )
    except LambdaError as exc:
        return _error(404, "ResourceNotFoundException", str(exc))
    answer = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")]
    if headers.get("x-amz-log-type") == "Tail":
        tail = "\n".join(ran.log_lines).encode()[-LOG_TAIL_BYTES:] + b"\n"
        answer.append(("X-Amz-Log-Result", base64.b64encode(tail).decode()))
    if ran.error is not None:
        failed = FunctionError(ran.error).error  # Lambda's error payload, without the runtime's trace
        return 200, [*answer, ("X-Amz-Function-Error", "Unhandled")], json.dumps(failed).encode()
    return 200, answer, (ran.result if ran.result is not None else "null").encode()
