"""Lambda functions run in worker processes of their own, as containers on AWS: their own environment and
module state, their Timeout enforced, a crash failing one invocation only, logs framed as Lambda frames them."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from emulator.lambdas.log_groups import log_file, parse_event_line
from emulator.lambdas.pool import FunctionError
from tests.e2e.conftest import create_function

pytestmark = pytest.mark.timeout(90)

REPORTS_ITSELF = """
import os, time

calls = 0


def lambda_handler(event, context):
    global calls
    calls += 1
    print("hello from", context.function_name)
    time.sleep(event.get("sleep", 0))
    return {
        "calls": calls,
        "pid": os.getpid(),
        "colour": os.environ.get("COLOUR"),
        "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        "memory": os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"],
        "endpoint": os.environ["AWS_ENDPOINT_URL"],
        "context": [context.function_name, context.memory_limit_in_mb, context.invoked_function_arn],
        "remaining": context.get_remaining_time_in_millis(),
        "request": context.aws_request_id,
    }
"""
CRASHES = """
import os


def lambda_handler(event, context):
    if event.get("crash"):
        os._exit(3)
    return {"pid": os.getpid()}
"""


def log_messages(emulator, function: str) -> list[str]:
    path = log_file(emulator.lambdas.logs.log_dir, f"/aws/lambda/{function}")
    return [parse_event_line(line)[1] for line in path.read_text().splitlines()]


def test_a_function_runs_in_its_own_process_with_lambdas_environment_context_and_warm_state(aws, emulator):
    arn = create_function(aws, "reports-itself", REPORTS_ITSELF, Timeout=7, MemorySize=256)
    first = emulator.lambdas.invoke(arn, {})
    second = emulator.lambdas.invoke(arn, {})
    assert first["pid"] != __import__("os").getpid()  # not the emulator's process
    assert (first["calls"], second["calls"]) == (1, 2) and first["pid"] == second["pid"]  # one warm worker
    assert first["name"] == "reports-itself" and first["memory"] == "256"
    assert first["endpoint"] == emulator.api.url
    assert first["context"] == ["reports-itself", "256", arn]
    assert 6000 < first["remaining"] <= 7000 and first["request"] != second["request"]
    messages = log_messages(emulator, "reports-itself")
    starts = [m for m in messages if m.startswith("START RequestId: ")]
    reports = [m for m in messages if m.startswith("REPORT RequestId: ")]
    assert len(starts) == len(reports) == 2 and "hello from reports-itself" in messages
    assert "Init Duration: " in reports[0] and "Init Duration" not in reports[1]  # only the cold start
    assert "Memory Size: 256 MB" in reports[0] and "Max Memory Used: " in reports[1]


def test_two_functions_with_different_environments_run_at_the_same_time_each_with_its_own(aws, emulator):
    red = create_function(aws, "red", REPORTS_ITSELF, Environment={"Variables": {"COLOUR": "red"}})
    blue = create_function(aws, "blue", REPORTS_ITSELF, Environment={"Variables": {"COLOUR": "blue"}})
    with ThreadPoolExecutor(4) as pool:
        runs = [pool.submit(emulator.lambdas.invoke, arn, {"sleep": 0.5}) for arn in (red, blue, red, blue)]
        results = [run.result(timeout=30) for run in runs]
    assert [r["colour"] for r in results] == ["red", "blue", "red", "blue"]
    assert len({r["pid"] for r in results}) == 4  # concurrent invocations: a worker each


def test_past_its_timeout_the_worker_is_ended_and_the_next_invocation_gets_a_fresh_one(aws, emulator):
    arn = create_function(aws, "slow", REPORTS_ITSELF, Timeout=1)
    warm = emulator.lambdas.invoke(arn, {})
    with pytest.raises(FunctionError, match="Task timed out after 1.00 seconds"):
        emulator.lambdas.invoke(arn, {"sleep": 5})
    fresh = emulator.lambdas.invoke(arn, {})
    assert fresh["calls"] == 1 and fresh["pid"] != warm["pid"]  # module state gone with the old worker
    assert any("Task timed out after 1.00 seconds" in m for m in log_messages(emulator, "slow"))


def test_a_worker_that_dies_fails_only_its_invocation(aws, emulator):
    arn = create_function(aws, "crashes", CRASHES)
    before = emulator.lambdas.invoke(arn, {})
    with pytest.raises(FunctionError, match="Runtime exited with error: exit status 3"):
        emulator.lambdas.invoke(arn, {"crash": True})
    after = emulator.lambdas.invoke(arn, {})
    assert after["pid"] != before["pid"]
    assert any("Runtime exited with error: exit status 3" in m for m in log_messages(emulator, "crashes"))


def test_a_handler_that_does_not_exist_fails_each_invocation_with_a_sentence_and_the_runtime_keeps_serving(
    aws, emulator
):
    arn = create_function(aws, "no-handler", "def other(event, context):\n    return 1\n")
    with pytest.raises(FunctionError, match="Handler 'lambda_handler' missing on module 'app'"):
        emulator.lambdas.invoke(arn, {})
    echo = create_function(aws, "still-echoes")
    assert emulator.lambdas.invoke(echo, {"n": 1}) == {"n": 1}


def test_a_function_error_is_logged_with_its_traceback_and_raised_as_a_function_error(aws, emulator):
    arn = create_function(aws, "raises", "def lambda_handler(event, context):\n    raise ValueError('bad event')\n")
    with pytest.raises(FunctionError) as caught:
        emulator.lambdas.invoke(arn, {})
    assert str(caught.value) == "ValueError: bad event"
    assert caught.value.error == {"errorMessage": "bad event", "errorType": "ValueError"}
    errors = [m for m in log_messages(emulator, "raises") if m.startswith("[ERROR] ValueError: bad event")]
    assert errors and "Traceback (most recent call last)" in errors[0]
    json.dumps(caught.value.error)  # Lambda's error payload is JSON


# -- Invoke through the API, as boto3 and the AWS CLI call it --------------------------------------------------


def test_boto3_invoke_runs_the_deployed_code_and_returns_its_result(aws, emulator):
    arn = create_function(aws, "invoked", REPORTS_ITSELF, Environment={"Variables": {"COLOUR": "green"}})
    answer = aws.client("lambda").invoke(FunctionName="invoked", Payload=json.dumps({}).encode())
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    result = json.loads(answer["Payload"].read())
    assert result["colour"] == "green" and result["context"][2] == arn


def test_boto3_invoke_of_a_failing_function_answers_its_error_as_lambda_does(aws, emulator):
    create_function(aws, "fails", "def lambda_handler(event, context):\n    raise KeyError('thing')\n")
    answer = aws.client("lambda").invoke(FunctionName="fails", Payload=b"{}")
    assert answer["StatusCode"] == 200 and answer["FunctionError"] == "Unhandled"
    assert json.loads(answer["Payload"].read()) == {"errorMessage": "'thing'", "errorType": "KeyError"}


def test_invoke_of_a_missing_function_or_with_a_bad_payload_is_refused_as_lambda_refuses(aws, emulator):
    client = aws.client("lambda")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="no-such-function", Payload=b"{}")
    create_function(aws, "takes-json")
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName="takes-json", Payload=b"{not json")


def test_an_event_invocation_is_accepted_at_once_and_runs_later(aws, emulator):
    create_function(aws, "queued", REPORTS_ITSELF)
    answer = aws.client("lambda").invoke(FunctionName="queued", InvocationType="Event", Payload=b"{}")
    assert answer["StatusCode"] == 202
    dry = aws.client("lambda").invoke(FunctionName="queued", InvocationType="DryRun")
    assert dry["StatusCode"] == 204
