"""One exception hierarchy for everything regenmap raises on purpose.

Every message says what failed, where (file, band, field_id, config key) and
how to fix it. Catch :class:`RegenmapError` to handle any of them; the CLI maps
each family to its own exit code (see ``docs/cli.md``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class RegenmapError(Exception):
    """Base class of all errors regenmap raises on purpose."""

    exit_code: int = 1


class ConfigError(RegenmapError):
    """A configuration file or option is invalid (unknown key, bad value)."""

    exit_code = 2


class _PathError(RegenmapError):
    """An error about one file or folder, whose path starts the message.

    Parameters
    ----------
    message
        What is wrong and how to fix it.
    path
        The offending file or folder, if there is one; it is prefixed to the message.
    """

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle as (class, message, path), so the error crosses process boundaries whole."""
        return (_rebuild, (type(self), self.message, self.path))


def _rebuild(cls: type[_PathError], message: str, path: str | None) -> _PathError:
    return cls(message, path=path)


class InputError(_PathError):
    """An input file is missing, unreadable or does not hold what is needed."""

    exit_code = 3


class MissingBandError(InputError):
    """A band needed by an index or a mask is absent from a scene or profile."""


class CRSError(InputError):
    """A raster or vector has no CRS, or CRSs cannot be reconciled."""


class FieldError(InputError):
    """Field polygons are unusable: duplicate ids, no geometry, no id column."""


class SchemaError(RegenmapError):
    """A table or artifact does not follow the schema version this code reads."""

    exit_code = 4


class ModelError(RegenmapError):
    """Training or prediction cannot proceed (labels, classes, features)."""

    exit_code = 5


class OutputError(_PathError):
    """An output cannot be written (missing or read-only folder, name clash)."""

    exit_code = 6


class LockError(OutputError):
    """Another run holds the lock on the same output folder."""

    exit_code = 7


@contextmanager
def picklable_errors() -> Iterator[None]:
    """Let regenmap errors leave the block without the library errors they were raised from.

    A Dask worker sends a task's exception to the client pickled with its cause and
    context (``raise ... from None`` hides the context but keeps it); a library error
    there that cannot be unpickled (rasterio's) makes Dask send a plain ``Exception``
    instead, which the command line cannot map to an exit code. regenmap's messages
    already carry the library's text, so the chained errors are dropped. Use it as a
    decorator on functions that run as Dask tasks.
    """
    try:
        yield
    except RegenmapError as err:
        err.__cause__ = None
        err.__context__ = None
        raise
