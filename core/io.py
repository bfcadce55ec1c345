"""Writing files safely: one home for atomic writes, JSON and Parquet metadata.

Every artifact regenmap writes goes through :func:`atomic_path`: the content is
written to a temporary name in the destination folder, then renamed onto the
destination (``os.replace`` is atomic within one file system). A crash, a full
disk or a kill leaves the previous file as it was and no half-written file
under the final name. Temporary names start with ``.`` and contain ``.tmp``;
:func:`remove_leftovers` removes those a killed process left behind.

Files are created with :func:`open`'s default mode, so they honour the umask
(a cluster colleague can read what a run wrote when the umask allows it).

JSON is written by one rule (:func:`to_jsonable`): NaN and infinities become
``null``, numpy scalars and arrays become numbers and lists, paths and dates
become strings. Output is always strict JSON.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regenmap.errors import OutputError, RegenmapError, SchemaError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

#: Parquet schema-metadata key holding regenmap's provenance JSON.
PARQUET_META_KEY = b"regenmap"
#: SQLite files (GeoPackages) may leave these beside a temporary file.
_SIDECARS = ("-journal", "-wal", "-shm")
#: Marker in every temporary file name (see :func:`remove_leftovers`).
TMP_MARK = ".tmp"
#: Names of regenmap's temporary files (and of their SQLite sidecars).
_TEMPORARY = re.compile(r"^\.(?:.+\.[0-9a-f]{12}|regenmap-probe-[0-9a-f]{32})\.tmp"
                        r"(?:\.[A-Za-z0-9]+)?(?:-journal|-wal|-shm)?$")


def temporary_name(path: Path, suffix: str | None = None) -> Path:
    """Return a fresh hidden temporary path beside ``path``.

    Parameters
    ----------
    path
        Final destination.
    suffix
        Suffix of the temporary file (GDAL picks drivers by suffix); ``path``'s if omitted.
    """
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}{TMP_MARK}{suffix or path.suffix}")


#: How libraries that do not raise OSError (GDAL through pyogrio, SQLite) say "disk full".
_DISK_FULL_TEXT = ("no space left on device", "disk is full", "disk quota exceeded")
#: ... and "permission denied".
_DENIED_TEXT = ("permission denied", "read-only file system", "readonly database")
#: Below this much free space, a failed write is taken to be the disk filling up.
_NEARLY_FULL_MIB = 1.0


def describe_os_error(err: OSError, path: Path, what: str = "write") -> str:
    """Turn an OS error into a sentence that says what to do.

    Parameters
    ----------
    err
        The error raised by the operating system.
    path
        File or folder being written.
    what
        Verb of the failed action, e.g. ``"write"``.
    """
    code = getattr(err, "errno", None)
    if code == errno.ENOSPC or code == errno.EDQUOT:
        return _disk_full(path, what)
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return _denied(path, what)
    return f"cannot {what}: {err.strerror or err}"


def describe_write_failure(err: BaseException, path: Path, what: str = "write") -> str | None:
    """Say what to do about a failed write, whichever library raised it; None if unknown.

    An :class:`OSError` is read by its code; other libraries' errors (pyogrio's
    ``DataSourceError``, SQLite's ``OperationalError``...) by their text ("database or
    disk is full") or, failing that, by the free space left where ``path`` is written.
    """
    if isinstance(err, OSError) and getattr(err, "errno", None) is not None:
        return describe_os_error(err, path, what)
    text = str(err).lower()
    if any(t in text for t in _DISK_FULL_TEXT):
        return _disk_full(path, what)
    if any(t in text for t in _DENIED_TEXT):
        return _denied(path, what)
    free = _free_mib(_folder_of(path))
    if free is not None and free < _NEARLY_FULL_MIB:
        return _disk_full(path, what, detail=f" ({type(err).__name__}: {err})")
    if isinstance(err, OSError):
        return f"cannot {what}: {err}"
    return None


def _folder_of(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def _disk_full(path: Path, what: str, detail: str = "") -> str:
    folder = _folder_of(path)
    free = _free_mib(folder)
    room = f"{free:.1f} MiB free" if free is not None else "free space unknown"
    return (f"cannot {what}: the disk is full ({room} in {folder}){detail}. Free some space "
            "there or choose another output folder (out_dir); a previous version of the file, "
            "if any, is left as it was.")


def _denied(path: Path, what: str) -> str:
    folder = _folder_of(path)
    return (f"cannot {what}: permission denied in {folder} for user {_user()}. Make it "
            "writable for this user (chmod, chown) or choose another output folder (out_dir).")


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):  # pragma: no cover - not Unix, or no passwd entry
        return str(os.geteuid()) if hasattr(os, "geteuid") else "this user"


def _free_mib(folder: Path) -> float | None:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free / 2**20
    except OSError:
        return None


def _remove_with_sidecars(path: Path) -> None:
    for p in (path, *(path.with_name(path.name + s) for s in _SIDECARS)):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            p.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    On an exception the temporary file (and any SQLite sidecar) is removed and
    ``path`` is left untouched. A failure to write (disk full, permission denied),
    whether an :class:`OSError` or a library's own error saying so, becomes an
    :class:`~regenmap.errors.OutputError` naming ``path``, the free space and the fix
    (:func:`describe_write_failure`).

    Parameters
    ----------
    path
        Final destination; its folder is created if needed.
    suffix
        Suffix of the temporary file; that of ``path`` if omitted.

    Raises
    ------
    OutputError
        If the folder cannot be created, nothing was written, or the write fails.
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(describe_os_error(err, final.parent, "create the folder"),
                          path=final.parent) from None
    tmp = temporary_name(final, suffix)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"nothing was written to the temporary file {tmp.name}", path=final)
        tmp.replace(final)
    except RegenmapError:
        raise
    except Exception as err:  # a library writing into tmp: GDAL, SQLite, Arrow, matplotlib
        message = describe_write_failure(err, final)
        if message is None:
            raise
        raise OutputError(message, path=final) from None
    finally:
        _remove_with_sidecars(tmp)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text to ``path`` atomically; return ``path``."""
    final = Path(path)
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return final


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write bytes to ``path`` atomically; return ``path``."""
    final = Path(path)
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return final


def to_jsonable(obj: Any) -> Any:
    """Return ``obj`` as plain JSON data (the one JSON rule of regenmap).

    NaN and infinities become ``None``; numpy scalars and arrays become Python
    numbers and lists; paths, dates and enums become strings; tuples and sets
    become lists (sets sorted). Anything else unknown becomes its ``str``.
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return [to_jsonable(v) for v in sorted(obj, key=str)]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if np.isfinite(f) else None
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, str) or obj is None:
        return obj
    if isinstance(obj, Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, np.datetime64):
        return str(obj)
    return str(obj)


