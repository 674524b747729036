"""A function invocation's log lines, as Lambda's Python runtime writes them to ``/aws/lambda/NAME``.

Functions run in worker processes (:mod:`emulator.lambdas.worker`), which hand back what the
invocation printed; the runtime frames it as Lambda does: ``START``, the lines printed, an
``[ERROR]`` event with the traceback when the handler raised, the runtime's own lines (a timeout, a
worker that died), ``END`` and ``REPORT`` (with ``Init Duration`` on a cold start).
"""

from __future__ import annotations

import math
from typing import Any


def invocation_lines(
    request_id: str,
    printed: str,
    *,
    error: dict[str, Any] | None,
    extra: list[str],
    duration_ms: float,
    memory_mb: int,
    init_ms: float | None,
    max_memory_mb: int | None = None,
) -> list[str]:
    """The log events of one invocation, oldest first (one event may span lines, as a traceback does)."""
    lines = [f"START RequestId: {request_id} Version: $LATEST"]
    lines += printed.splitlines()
    if error is not None and error.get("trace"):
        lines.append(f"[ERROR] {error.get('errorType')}: {error.get('errorMessage')}\n{error['trace']}")
    lines += extra
    report = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {max(1, math.ceil(duration_ms))} ms\tMemory Size: {memory_mb} MB"
    )
    if max_memory_mb is not None:
        report += f"\tMax Memory Used: {max_memory_mb} MB"
    if init_ms is not None:
        report += f"\tInit Duration: {init_ms:.2f} ms"
    return [*lines, f"END RequestId: {request_id}", report]
