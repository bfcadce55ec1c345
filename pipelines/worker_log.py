"""Batch logs of local Dask worker processes: JSON lines, like the run's own events.

A LocalCluster's worker processes share the run's standard error. With ``--quiet``
that stream must hold JSON lines only, so :func:`open_client` preloads this module
into each worker process (Dask calls :func:`dask_setup` when the worker starts):
their log records (Dask's own, regenmap's, GDAL's through rasterio) and Python
warnings are then written as ``warning`` (or, above WARNING, ``log``) events with
the worker's address, whatever happens later, a SIGTERM included.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from regenmap.pipelines.log import LIBRARY_LOGGERS, json_line, log_message

#: Module name to give Dask as a worker preload.
PRELOAD = __name__


class JsonLineHandler(logging.Handler):
    """Writes WARNING and above records to standard error as JSON event lines.

    Parameters
    ----------
    worker
        Address (or name) of the worker, written in every line.
    """

    def __init__(self, worker: str) -> None:
        super().__init__(level=logging.WARNING)
        self._worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record as a ``warning`` or ``log`` event."""
        try:
            message = log_message(record)
            source = record.name
            if source == "py.warnings":  # "file:line: Category: text" -> the text
                message = message.strip().splitlines()[0].split(": ", 2)[-1]
            fields: dict[str, Any] = {"stage": "", "source": source, "message": message,
                                      "worker": self._worker}
            if record.levelno > logging.WARNING:
                event, fields["level"] = "log", record.levelname
            else:
                event = "warning"
            sys.stderr.write(json_line(event, **fields) + "\n")
            sys.stderr.flush()
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def route_to_json_lines(worker: str) -> None:
    """Send this process's log records and Python warnings to standard error as JSON lines."""
    handler = JsonLineHandler(worker)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    logging.captureWarnings(True)


def dask_setup(worker: Any) -> None:
    """Dask preload hook: make the worker process's standard error JSON lines only."""
    route_to_json_lines(str(getattr(worker, "address", "") or getattr(worker, "name", "")))
