"""Progress for people (rich) and for batch logs (one JSON object per line).

With ``quiet``, standard error carries only JSON lines (see ``docs/cli.md``): stage
events, throttled progress, warnings (Python warnings and the log records of
regenmap and of the libraries it drives, Dask's included) and, last, one
``finished`` event with the outcome, the exit code, the metrics per target and
every output path.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
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
#: Loggers of the libraries regenmap drives that print on their own (Dask configures
#: handlers of its own for them); their records become events while a reporter captures.
LIBRARY_LOGGERS = ("distributed", "dask", "dask_jobqueue", "tornado", "bokeh")


def json_line(event: str, **fields: Any) -> str:
    """One batch-log line: a JSON object with ``ts``, ``event`` and ``fields`` (no newline)."""
    record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event, **fields}
    return json.dumps(record, default=str)


def log_message(record: logging.LogRecord) -> str:
    """Return a log record's text for an event: its exception's type and text, no traceback.

    Dask's "Compute Failed" records carry the failed task's traceback as text; the
    error itself reaches the run, which reports it.
    """
    message = record.getMessage()
    cut = message.find("\nTraceback")
    if cut >= 0:
        message = message[:cut]
    if record.exc_info and record.exc_info[1] is not None:
        message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
    return message


def outcome(err: BaseException | None) -> dict[str, Any]:
    """Status, exit code and message of how a command ended (``err`` None: success).

    The exit codes are those of ``docs/cli.md``: 0 success, the error family's code for a
    :class:`~regenmap.errors.RegenmapError`, 130 for an interruption (with the signal's
    name), 1 for anything unexpected.
    """
    from regenmap.errors import RegenmapError
    from regenmap.pipelines.signals import signal_name

    if err is None:
        return {"status": "ok", "exit_code": 0}
    if isinstance(err, KeyboardInterrupt):
        return {"status": "interrupted", "exit_code": 130, "signal": signal_name(err),
                "message": f"interrupted by {signal_name(err)}; finished stages and tiles are "
                           "kept: run the same command again to continue"}
    if isinstance(err, RegenmapError):
        return {"status": "failed", "exit_code": err.exit_code, "error": type(err).__name__,
                "message": str(err)}
    return {"status": "failed", "exit_code": 1, "error": type(err).__name__,
            "message": f"unexpected failure ({type(err).__name__}: {err})"}


def save_traceback(err: BaseException) -> Path | None:
    """Write an unexpected error's traceback to a file for the bug report; return its path."""
    from regenmap.io import write_text_atomic

    text = "".join(traceback.format_exception(err))
    path = Path(tempfile.gettempdir()) / f"regenmap-traceback-{os.getpid()}.txt"
    try:
        return write_text_atomic(path, text)
    except Exception:  # a crash report must never hide the crash
        return None


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
        self._write_lock = threading.Lock()
        #: The final event was written (see :meth:`finished`).
        self.finished_sent = False
        #: File holding the traceback of an unexpected failure, once written.
        self.traceback_path: Path | None = None

    def event(self, event: str, **fields: Any) -> None:
        """Emit one event (a JSON line when quiet, a styled line otherwise)."""
        if self.quiet:
            line = json_line(event, **fields) + "\n"
            with self._write_lock:
                sys.stderr.write(line)
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
        except KeyboardInterrupt as err:
            from regenmap.pipelines.signals import signal_name

            self.event("interrupted", stage=name, signal=signal_name(err))
            raise
        except BaseException as err:
            self.event("failed", stage=name, error=type(err).__name__)
            raise
        seconds = time.perf_counter() - t0
        self.timings[name] = round(seconds, 2)
        self.event("done", stage=name, seconds=round(seconds, 2))

    def warning(self, message: str, *, source: str = "regenmap", level: str = "WARNING") -> None:
        """Report a warning once per stage and message (an event, never a raw Python warning).

        Records above WARNING (a library's errors) are ``log`` events with their level.
        """
        key = (self._stage, message)
        if key in self._seen:
            return
        self._seen.add(key)
        if level == "WARNING":
            self.event("warning", stage=self._stage, source=source, message=message)
        else:
            self.event("log", stage=self._stage, source=source, level=level, message=message)

    def cleaned(self, removed: list[Path], stage: str = "run") -> None:
        """Report the temporary files of killed runs removed from the output folder, if any."""
        if removed:
            self.event("cleaned", stage=stage, removed=len(removed),
                       files=[str(p) for p in removed[:20]],
                       reason="temporary files left by a killed run")

    def summary(self, stage: str, text: str, **data: Any) -> None:
        """Report what a stage did in one line (``text``; the numbers as fields when quiet)."""
        if self.quiet:
            self.event("summary", stage=stage, text=text, **data)
        else:
            self.console.print(f"[cyan]{'summary':>8}[/] [bold]{stage}[/] {text}", highlight=False)

    def finished(self, stage: str, err: BaseException | None = None, **fields: Any) -> None:
        """Write the last event of a command: its outcome (see :func:`outcome`) and ``fields``.

        Only in quiet mode (people get the summary table or the error message). An
        unexpected error's traceback is saved to a file named in the event.
        """
        if self.finished_sent:
            return
        self.finished_sent = True
        end = outcome(err)
        if err is not None and end["exit_code"] == 1 and not isinstance(err, KeyboardInterrupt):
            self.traceback_path = save_traceback(err)
            end["traceback"] = str(self.traceback_path) if self.traceback_path else None
        if self.quiet:
            self.event("finished", stage=stage, **end, **fields)

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Route warnings and log records to :meth:`warning` events for the duration of a command.

        Python warnings, regenmap's logged warnings and the WARNING-and-above records of
        the libraries regenmap drives (:data:`LIBRARY_LOGGERS`, whose own handlers are set
        aside meanwhile) become events: batch logs then hold only events (JSON lines
        with ``--quiet``), and each warning is said once, with the stage it came from.
        """
        handler = _WarningHandler(self)
        root = logging.getLogger()
        saved = {}
        for name in LIBRARY_LOGGERS:
            logger = logging.getLogger(name)
            saved[name] = (logger.handlers[:], logger.propagate)
            logger.handlers[:] = [handler]
            logger.propagate = False
        root.addHandler(handler)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = self._show_warning
            try:
                yield
            finally:
                root.removeHandler(handler)
                for name, (handlers, propagate) in saved.items():
                    logger = logging.getLogger(name)
                    logger.handlers[:] = handlers
                    logger.propagate = propagate

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
    """Sends WARNING and above log records to a reporter (the exception's text included)."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(level=logging.WARNING)
        self._reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        self._reporter.warning(log_message(record), source=record.name, level=record.levelname)
