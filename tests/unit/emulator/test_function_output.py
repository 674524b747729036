"""What a Lambda function prints goes to its log group, each invocation framed as Lambda frames it."""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Iterator

import pytest

from emulator.lambdas import output as function_output
from emulator.lambdas.log_groups import LogGroups, event_line, log_file, parse_event_line


@pytest.fixture
def groups(tmp_path):
    return LogGroups(tmp_path / "logs")


@contextlib.contextmanager
def own_stdout() -> Iterator[io.StringIO]:
    """A stream of the test's own as ``sys.stdout`` (set in the test's body: pytest resets it between phases)."""
    saved, stream = sys.stdout, io.StringIO()
    sys.stdout = stream
    try:
        yield stream
    finally:
        function_output.release()
        sys.stdout = saved


def messages(groups: LogGroups, function: str) -> list[str]:
    path = log_file(groups.log_dir, f"/aws/lambda/{function}")
    return [parse_event_line(line)[1] for line in path.read_text().splitlines()]


def test_what_an_invocation_prints_is_its_log_group_between_start_and_report(groups):
    with own_stdout() as stdout, function_output.invocation_output(groups, "activate", "req-1"):
        print('{"decision": "activated"}')
        print("two", "parts", end="")
    logged = messages(groups, "activate")
    assert logged[:4] == [
        "START RequestId: req-1 Version: $LATEST",
        '{"decision": "activated"}',
        "two parts",
        "END RequestId: req-1",
    ]
    assert logged[4].startswith("REPORT RequestId: req-1\tDuration: ") and len(logged) == 5
    assert stdout.getvalue() == ""


def test_a_print_reaches_the_log_group_when_another_stream_took_stdout_during_the_invocation(groups):
    """As Click's runner does when a CLI command runs in the same process while a function is running."""
    with own_stdout() as stdout, function_output.invocation_output(groups, "activate", "req-1"):
        captured, sys.stdout = sys.stdout, io.StringIO()  # another stream put in front of the router
        try:
            print('{"decision": "refused"}')
            other = sys.stdout.getvalue()
        finally:
            sys.stdout = captured
    assert '{"decision": "refused"}' in messages(groups, "activate")
    assert other == "" and stdout.getvalue() == ""


def test_other_threads_keep_printing_to_the_stream_that_was_there(groups):
    inside, done = threading.Event(), threading.Event()

    def invocation():
        with function_output.invocation_output(groups, "activate", "req-1"):
            inside.set()
            done.wait(5)
            print("from the function")

    with own_stdout() as stdout:
        worker = threading.Thread(target=invocation)
        worker.start()
        assert inside.wait(5)
        print("from the emulator")
        done.set()
        worker.join(5)
    assert stdout.getvalue() == "from the emulator\n"
    assert "from the function" in messages(groups, "activate")


def test_concurrent_invocations_each_log_their_own_lines_whole(groups):
    barrier = threading.Barrier(4)

    def invocation(n: int):
        with function_output.invocation_output(groups, f"f{n % 2}", f"req-{n}"):
            barrier.wait(5)
            for i in range(50):
                print(f"req-{n} line {i}")

    with own_stdout() as stdout:
        workers = [threading.Thread(target=invocation, args=(n,)) for n in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
    for function, requests in (("f0", ("req-0", "req-2")), ("f1", ("req-1", "req-3"))):
        logged = messages(groups, function)
        for request in requests:
            assert [m for m in logged if m.startswith(f"{request} line")] == [f"{request} line {i}" for i in range(50)]
    assert stdout.getvalue() == ""


def test_an_error_is_one_event_with_its_traceback_and_still_raises(groups):
    with (
        own_stdout(),
        pytest.raises(ValueError, match="bad event"),
        function_output.invocation_output(groups, "activate", "req-1"),
    ):
        raise ValueError("bad event")
    logged = messages(groups, "activate")
    assert logged[1].startswith("[ERROR] ValueError: bad event\\nTraceback (most recent call last):")
    assert logged[2] == "END RequestId: req-1" and len(logged) == 4


def test_release_gives_back_the_stream(groups):
    with own_stdout() as stdout:
        with function_output.invocation_output(groups, "activate", "req-1"):
            assert sys.stdout is not stdout
        function_output.release()
        assert sys.stdout is stdout


def test_a_multiline_message_stays_one_line_of_the_file():
    at, message = parse_event_line(event_line("one\ntwo"))
    assert message == "one\\ntwo" and at.tzinfo is not None
