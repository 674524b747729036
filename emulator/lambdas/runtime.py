"""Lambda functions run in-process, from the code CreateFunction stored in the emulator.

There is no Docker here and the kit's functions need nothing beyond boto3, so the handler is
imported from the function's zip (extracted once per code digest) and called in this process,
with the function's environment plus ``AWS_ENDPOINT_URL`` pointing at the emulator. A handler reads
``os.environ``, so invocations whose environments are the same (those of one function: what a burst of
IoT events makes) run concurrently, like a function's warm containers on AWS, while an invocation
needing another environment waits until they are done (:class:`_EnvironmentGate`).

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
import importlib.util
import io
import itertools
import logging
import os
import re
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base.errors import JitrError
from emulator.lambdas import output as function_output
from emulator.lambdas.log_groups import LogGroups
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


class LambdaError(JitrError):
    """A function could not be found, was not allowed to be invoked, or failed."""


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


class _Context:
    """The parts of Lambda's context object handlers use."""

    def __init__(self, name: str, arn: str, timeout_s: int) -> None:
        self.function_name = name
        self.invoked_function_arn = arn
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 128
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _EnvironmentGate:
    """``os.environ`` holds one function's environment at a time; invocations sharing it run together.

    An invocation whose environment differs waits until the running ones are done, and from then on
    newcomers wait behind it, so that no function starves another.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._current: frozenset | None = None
        self._users = 0
        self._waiting = 0  # invocations waiting their turn: while there are any, newcomers queue behind them
        self._saved: dict[str, str | None] = {}

    @contextlib.contextmanager
    def applied(self, values: Mapping[str, str]) -> Iterator[None]:
        key = frozenset(values.items())
        with self._changed:
            waited = False
            while self._users and (self._current != key or (self._waiting and not waited)):
                if not waited:
                    self._waiting, waited = self._waiting + 1, True
                self._changed.wait()
            self._waiting -= waited
            if self._users == 0:
                self._saved = {name: os.environ.get(name) for name in values}
                os.environ.update(values)
                self._current = key
            self._users += 1
        try:
            yield
        finally:
            with self._changed:
                self._users -= 1
                if self._users == 0:
                    for name, value in self._saved.items():
                        if value is None:
                            os.environ.pop(name, None)
                        else:
                            os.environ[name] = value
                    self._current = None
                    self._changed.notify_all()


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
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="jitr-lambda")
        self._retries = _Timer()
        self._gate = _EnvironmentGate()
        self._load_lock = threading.Lock()  # concurrent first invocations extract and import the code once
        self._handlers: dict[str, Callable] = {}
        self.invocations: list[Invocation] = []  # for tests and the demo: what ran, how often
        self.logs = LogGroups(log_dir) if log_dir is not None else None  # else what functions print goes to stdout

    def close(self) -> None:
        self._retries.close()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.logs is not None:
            function_output.release()

    def _backend(self):
        return lambda_backend(self.account_id, self.region)

    def _function(self, name_or_arn: str):
        try:
            return self._backend().get_function(name_or_arn)
        except Exception as exc:
            raise LambdaError(f"Function {name_or_arn} does not exist.") from exc

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

    def _handler(self, function) -> Callable:
        code = getattr(function, "code_bytes", b"") or b""
        digest = hashlib.sha256(code).hexdigest()[:16]
        key = f"{function.function_name}-{digest}"
        handler = self._handlers.get(key)
        if handler is None:
            with self._load_lock:
                handler = self._handlers.get(key) or self._load(key, code, function.handler)
                self._handlers[key] = handler
        return handler

    def _load(self, key: str, code: bytes, handler_name: str | None) -> Callable:
        folder = self.work_dir / key
        if not folder.exists():
            with zipfile.ZipFile(io.BytesIO(code)) as archive:
                archive.extractall(folder)
        module_name, _, attribute = (handler_name or "app.lambda_handler").rpartition(".")
        path = folder / (module_name.replace(".", "/") + ".py")
        spec = importlib.util.spec_from_file_location(f"jitr_lambda_{key.replace('-', '_')}", path)
        if spec is None or spec.loader is None:
            raise LambdaError(f"The handler module {path.name} of the function cannot be loaded.")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(folder))  # the function's sibling modules import as on Lambda
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return getattr(module, attribute)

    def _environment(self, variables: Mapping[str, str]):
        return self._gate.applied(
            {
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_ACCESS_KEY_ID": "emulator",
                "AWS_SECRET_ACCESS_KEY": "emulator",
                **variables,
            }
        )

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        """Run the function once, synchronously; its exception propagates."""
        function = self._function(name_or_arn)
        handler = self._handler(function)
        context = _Context(function.function_name, function.function_arn, int(function.timeout or 3))
        output = (
            function_output.invocation_output(self.logs, function.function_name, context.aws_request_id)
            if self.logs is not None
            else contextlib.nullcontext()
        )
        with self._environment(function.environment_vars or {}), output:
            return handler(event, context)

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
        self._pool.submit(self._attempt, name_or_arn, event, 1, outcome)
        return outcome

    def _attempt(self, name_or_arn: str, event: Any, attempt: int, outcome: Future) -> None:
        try:
            result = self.invoke(name_or_arn, event)
        except Exception as exc:  # a function error: AWS retries asynchronous invocations
            error = f"{type(exc).__name__}: {exc}"
            log.warning("lambda %s attempt %d failed: %s", name_or_arn, attempt, error)
            if attempt <= len(self.retry_delays):
                retry = (self._attempt, name_or_arn, event, attempt + 1, outcome)
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
