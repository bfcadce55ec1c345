"""One exception hierarchy for everything regenmap raises on purpose.

Every message says what failed, where (file, band, field_id, config key) and
how to fix it. Catch :class:`RegenmapError` to handle any of them; the CLI maps
each family to its own exit code (see ``docs/cli.md``).
"""

from __future__ import annotations

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
        super().__init__(f"{self.path}: {message}" if self.path else message)


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