def json_text(data: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Serialise ``data`` as strict JSON by :func:`to_jsonable` (never the token ``NaN``)."""
    text = json.dumps(to_jsonable(data), indent=indent, allow_nan=False, ensure_ascii=False,
                      sort_keys=sort_keys)
    return text + "\n" if indent is not None else text


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as strict JSON to ``path`` atomically; return ``path``."""
    return write_text_atomic(path, json_text(data))


def read_json(path: str | Path, *, what: str = "file") -> dict[str, Any]:
    """Read a JSON object written by regenmap, with a clear error when it is damaged.

    Parameters
    ----------
    path
        The file.
    what
        What the file is, for the message (e.g. ``"model reference"``).

    Raises
    ------
    SchemaError
        If the file cannot be read, is not valid JSON (truncated, edited) or is not an object.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"{p}: {what} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SchemaError(f"{p}: the {what} is damaged or truncated ({err}); write it again "
                          "(run the stage that makes it) or restore it from a copy") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{p}: the {what} is not a JSON object; write it again")
    return data


def write_parquet_atomic(table: pa.Table | pd.DataFrame, path: str | Path, *,
                         meta: Mapping[str, Any] | None = None,
                         plain: Sequence[str] = ()) -> Path:
    """Write a table to Parquet atomically, with ``meta`` as provenance JSON in its schema.

    Parameters
    ----------
    table
        Arrow table, or a DataFrame (written without its index).
    path
        Destination file.
    meta
        Provenance stored under :data:`PARQUET_META_KEY` (replacing pandas' own metadata).
    plain
        Columns written without dictionary encoding (columns of unique values, such as
        ids, where a dictionary only costs time).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = table if isinstance(table, pa.Table) else pa.Table.from_pandas(
        table, preserve_index=False)
    if meta is not None:
        arrow = arrow.replace_schema_metadata(
            {**(arrow.schema.metadata or {}), PARQUET_META_KEY: json_text(meta, indent=None).encode()})
    final = Path(path)
    with atomic_path(final) as tmp:
        pq.write_table(arrow, tmp, use_dictionary=dictionary_columns(arrow.schema, plain))
    return final


def dictionary_columns(schema: Any, plain: Sequence[str]) -> bool | list[str]:
    """Return the ``use_dictionary`` argument of a Parquet writer leaving ``plain`` columns out."""
    if not plain:
        return True
    return [name for name in schema.names if name not in set(plain)]


def parquet_meta(path: str | Path) -> dict[str, Any]:
    """Return the provenance JSON stored in a Parquet file ({} if absent or unreadable)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        raw = (pq.read_schema(path).metadata or {}).get(PARQUET_META_KEY)
        return dict(json.loads(raw)) if raw else {}
    except (OSError, pa.ArrowInvalid, ValueError):
        return {}


def remove_leftovers(folder: str | Path, *, older_than_s: float = 0.0) -> list[Path]:
    """Remove temporary files that killed writers left in ``folder`` (not recursive).

    Only files named as :func:`temporary_name` and :func:`check_writable_dir` name
    them (``.name.<12 hex>.tmp[.suffix][-journal]``, ``.regenmap-probe-<hex>.tmp``)
    are removed, never another hidden file, and only those older than
    ``older_than_s`` seconds (a live writer's file is recent). Returns what was removed.
    """
    d = Path(folder)
    removed: list[Path] = []
    if not d.is_dir():
        return removed
    now = time.time()
    for p in d.iterdir():
        if not (_TEMPORARY.match(p.name) and p.is_file()):
            continue
        try:
            if now - p.stat().st_mtime < older_than_s:
                continue
            p.unlink()
        except OSError:
            continue
        removed.append(p)
    return removed


def check_writable_dir(folder: str | Path, *, create: bool = False) -> Path:
    """Check that ``folder`` is a directory this process may write, before anything is written.

    Root bypasses permission bits, so a folder whose mode grants nobody write
    access (e.g. ``chmod 555``) is refused explicitly, as a user would expect;
    then a probe file is created and removed to catch read-only mounts.

    Parameters
    ----------
    folder
        Destination folder.
    create
        Create the folder (and its parents) if it is missing.

    Returns
    -------
    pathlib.Path
        The folder, resolved.

    Raises
    ------
    OutputError
        If the folder is missing (and not created), not a folder, read-only or not writable.
    """
    path = Path(folder).resolve()
    if create and not path.exists():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(describe_os_error(err, path, "create the output folder"),
                              path=path) from None
    if not path.exists():
        raise OutputError(f"output folder {path} does not exist; create it first "
                          "(e.g. mkdir -p) or choose another output path")
    if not path.is_dir():
        raise OutputError(f"output folder {path} is not a folder")
    st = path.stat()
    mode = st.st_mode
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise OutputError(f"output folder {path} is read-only (mode {stat.filemode(mode)}); "
                          "make it writable (chmod u+w) or choose another output path")
    if not os.access(path, os.W_OK):
        raise OutputError(f"output folder {path} cannot be written by user {_user()} (owner "
                          f"{_owner(st.st_uid)}, mode {stat.filemode(mode)}); make it writable "
                          "for this user (chmod, chown) or choose another output path")
    probe = path / f".regenmap-probe-{uuid.uuid4().hex}{TMP_MARK}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise OutputError(describe_os_error(err, path, "write into the output folder"),
                          path=path) from None
    return path


def portable_paths(data: Any, base: str | Path) -> Any:
    """Return ``data`` with absolute paths written relative to ``base`` (shared artifacts).

    A model card, a GeoPackage or a report is read on other machines: the absolute
    paths of the machine that made it say nothing there, and may say too much (user
    names, mount points). Strings that are absolute paths (and paths) become relative
    to ``base`` (the output folder); URLs and GDAL ``/vsi`` paths stay as they are.

    Parameters
    ----------
    data
        Plain data (mappings, lists, strings, paths, numbers).
    base
        The folder the paths are made relative to.
    """
    root = os.path.abspath(base)  # noqa: PTH100 - no symlink resolution: paths stay as written
    if isinstance(data, Mapping):
        return {k: portable_paths(v, root) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [portable_paths(v, root) for v in data]
    if isinstance(data, Path) or (isinstance(data, str) and data.startswith(os.sep)
                                  and not data.startswith("/vsi") and "\n" not in data):
        try:
            return os.path.relpath(str(data), root)
        except ValueError:  # another drive
            return str(data)
    return data


def _owner(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):  # pragma: no cover
        return str(uid)
