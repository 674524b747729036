"""What a Lambda function prints goes to its log group, as on AWS, not to the emulator's own output.

The functions run in the emulator's process, on its threads, and print to ``sys.stdout``. From a
runtime's first invocation until it closes, ``sys.stdout`` is an :class:`_OutputRouter`: a thread
running an invocation writes to that invocation's :class:`InvocationLog`, every other thread to the
stream that was there before. ``print`` is routed the same way, so that a line still reaches its log when
someone else puts another stream in ``sys.stdout`` during the invocation (a CLI run in the same process,
as the tests do with Click's runner, would otherwise catch a function's output).
Each invocation logs as Lambda's Python runtime does: ``START``, the lines it printed, an
``[ERROR]`` event with the traceback when it raised, ``END`` and ``REPORT``.
"""

from __future__ import annotations

import builtins
import contextlib
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any, TextIO

from emulator.lambdas.log_groups import LogGroups


class InvocationLog:
    """One invocation's output, a line at a time, to the function's log group ``/aws/lambda/NAME``."""

    def __init__(self, groups: LogGroups, function_name: str, request_id: str) -> None:
        self._groups, self.group, self.request_id = groups, f"/aws/lambda/{function_name}", request_id
        self._partial = ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        if lines:
            self._groups.put(self.group, lines)
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._partial:
            self._groups.put(self.group, [self._partial])
            self._partial = ""


_bound = threading.local()  # the InvocationLog of the invocation a thread is running, if any


class _OutputRouter:
    """``sys.stdout`` while a runtime is open: each invocation's thread writes to its own log."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def _target(self) -> Any:
        return getattr(_bound, "log", None) or self.inner

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, ...: the stream underneath
        return getattr(self.inner, name)


_lock = threading.Lock()
_builtin_print = builtins.print


def _print(*args: Any, **kwargs: Any) -> None:
    """``print``: to the invocation's log on a thread running one (unless told another file), else as ever."""
    log = getattr(_bound, "log", None)
    if log is not None and kwargs.get("file") in (None, sys.stdout):
        kwargs["file"] = log
    _builtin_print(*args, **kwargs)


def _router() -> _OutputRouter:
    """The router that is ``sys.stdout``; put in front of whatever is there now when it is not.

    Looked for at every invocation rather than once, since others replace ``sys.stdout`` too (pytest
    does between a test's phases).
    """
    with _lock:
        builtins.print = _print
        if not isinstance(sys.stdout, _OutputRouter):
            sys.stdout = _OutputRouter(sys.stdout)
        return sys.stdout


def release() -> None:
    """A runtime closed: give back the stream the router was put in front of."""
    with _lock:
        builtins.print = _builtin_print
        if isinstance(sys.stdout, _OutputRouter):
            sys.stdout = sys.stdout.inner


@contextlib.contextmanager
def invocation_output(groups: LogGroups, function_name: str, request_id: str) -> Iterator[None]:
    """Log the invocation as Lambda does, and route what this thread prints meanwhile to it."""
    log = InvocationLog(groups, function_name, request_id)
    groups.put(log.group, [f"START RequestId: {request_id} Version: $LATEST"])
    started = time.monotonic()
    _router()
    _bound.log = log  # kept per thread, not per router: any router in sys.stdout sends this thread's lines here
    try:
        try:
            yield
        finally:
            _bound.log = None
            log.close()
    except Exception as exc:
        trace = "".join(traceback.format_exception(exc)).rstrip("\n")
        groups.put(log.group, [f"[ERROR] {type(exc).__name__}: {exc}\n{trace}"])
        raise
    finally:
        elapsed = (time.monotonic() - started) * 1000
        report = f"Duration: {elapsed:.2f} ms\tBilled Duration: {max(1, round(elapsed))} ms"
        groups.put(log.group, [f"END RequestId: {request_id}", f"REPORT RequestId: {request_id}\t{report}"])
