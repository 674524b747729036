"""The CLI's one progress helper: a rich bar on stderr for long work, silent for ``--json`` or when
stderr is not a terminal. The packages below report through plain callables (``advance(n)``) or
:class:`fleet.requests.ProgressReporter`; only the CLI draws."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class ProgressBar:
    """Counts work done (``advance``), and failures when told of results (``count_result``).

    ``total`` may come later (``start``), as ``jitr fleet register`` learns it once it has read the
    manifest. Work smaller than ``min_total`` draws no bar.
    """

    def __init__(self, label: str, total: int | None = None, *, quiet: bool, min_total: int = 0) -> None:
        self.label = label
        self.failed = 0
        self.lock = threading.Lock()  # devices finish on many threads at once
        self.task: Any = None
        self.bar: RichProgress | None = None
        console = Console(stderr=True)
        if not quiet and console.is_terminal and (total is None or total >= min_total):
            self.bar = RichProgress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]}"),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
        self._total = total

    def __enter__(self) -> ProgressBar:
        if self.bar is not None:
            self.bar.start()
            if self._total is not None:
                self.start(self._total)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start(self, total: int | None) -> None:
        """The amount of work, once known (None: it is not known; the bar counts without an end)."""
        if self.bar is not None and self.task is None:
            self.task = self.bar.add_task(self.label, total=total, failed="")

    def advance(self, count: int = 1) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.advance(self.task, count)

    __call__ = advance

    def count_result(self, result: Any) -> None:
        """One device done; a result whose ``ok`` is false is counted as failed."""
        if self.bar is None or self.task is None:
            return
        with self.lock:
            self.failed += not result.ok
            failed = f"[red]{self.failed} failed[/red]" if self.failed else ""
        self.bar.update(self.task, advance=1, failed=failed)
