"""Asynchronous invocations as AWS runs them: a function error is retried twice, after a delay that holds no worker."""

from __future__ import annotations

import pytest

from emulator.lambdas.log_groups import log_file, parse_event_line
from emulator.lambdas.runtime import LambdaRuntime
from tests.e2e.conftest import create_function

pytestmark = pytest.mark.timeout(60)

FAILS_ONCE = """
calls = 0


def lambda_handler(event, context):
    global calls
    calls += 1
    if calls == 1:
        raise RuntimeError("the first call fails")
    return {"calls": calls}
"""
ALWAYS_FAILS = "def lambda_handler(event, context):\n    raise RuntimeError('always')\n"


def test_a_function_error_is_retried_and_the_retry_can_succeed(aws, emulator):
    function = create_function(aws, "fails-once", FAILS_ONCE)
    invocation = emulator.lambdas.invoke_async(function, {"n": 1}).result(timeout=10)
    assert invocation.attempts == 2 and invocation.result == {"calls": 2} and invocation.error is None


def test_a_function_that_keeps_failing_is_tried_three_times_in_all(aws, emulator):
    function = create_function(aws, "always-fails", ALWAYS_FAILS)
    invocation = emulator.lambdas.invoke_async(function, {}).result(timeout=10)
    assert invocation.attempts == 3 and invocation.error == "RuntimeError: always"
    assert emulator.lambdas.invocations == [invocation]
    log = log_file(emulator.lambdas.logs.log_dir, "/aws/lambda/always-fails").read_text().splitlines()
    starts = [parse_event_line(line)[1] for line in log if "START RequestId:" in line]
    assert len(starts) == 3 and len(set(starts)) == 1  # the retries keep the invocation's request id, as Lambda's do


def test_an_invocation_waiting_for_its_retry_does_not_hold_back_other_events(aws, emulator, tmp_path):
    failing, echo = create_function(aws, "always-fails", ALWAYS_FAILS), create_function(aws, "echo")
    registry = emulator.api.registry()
    runtime = LambdaRuntime(  # one worker, and retries a minute apart as on AWS
        account_id=registry.account,
        region=registry.region,
        endpoint_url=emulator.api.url,
        work_dir=tmp_path,
        retry_delays=(60.0, 120.0),
        workers=1,
    )
    try:
        waiting = runtime.invoke_async(failing, {})
        echoed = runtime.invoke_async(echo, {"n": 1}).result(timeout=10)
        assert echoed.result == {"n": 1} and echoed.attempts == 1
        assert not waiting.done()  # its first attempt failed; the retry is a minute away
    finally:
        runtime.close()
