"""Lambda's Invoke as AWS answers it at the edges: reserved concurrency that is all busy throttles a
synchronous call with 429 (an asynchronous one waits in the queue), and LogType Tail returns the last
4 KB of the invocation's log, however much the function printed."""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest
from botocore.config import Config

from tests.e2e.conftest import create_function, wait_for

pytestmark = pytest.mark.timeout(90)

SLEEPS = """
import time


def lambda_handler(event, context):
    time.sleep(event.get("sleep", 0))
    print(event.get("say", ""))
    return {"slept": event.get("sleep", 0)}
"""
PRINTS_10_MB = """
def lambda_handler(event, context):
    for _ in range(10 * 1024):
        print("x" * 1023)
    return {"printed": 10 * 1024 * 1024}
"""
NO_RETRIES = Config(retries={"mode": "standard", "max_attempts": 1})


def _busy(client, name: str, seconds: float) -> threading.Thread:
    """A synchronous invocation that holds one worker for ``seconds``, in a thread."""
    thread = threading.Thread(
        target=client.invoke, kwargs={"FunctionName": name, "Payload": json.dumps({"sleep": seconds}).encode()}
    )
    thread.start()
    return thread


def test_a_synchronous_invoke_beyond_the_reserved_concurrency_answers_429_and_the_next_one_runs(aws, emulator):
    client = aws.client("lambda", config=NO_RETRIES)
    create_function(aws, "reserved-one", SLEEPS, Timeout=10)
    client.put_function_concurrency(FunctionName="reserved-one", ReservedConcurrentExecutions=1)
    client.invoke(FunctionName="reserved-one", Payload=b"{}")  # warm: the worker exists
    busy = _busy(client, "reserved-one", 1.5)
    time.sleep(0.3)

    with pytest.raises(client.exceptions.TooManyRequestsException) as throttled:
        client.invoke(FunctionName="reserved-one", Payload=b"{}")
    busy.join(10)

    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert throttled.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert json.loads(client.invoke(FunctionName="reserved-one", Payload=b"{}")["Payload"].read()) == {"slept": 0}


def test_reserved_concurrency_zero_throttles_every_synchronous_invoke(aws, emulator):
    client = aws.client("lambda", config=NO_RETRIES)
    create_function(aws, "switched-off", SLEEPS)
    client.put_function_concurrency(FunctionName="switched-off", ReservedConcurrentExecutions=0)

    with pytest.raises(client.exceptions.TooManyRequestsException):
        client.invoke(FunctionName="switched-off", Payload=b"{}")

    client.delete_function_concurrency(FunctionName="switched-off")
    assert client.invoke(FunctionName="switched-off", Payload=b"{}")["StatusCode"] == 200


def test_an_event_invocation_waits_for_a_reserved_worker_instead_of_being_throttled(aws, emulator):
    client = aws.client("lambda", config=NO_RETRIES)
    create_function(aws, "queues", SLEEPS, Timeout=10)
    client.put_function_concurrency(FunctionName="queues", ReservedConcurrentExecutions=1)
    busy = _busy(client, "queues", 1.0)
    time.sleep(0.3)

    answer = client.invoke(FunctionName="queues", InvocationType="Event", Payload=json.dumps({"say": "later"}).encode())
    busy.join(10)

    assert answer["StatusCode"] == 202
    done = wait_for(lambda: [i for i in emulator.lambdas.invocations if i.function.endswith("queues")])
    assert [(i.attempts, i.error) for i in done] == [(1, None)]  # ran once the worker was free, not throttled


def test_log_type_tail_answers_the_invocations_log_from_start_to_report(aws, emulator):
    create_function(aws, "talks", SLEEPS)
    answer = aws.client("lambda").invoke(
        FunctionName="talks", LogType="Tail", Payload=json.dumps({"say": "hello from talks"}).encode()
    )

    lines = base64.b64decode(answer["LogResult"]).decode().splitlines()

    assert lines[0].startswith("START RequestId: ") and "hello from talks" in lines
    assert lines[-2].startswith("END RequestId: ") and lines[-1].startswith("REPORT RequestId: ")


def test_a_function_that_prints_10_mb_is_answered_with_a_4_kb_tail_and_the_runtime_keeps_serving(aws, emulator):
    create_function(aws, "loud", PRINTS_10_MB, Timeout=30, MemorySize=512)
    client = aws.client("lambda")

    answer = client.invoke(FunctionName="loud", LogType="Tail", Payload=b"{}")

    tail = base64.b64decode(answer["LogResult"])
    assert len(tail) <= 4097 and tail.decode().splitlines()[-1].startswith("REPORT RequestId: ")
    assert json.loads(answer["Payload"].read()) == {"printed": 10 * 1024 * 1024}
    create_function(aws, "after-loud")
    assert json.loads(client.invoke(FunctionName="after-loud", Payload=b'{"ok": 1}')["Payload"].read()) == {"ok": 1}
