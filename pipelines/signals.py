"""Stopping cleanly on a signal: SIGTERM (batch schedulers) is handled like Ctrl-C, and named.

SLURM and PBS send SIGTERM at a time limit or on pre-emption. Within
:func:`signals_as_interrupt` it raises :class:`Interrupted`, a
:class:`KeyboardInterrupt`, so ``finally`` blocks run (the lock is released,
clusters are closed) and the command exits with 130; the logs say which signal
it was.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal.

    Parameters
    ----------
    signal_name
        ``SIGTERM``, ``SIGINT``...
    """

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def signal_name(err: BaseException) -> str:
    """Name of the signal behind an interruption (a plain KeyboardInterrupt is Ctrl-C: SIGINT)."""
    return err.signal_name if isinstance(err, Interrupted) else "SIGINT"


@contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Interrupted` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
