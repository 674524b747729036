"""The emulator's CloudWatch Logs: one file per log group under ``STATE/logs``.

The log group ``/aws/lambda/jitr-activation`` is the file ``aws_lambda_jitr-activation.log``. Each line
is one log event: its time (UTC, ISO 8601 with milliseconds), a tab, the message, whose own line breaks
(a traceback's) are written as ``\\n``, so that an event stays one line. The rules engine's
CloudWatch Logs action and the Lambda runtime (what a function prints) write here, so the emulator's
own output stays its own.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from pathlib import Path


def log_file(log_dir: Path, group: str) -> Path:
    """Where a log group's events are: ``/aws/lambda/f`` -> ``LOG_DIR/aws_lambda_f.log``."""
    return Path(log_dir) / f"{group.strip('/').replace('/', '_')}.log"


def event_line(message: str, at: dt.datetime | None = None) -> str:
    """One log event as a line of a log group's file."""
    at = at or dt.datetime.now(dt.UTC)
    text = message.replace("\r\n", "\n").replace("\n", "\\n")
    return f"{at.strftime('%Y-%m-%dT%H:%M:%S.')}{at.microsecond // 1000:03d}Z\t{text}\n"


def parse_event_line(line: str) -> tuple[dt.datetime, str]:
    """(time, message) of a line :func:`event_line` wrote."""
    stamp, _, message = line.rstrip("\n").partition("\t")
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC), message


class LogGroups:
    """Appends log events to their group's file; any thread may write."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self._lock = threading.Lock()

    def put(self, group: str, messages: Iterable[str]) -> None:
        lines = "".join(event_line(message) for message in messages)
        if not lines:
            return
        with self._lock:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with log_file(self.log_dir, group).open("a", encoding="utf-8") as sink:
                sink.write(lines)
