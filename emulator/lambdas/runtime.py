"""Lambda functions in worker processes, from the code CreateFunction stored in the emulator.

There is no Docker here and the kit's functions need nothing beyond boto3, so each function gets
warm worker processes of its own (:mod:`emulator.lambdas.worker`, forked from a server that has
boto3 imported), started on demand and reused, like a function's containers on AWS: each with its own
``os.environ`` (the function's variables, Lambda's own such as ``AWS_LAMBDA_FUNCTION_NAME``, and
``AWS_ENDPOINT_URL`` pointing at the emulator) and its own module state. A function has at most its
``ReservedConcurrentExecutions`` workers, else :data:`MAX_WORKERS_PER_FUNCTION`; more invocations wait
for one. The function's ``Timeout`` is enforced by ending the worker (``Task timed out after N.NN
seconds`` in its log group), and a worker that dies fails only the invocation it was running; the next
gets a fresh worker. The broker's and the API's threads no longer share the GIL with the functions.

Asynchronous invocations (what an IoT rule's Lambda action makes) follow AWS's semantics: a
function error is retried twice, after a delay (a minute and two on AWS; configurable here). A retry
waits on a timer, not in one of the workers that run invocations, so failing invocations do not hold
back new events while they wait.
Like AWS, IoT may only invoke a function whose resource policy allows ``iot.amazonaws.com``
(pain point 4: a stack that forgets the permission never sees its Lambda fire).
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import io
import itertools
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.lambdas import output as function_output
from emulator.lambdas.log_groups import LogGroups
from emulator.lambdas.pool import (
    MAX_WORKERS_PER_FUNCTION,
    FunctionError,
    FunctionWorkers,
    LambdaError,
    Outcome,
    start_fork_server,
)
from emulator.store.backends import lambda_backend

log = logging.getLogger("jitr.emulator.lambda")


def arn_like(arn: str, patterns: str | list[str]) -> bool:
    """IAM's ArnLike: each of the six colon-separated parts matched on its own, ``*`` and ``?`` wildcards."""
    parts = arn.split(":", 5)
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        globs = pattern.split(":", 5)
        if len(globs) == len(parts) and all(
            re.fullmatch(re.escape(glob).replace(r"\*", ".*").replace(r"\?", "."), part)
            for glob, part in zip(globs, parts, strict=True)
        ):
            return True
    return False


@dataclass(frozen=True)
class Invocation:
    function: str
    attempts: int
    result: Any = None
    error: str | None = None


class _Timer:
    """Runs callables after a delay, on one thread; what is still waiting at :meth:`close` is dropped."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, action: Callable[[], None]) -> None:
        with self._changed:
            if self._closed:
                return
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), action))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="jitr-lambda-retries", daemon=True)
                self._thread.start()
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._closed and (not self._due or self._due[0][0] > time.monotonic()):
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._closed:
                    return
                action = heapq.heappop(self._due)[2]
            action()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._due.clear()
            self._changed.notify()


@dataclass(frozen=True)
class Ran:
    """One invocation: its result (JSON text) or Lambda's error payload, and its log lines."""

    result: str | None
    error: dict[str, Any] | None
    log_lines: list[str]

    def value(self) -> Any:
        """The result, decoded; :class:`FunctionError` if the function failed."""
        if self.error is not None:
            raise FunctionError(self.error)
        return json.loads(self.result) if self.result is not None else None


def _reserved(function) -> int | None:
    """The function's ReservedConcurrentExecutions (moto keeps it as given), None when it has none."""
    value = getattr(function, "reserved_concurrency", None)
    return None if value is None or value == "" else int(value)


