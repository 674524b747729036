"""An invocation's log lines, framed as Lambda's Python runtime frames them."""

from __future__ import annotations

from emulator.lambdas.log_groups import event_line, parse_event_line
from emulator.lambdas.output import invocation_lines


def lines(**overrides):
    options = {"error": None, "extra": [], "duration_ms": 12.3, "memory_mb": 128, "init_ms": None} | overrides
    printed = options.pop("printed", "one\ntwo\n")
    return invocation_lines("req-1", printed, **options)


def test_what_an_invocation_printed_stands_between_start_and_end_then_the_report():
    assert lines() == [
        "START RequestId: req-1 Version: $LATEST",
        "one",
        "two",
        "END RequestId: req-1",
        "REPORT RequestId: req-1\tDuration: 12.30 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB",
    ]


def test_a_cold_start_reports_its_init_duration():
    assert lines(init_ms=250.456)[-1].endswith("\tInit Duration: 250.46 ms")


def test_the_report_says_the_peak_memory_before_the_init_duration_as_lambda_orders_them():
    report = lines(max_memory_mb=41, init_ms=100.0)[-1]
    assert report.endswith("\tMemory Size: 128 MB\tMax Memory Used: 41 MB\tInit Duration: 100.00 ms")


def test_an_error_is_one_event_with_its_traceback_after_what_was_printed():
    error = {"errorType": "ValueError", "errorMessage": "bad", "trace": "Traceback (most recent call last):\n  x"}
    logged = lines(error=error)
    assert logged[3] == "[ERROR] ValueError: bad\nTraceback (most recent call last):\n  x"
    assert logged[1:3] == ["one", "two"]


def test_the_runtimes_own_lines_come_before_end():
    logged = lines(printed="", extra=["req-1 Task timed out after 3.00 seconds"])
    assert logged[1] == "req-1 Task timed out after 3.00 seconds" and logged[2] == "END RequestId: req-1"


def test_billed_duration_is_at_least_a_millisecond():
    assert "Billed Duration: 1 ms" in lines(duration_ms=0.2)[-1]


def test_a_multiline_message_stays_one_line_of_the_file():
    at, message = parse_event_line(event_line("one\ntwo"))
    assert message == "one\\ntwo" and at.tzinfo is not None
