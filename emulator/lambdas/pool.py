"""A function's warm worker processes, from the runtime's side: start one, send it an invocation, end it.

:class:`FunctionWorkers` keeps the idle workers of one version of one function and starts more on
demand, up to its limit; :class:`Worker` is one process running :func:`emulator.lambdas.worker.serve`,
which enforces the function's Timeout by ending the process and tells a worker that died from a
function that failed. :mod:`emulator.lambdas.runtime` decides what runs where.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import multiprocessing.forkserver
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from base.errors import JitrError
from emulator.lambdas import worker


class LambdaError(JitrError):
    """A function could not be found, was not allowed to be invoked, or failed."""


MAX_WORKERS_PER_FUNCTION = 4  # warm workers a function may have without ReservedConcurrentExecutions (2 cores)
INIT_TIMEOUT = 10.0  # seconds Lambda gives a function's init phase
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["emulator.lambdas.worker", "boto3", "botocore.session"])


def start_fork_server() -> None:
    """Start the server workers are forked from, if it is not running: it imports boto3 (about a second of
    a busy 2-core machine) while the emulator waits for its first invocation, not during it. A worker's own
    cold start (its fork, the function's import and init) is still paid, and reported, at its first
    invocation."""
    multiprocessing.forkserver.ensure_running()


class Throttled(LambdaError):
    """A synchronous invocation found every one of the function's reserved concurrency busy (Lambda's 429)."""

    def __init__(self, function_name: str) -> None:
        super().__init__(f"Rate Exceeded: {function_name} is running as many times as its reserved concurrency allows.")


class FunctionError(LambdaError):
    """The function ran and failed (an exception, a timeout, a worker that died): Lambda's FunctionError.

    ``str()`` is ``Type: message`` as the function raised it; ``error`` is Lambda's error payload.
    """

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}")
        self.error = {k: v for k, v in error.items() if k != "trace"}


@dataclass
class Outcome:
    """One invocation as a worker answered it: result JSON or error, what it printed, how long it took."""

    result: str | None
    error: dict[str, Any] | None
    printed: str
    duration_ms: float
    init_ms: float | None
    extra_log: list[str] = field(default_factory=list)  # lines the runtime adds (timeout, exit)
    max_memory_mb: int | None = None  # the worker's peak resident memory, when it answered


class Worker:
    """One worker process of one function, ready for invocations after its init phase."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.parent, child = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(
            target=worker.serve, args=(child, settings), name=f"lambda-{settings['function_name']}", daemon=True
        )
        started = time.monotonic()
        self.process.start()
        child.close()
        self.init_ms: float | None = None  # reported once, on the first invocation (the cold start)
        self.init_error: dict[str, Any] | None = None
        self.init_printed = ""
        if not self.parent.poll(INIT_TIMEOUT):
            self.kill()
            self.init_error = {"errorType": "Runtime.InitTimeout", "errorMessage": "init phase timed out"}
            return
        try:
            status, error, printed, _init = self.parent.recv()
        except (EOFError, OSError):
            status, error, printed = worker.INIT_ERROR, _exit_error(self.process), ""
        self.init_ms = (time.monotonic() - started) * 1000
        self.init_printed = printed
        if status == worker.INIT_ERROR:
            self.init_error = error
            self.kill()

    def invoke(self, event: Any, request_id: str, timeout: float) -> Outcome:
        init_ms, self.init_ms = self.init_ms, None
        started = time.monotonic()
        try:
            self.parent.send({"event": event, "request_id": request_id, "deadline": time.time() + timeout})
            answered = self.parent.poll(timeout)
            status, payload, printed, memory = self.parent.recv() if answered else (None, None, "", None)
        except (EOFError, OSError):  # the worker died: os._exit, a signal, a segfault
            self.kill()
            error = _exit_error(self.process)
            line = f"RequestId: {request_id} Error: {error['errorMessage']}"
            return Outcome(None, error, "", (time.monotonic() - started) * 1000, init_ms, [line])
        duration = (time.monotonic() - started) * 1000
        if not answered:  # past the function's Timeout: Lambda ends the container
            self.kill()
            line = f"{_timestamp()} {request_id} Task timed out after {timeout:.2f} seconds"
            error = {"errorType": "Sandbox.Timedout", "errorMessage": f"Task timed out after {timeout:.2f} seconds"}
            return Outcome(None, error, "", duration, init_ms, [line])
        if status == worker.OK:
            return Outcome(payload, None, printed, duration, init_ms, max_memory_mb=memory)
        return Outcome(None, payload, printed, duration, init_ms, max_memory_mb=memory)

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.join(5)
        with contextlib.suppress(Exception):
            self.parent.close()


def _exit_error(process: Any) -> dict[str, Any]:
    process.join(5)
    code = process.exitcode
    how = f"signal: {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
    return {"errorType": "Runtime.ExitError", "errorMessage": f"Runtime exited with error: {how}"}


def _timestamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class FunctionWorkers:
    """The warm workers of one version of one function (its code, handler and environment)."""

    def __init__(self, settings: dict[str, Any], limit: int) -> None:
        self.settings, self.limit = settings, limit
        self._idle: list[Worker] = []
        self._count = 0
        self._changed = threading.Condition()
        self._closed = False

    def acquire(self, *, wait: bool = True) -> Worker:
        """An idle worker, or a new one below the limit; at the limit, wait for one (``wait``) or raise
        :class:`Throttled`. A limit of 0 (reserved concurrency 0: the function is switched off) always throttles."""
        with self._changed:
            if self.limit == 0 or (not wait and not self._idle and self._count >= self.limit):
                raise Throttled(self.settings["function_name"])
            while not self._idle and self._count >= self.limit and not self._closed:
                self._changed.wait()
            if self._closed:
                raise LambdaError(f"The Lambda runtime is closed; {self.settings['function_name']} did not run.")
            if self._idle:
                return self._idle.pop()
            self._count += 1
        try:
            return Worker(self.settings)
        except BaseException:
            self._forget()
            raise

    def release(self, item: Worker) -> None:
        if not item.alive or item.init_error is not None:
            self._forget()
            return
        with self._changed:
            if self._closed:
                item.kill()
                self._count -= 1
            else:
                self._idle.append(item)
            self._changed.notify()

    def _forget(self) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._changed.notify_all()
        for item in idle:
            item.kill()
