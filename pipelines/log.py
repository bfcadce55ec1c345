"""Progress for people (rich) and for batch logs (one JSON object per line)."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

#: Seconds between two JSON ``progress`` lines of one stage in quiet mode.
QUIET_PROGRESS_INTERVAL_S = 10.0


class Progress(Protocol):
    """What a stage tells about its progress (see :class:`StageProgress`)."""

    def plan(self, total: int, **detail: Any) -> None:
        """Announce the units of work of the stage (e.g. tile x acquisition tasks)."""

    def advance(self, n: int = 1, **detail: Any) -> None:
        """Record ``n`` more units done (thread-safe)."""


class NullProgress:
    """A :class:`Progress` that shows nothing (a stage called without one)."""

    def plan(self, total: int, **detail: Any) -> None:
        """Ignore the plan."""

    def advance(self, n: int = 1, **detail: Any) -> None:
        """Ignore the progress."""


class StageProgress:
    """Progress of one long stage: a rich bar, or throttled JSON ``progress`` lines.

    Use :meth:`Reporter.progress` to get one. :meth:`update`, :meth:`plan` and
    :meth:`advance` are thread-safe (Dask calls them from its own thread).
    """

    def __init__(self, reporter: Reporter, stage: str, unit: str, task: TaskID | None) -> None:
        self._reporter = reporter
        self._stage = stage
        self._unit = unit
        self._task = task
        self._lock = threading.RLock()
        self._last_emit = 0.0
        self.done = 0
        self.total: int | None = None
        self.detail: dict[str, Any] = {}

    def update(self, done: int, total: int | None = None, **detail: Any) -> None:
        """Set how much of the stage is done (``done`` of ``total`` ``unit``), plus details.

        Parameters
        ----------
        done
            Units finished so far.
        total
            Units in the stage, if known.
        **detail
            Extra fields shown after the bar and written to the JSON line
            (e.g. ``tiles="3/9"``).
        """
        with self._lock:
            self.done, self.total = done, total if total is not None else self.total
            self.detail.update(detail)
            progress = self._reporter._progress
            if self._task is not None and progress is not None:
                extra = " ".join(f"{k} {v}" for k, v in self.detail.items())
                progress.update(self._task, completed=done, total=self.total,
                                description=f"{self._stage} {self._unit}", extra=extra)
            elif self._reporter.quiet:
                now = time.monotonic()
                if now - self._last_emit >= self._reporter.progress_interval:
                    self._last_emit = now
                    self._emit()

    def plan(self, total: int, **detail: Any) -> None:
        """Announce ``total`` units of work (see :class:`Progress`)."""
        self.update(0, total, **detail)

    def advance(self, n: int = 1, **detail: Any) -> None:
        """Record ``n`` more units done (see :class:`Progress`)."""
        with self._lock:
            self.update(self.done + n, **detail)

    def _emit(self) -> None:
        self._reporter.event("progress", stage=self._stage, unit=self._unit, done=self.done,
                             total=self.total, **self.detail)

    def finish(self) -> None:
        """Write the final state (quiet mode) and leave the bar complete."""
        with self._lock:
            if self._reporter.quiet and self.done:
                self._emit()


class Reporter:
    """Report stage starts, ends, notes and progress.

    Parameters
    ----------
    quiet
        If true, write JSON lines to stderr (for schedulers' logs) instead of
        rich text and progress bars.
    progress_interval
        Seconds between two JSON ``progress`` lines of a stage (quiet mode).
    """

    def __init__(self, *, quiet: bool = False,
                 progress_interval: float = QUIET_PROGRESS_INTERVAL_S) -> None:
        self.quiet = quiet
        self.progress_interval = progress_interval
        self.console = Console(stderr=True)
        self.timings: dict[str, float] = {}
        self._progress: RichProgress | None = None
        self._stage = ""
        self._seen: set[tuple[str, str]] = set()

    def event(self, event: str, **fields: Any) -> None:
        """Emit one event (a JSON line when quiet, a styled line otherwise)."""
        if self.quiet:
            record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event, **fields}
            sys.stderr.write(json.dumps(record, default=str) + "\n")
            sys.stderr.flush()
            return
        detail = " ".join(f"{k}={v}" for k, v in fields.items() if k != "stage")
        stage = fields.get("stage", "")
        self.console.print(f"[cyan]{event:>8}[/] [bold]{stage}[/] {detail}", highlight=False)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage and report its start and end."""
        self.event("start", stage=name)
        self._stage = name
        t0 = time.perf_counter()
        try:
            yield
        except BaseException as err:
            self.event("failed", stage=name, error=type(err).__name__)
            raise
        seconds = time.perf_counter() - t0
        self.timings[name] = round(seconds, 2)
        self.event("done", stage=name, seconds=round(seconds, 2))

    def warning(self, message: str, *, source: str = "regenmap") -> None:
        """Report a warning once per stage and message (an event, never a raw Python warning)."""
        key = (self._stage, message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.event("warning", stage=self._stage, source=source, message=message)

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Route Python warnings and regenmap's logged warnings to :meth:`warning` events.

        Batch logs then hold only events (JSON lines with ``--quiet``), and each
        warning is said once, with the stage it came from.
        """
        handler = _WarningHandler(self)
        logger = logging.getLogger("regenmap")
        logger.addHandler(handler)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = self._show_warning
            try:
                yield
            finally:
                logger.removeHandler(handler)

    def _show_warning(self, message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: Any = None, line: str | None = None) -> None:
        self.warning(str(message), source=category.__name__)

    @contextmanager
    def progress(self, stage: str, unit: str) -> Iterator[StageProgress]:
        """Show a progress bar (or JSON progress lines when quiet) for the duration of a stage."""
        task: TaskID | None = None
        if not self.quiet:
            self._progress = RichProgress(
                SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("{task.fields[extra]}"), TimeElapsedColumn(),
                TimeRemainingColumn(), console=self.console, transient=False)
            task = self._progress.add_task(f"{stage} {unit}", total=None, extra="")
            self._progress.start()
        bar = StageProgress(self, stage, unit, task)
        try:
            yield bar
        finally:
            bar.finish()
            if self._progress is not None:
                self._progress.stop()
                self._progress = None

    def skipped(self, name: str, reason: str) -> None:
        """Report a stage skipped because its checkpoint is valid."""
        self.timings[name] = 0.0
        self.event("skipped", stage=name, reason=reason)


class _WarningHandler(logging.Handler):
    """Sends WARNING and above records of regenmap's loggers to a reporter."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(level=logging.WARNING)
        self._reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        self._reporter.warning(record.getMessage(), source=record.name)
