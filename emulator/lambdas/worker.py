"""One Lambda worker: a process of its own for one function, as a warm container is on AWS.

:mod:`emulator.lambdas.runtime` starts a worker with the function's code folder, handler and
environment, then sends it one invocation at a time over a pipe. The worker sets its ``os.environ``
once (the function's variables and the runtime's own), imports the handler (the cold start, timed as
``Init Duration``), and for each invocation calls the handler with the event and a context, capturing
what it prints, and answers with the result (JSON text, as Lambda serialises it) or the error and its
traceback. The parent enforces the timeout by ending the process; a worker that dies fails only the
invocation it was running.

Only the standard library here: the worker imports this module and the function's own code.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import resource
import sys
import time
import traceback
from typing import Any

INIT_ERROR = "init-error"
OK = "ok"
ERROR = "error"


class Context:
    """The context object Lambda's Python runtime passes to a handler (the parts handlers use)."""

    def __init__(self, request: dict[str, Any], settings: dict[str, Any]) -> None:
        self.function_name = settings["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = settings["function_arn"]
        self.memory_limit_in_mb = str(settings["memory_mb"])
        self.aws_request_id = request["request_id"]
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = settings.get("log_stream", "local")
        self._deadline = request["deadline"]  # time.time() at which the invocation times out

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _load(folder: str, handler_name: str) -> Any:
    module_name, _, attribute = handler_name.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"Bad handler '{handler_name}': use MODULE.FUNCTION")
    path = os.path.join(folder, *module_name.split(".")) + ".py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None or not os.path.isfile(path):
        raise ImportError(f"Unable to import module '{module_name}': No module named '{module_name}'")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    handler = getattr(module, attribute, None)
    if handler is None:
        raise AttributeError(f"Handler '{attribute}' missing on module '{module_name}'")
    return handler


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "trace": "".join(traceback.format_exception(exc)).rstrip("\n"),
    }


def _max_memory_mb() -> int:
    """The worker's peak resident memory so far, as Lambda's ``Max Memory Used`` (Linux reports KiB)."""
    return max(1, round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def serve(conn: Any, settings: dict[str, Any]) -> None:
    """The worker's life: set the environment, import the handler, then answer invocations until EOF."""
    os.environ.clear()
    os.environ.update(settings["environment"])
    os.chdir(settings["folder"])
    sys.path.insert(0, settings["folder"])  # the function's sibling modules import as on Lambda
    printed = io.StringIO()
    started = time.monotonic()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            handler = _load(settings["folder"], settings["handler"])
    except BaseException as exc:  # an import error, a bad handler name, a module that exits
        conn.send((INIT_ERROR, _error(exc), printed.getvalue(), (time.monotonic() - started) * 1000))
        return
    conn.send((OK, None, printed.getvalue(), (time.monotonic() - started) * 1000))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                result = handler(request["event"], Context(request, settings))
            answer: tuple[str, Any, str, int] = (OK, json.dumps(result), printed.getvalue(), _max_memory_mb())
        except Exception as exc:  # the function's error: Lambda reports it and keeps the container
            answer = (ERROR, _error(exc), printed.getvalue(), _max_memory_mb())
        conn.send(answer)
