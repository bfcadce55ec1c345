"""Progress for people (rich) and for batch logs (one JSON object per line)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from rich.console import Console


class Reporter:
    """Report stage starts, ends and notes.

    Parameters
    ----------
    quiet
        If true, write JSON lines to stderr (for schedulers' logs) instead of
        rich text.
    """

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.console = Console(stderr=True)
        self.timings: dict[str, float] = {}

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
        t0 = time.perf_counter()
        try:
            yield
        except BaseException as err:
            self.event("failed", stage=name, error=type(err).__name__)
            raise
        seconds = time.perf_counter() - t0
        self.timings[name] = round(seconds, 2)
        self.event("done", stage=name, seconds=round(seconds, 2))

    def skipped(self, name: str, reason: str) -> None:
        """Report a stage skipped because its checkpoint is valid."""
        self.timings[name] = 0.0
        self.event("skipped", stage=name, reason=reason)