class LambdaRuntime:
    def __init__(
        self,
        *,
        account_id: str,
        region: str,
        endpoint_url: str,
        work_dir: Path,
        retry_delays: tuple[float, ...] = (60.0, 120.0),
        workers: int = 64,
        log_dir: Path | None = None,
    ) -> None:
        self.account_id, self.region, self.endpoint_url = account_id, region, endpoint_url
        self.work_dir = Path(work_dir)
        self.retry_delays = retry_delays
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="jitr-lambda")  # waits on workers
        self._retries = _Timer()
        self._lock = threading.Lock()  # concurrent first invocations extract the code and make the pool once
        self._functions: dict[tuple, FunctionWorkers] = {}
        self._runtimes_said: set[str] = set()
        self.invocations: list[Invocation] = []  # for tests and the demo: what ran, how often
        self.logs = LogGroups(log_dir) if log_dir is not None else None  # else what functions print goes to stdout
        start_fork_server()

    def close(self) -> None:
        self._retries.close()
        with self._lock:
            pools, self._functions = list(self._functions.values()), {}
        for pool in pools:
            pool.close()  # invocations waiting for a worker end now; running ones end with their worker
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _backend(self):
        return lambda_backend(self.account_id, self.region)

    def _function(self, name_or_arn: str):
        try:
            return self._backend().get_function(name_or_arn)
        except Exception as exc:
            raise LambdaError(f"Function {name_or_arn} does not exist.") from exc

    def check_exists(self, name_or_arn: str) -> None:
        """Raise LambdaError unless the function exists (Invoke's DryRun)."""
        self._function(name_or_arn)

    def check_permission(self, function, principal: str, source_arn: str | None) -> None:
        """Raise unless the function's resource policy lets ``principal`` invoke it (from ``source_arn``)."""
        for statement in list(getattr(function.policy, "statements", [])):
            allowed = statement.get("Effect") == "Allow" and statement.get("Principal", {}).get("Service") == principal
            condition = statement.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn")
            if allowed and (condition is None or source_arn is None or arn_like(source_arn, condition)):
                return
        raise LambdaError(
            f"{principal} may not invoke {function.function_name}: the function has no permission for it."
        )

    def _workers(self, function) -> FunctionWorkers:
        """The warm workers of this version of the function (its code, handler and environment)."""
        code = getattr(function, "code_bytes", b"") or b""
        digest = hashlib.sha256(code).hexdigest()[:16]
        variables = dict(function.environment_vars or {})
        key = (function.function_name, digest, function.handler, tuple(sorted(variables.items())))
        with self._lock:
            pool = self._functions.get(key)
            if pool is None:
                folder = self.work_dir / f"{function.function_name}-{digest}"
                if not folder.exists():
                    with zipfile.ZipFile(io.BytesIO(code)) as archive:
                        archive.extractall(folder)
                self._say_runtime(getattr(function, "run_time", None))
                pool = self._functions[key] = FunctionWorkers(self._settings(function, folder, variables), 0)
            reserved = _reserved(function)
            pool.limit = MAX_WORKERS_PER_FUNCTION if reserved is None else reserved  # PutFunctionConcurrency applies
            return pool

    def _say_runtime(self, runtime: str | None) -> None:
        """Once a runtime: that functions declaring it run on this interpreter (there are no containers)."""
        local = f"python{sys.version_info.major}.{sys.version_info.minor}"
        if runtime and runtime != local and runtime not in self._runtimes_said:
            self._runtimes_said.add(runtime)
            log.info("functions with Runtime %s run on the local Python %s", runtime, sys.version.split()[0])

    def _settings(self, function, folder: Path, variables: Mapping[str, str]) -> dict[str, Any]:
        memory = int(function.memory_size or 128)
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(folder),
            "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.function_name}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "emulator",
            "AWS_SECRET_ACCESS_KEY": "emulator",
            **variables,  # the function's own variables win, as on Lambda (but for the reserved ones)
        }
        return {
            "function_name": function.function_name,
            "function_arn": function.function_arn,
            "memory_mb": memory,
            "handler": function.handler or "app.lambda_handler",
            "folder": str(folder),
            "environment": environment,
        }

    def invoke(self, name_or_arn: str, event: Any, **options: Any) -> Any:
        """Run the function once in one of its workers and return its result; :class:`FunctionError` if it
        raised, timed out or its worker died. ``options`` are :meth:`run`'s. With ``principal`` (a service
        such as API Gateway invoking it), the function's resource policy must allow that service from
        ``source_arn`` first.

        A synchronous invocation of a function with ``ReservedConcurrentExecutions`` whose reserved
        workers are all busy raises :class:`Throttled`, as Lambda answers 429; ``queued`` (an asynchronous
        invocation, which Lambda keeps in its queue) waits for a worker instead. Without reserved
        concurrency every invocation waits: AWS would scale out, the emulator has 4 workers a function."""
        return self.run(name_or_arn, event, **options).value()

    def run(
        self,
        name_or_arn: str,
        event: Any,
        *,
        principal: str | None = None,
        source_arn: str | None = None,
        queued: bool = False,
        request_id: str | None = None,
    ) -> Ran:
        """:meth:`invoke`, and the invocation's log lines (START to REPORT) too, for ``LogType: Tail``."""
        function = self._function(name_or_arn)
        if principal is not None:
            self.check_permission(function, principal, source_arn)
        pool = self._workers(function)
        request_id = request_id or str(uuid.uuid4())
        timeout = float(function.timeout or 3)
        item = pool.acquire(wait=queued or _reserved(function) is None)
        try:
            if item.init_error is not None:
                outcome = Outcome(None, item.init_error, item.init_printed, 0.0, item.init_ms)
            else:
                outcome = item.invoke(event, request_id, timeout)
                outcome.printed = item.init_printed + outcome.printed
                item.init_printed = ""
        finally:
            pool.release(item)
        lines = self._log(function, request_id, outcome)
        return Ran(outcome.result, outcome.error, lines)

    def _log(self, function, request_id: str, outcome: Outcome) -> list[str]:
        lines = function_output.invocation_lines(
            request_id,
            outcome.printed,
            error=outcome.error,
            extra=outcome.extra_log,
            duration_ms=outcome.duration_ms,
            memory_mb=int(function.memory_size or 128),
            init_ms=outcome.init_ms,
            max_memory_mb=outcome.max_memory_mb,
        )
        if self.logs is not None:
            self.logs.put(f"/aws/lambda/{function.function_name}", lines)
        else:
            for line in lines:
                print(line)
        return lines

    def invoke_async(
        self, name_or_arn: str, event: Any, *, principal: str | None = None, source_arn: str | None = None
    ) -> Future:
        """Queue an asynchronous invocation (retried twice on error); permission checked now.

        The future holds the :class:`Invocation` once it succeeded or its last retry failed.
        """
        function = self._function(name_or_arn)
        if principal is not None:
            self.check_permission(function, principal, source_arn)
        outcome: Future = Future()
        self._pool.submit(self._attempt, name_or_arn, event, 1, outcome, str(uuid.uuid4()))
        return outcome

    def _attempt(self, name_or_arn: str, event: Any, attempt: int, outcome: Future, request_id: str) -> None:
        """One attempt of an asynchronous invocation; its retries keep its request id, as Lambda's do."""
        try:
            result = self.run(name_or_arn, event, queued=True, request_id=request_id).value()
        except Exception as exc:  # a function error: AWS retries asynchronous invocations
            error = str(exc) if isinstance(exc, FunctionError) else f"{type(exc).__name__}: {exc}"
            log.warning("lambda %s attempt %d failed: %s", name_or_arn, attempt, error)
            if attempt <= len(self.retry_delays):
                retry = (self._attempt, name_or_arn, event, attempt + 1, outcome, request_id)
                self._retries.call_later(self.retry_delays[attempt - 1], lambda: self._resubmit(*retry))
                return
            finished = Invocation(name_or_arn, attempt, error=error)
        else:
            finished = Invocation(name_or_arn, attempt, result=result)
        self.invocations.append(finished)
        outcome.set_result(finished)

    def _resubmit(self, *attempt) -> None:
        with contextlib.suppress(RuntimeError):  # the runtime was closed meanwhile
            self._pool.submit(*attempt)
