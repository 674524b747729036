"""Lambda functions run in-process, from the code CreateFunction stored in the emulator.

There is no Docker here and the kit's functions need nothing beyond boto3, so the handler is
imported from the function's zip (extracted once per code digest) and called in this process,
with the function's environment plus ``AWS_ENDPOINT_URL`` pointing at the emulator. Invocations
hold one lock while they run, because a handler reads ``os.environ``.

Asynchronous invocations (what an IoT rule's Lambda action makes) follow AWS's semantics: a
function error is retried twice, after a delay (a minute and two on AWS; configurable here).
Like AWS, IoT may only invoke a function whose resource policy allows ``iot.amazonaws.com``
(pain point 4: a stack that forgets the permission never sees its Lambda fire).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
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

from ca.errors import JitrError

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


class LambdaRuntime:
    def __init__(
        self,
        *,
        account_id: str,
        region: str,
        endpoint_url: str,
        work_dir: Path,
        retry_delays: tuple[float, ...] = (1.0, 2.0),
        workers: int = 4,
    ) -> None:
        self.account_id, self.region, self.endpoint_url = account_id, region, endpoint_url
        self.work_dir = Path(work_dir)
        self.retry_delays = retry_delays
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="jitr-lambda")
        self._env_lock = threading.Lock()
        self._handlers: dict[str, Callable] = {}
        self.invocations: list[Invocation] = []  # for tests and the demo: what ran, how often

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _backend(self):
        from moto.awslambda.models import lambda_backends

        return lambda_backends[self.account_id][self.region]

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
        if key not in self._handlers:
            folder = self.work_dir / key
            if not folder.exists():
                with zipfile.ZipFile(io.BytesIO(code)) as archive:
                    archive.extractall(folder)
            module_name, _, attribute = (function.handler or "app.lambda_handler").rpartition(".")
            path = folder / (module_name.replace(".", "/") + ".py")
            spec = importlib.util.spec_from_file_location(f"jitr_lambda_{key.replace('-', '_')}", path)
            module = importlib.util.module_from_spec(spec)
            sys.path.insert(0, str(folder))  # the function's sibling modules import as on Lambda
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            self._handlers[key] = getattr(module, attribute)
        return self._handlers[key]

    @contextlib.contextmanager
    def _environment(self, variables: Mapping[str, str]) -> Iterator[None]:
        values = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "emulator",
            "AWS_SECRET_ACCESS_KEY": "emulator",
            **variables,
        }
        with self._env_lock:
            saved = {name: os.environ.get(name) for name in values}
            os.environ.update(values)
            try:
                yield
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        """Run the function once, synchronously; its exception propagates."""
        function = self._function(name_or_arn)
        handler = self._handler(function)
        context = _Context(function.function_name, function.function_arn, int(function.timeout or 3))
        with self._environment(function.environment_vars or {}):
            return handler(event, context)

    def invoke_async(
        self, name_or_arn: str, event: Any, *, principal: str | None = None, source_arn: str | None = None
    ) -> Future:
        """Queue an asynchronous invocation (retried twice on error); permission checked now."""
        function = self._function(name_or_arn)
        if principal is not None:
            self.check_permission(function, principal, source_arn)
        return self._pool.submit(self._run_with_retries, name_or_arn, event)

    def _run_with_retries(self, name_or_arn: str, event: Any) -> Invocation:
        delays = (0.0, *self.retry_delays)
        error = None
        for attempt, delay in enumerate(delays, start=1):
            time.sleep(delay)
            try:
                result = self.invoke(name_or_arn, event)
            except Exception as exc:  # a function error: AWS retries asynchronous invocations
                error = f"{type(exc).__name__}: {exc}"
                log.warning("lambda %s attempt %d failed: %s", name_or_arn, attempt, error)
                continue
            done = Invocation(name_or_arn, attempt, result=result)
            self.invocations.append(done)
            return done
        failed = Invocation(name_or_arn, len(delays), error=error)
        self.invocations.append(failed)
        return failed
