"""Stage checkpoints and the run lock, kept in ``<out_dir>/.regenmap/``.

A stage that finished writes ``<stage>.done.json`` holding the configuration
hash and the outputs it wrote. A later run skips the stage when the marker
matches the current configuration and every output still exists. The lock
file stops two runs from writing the same outputs at once; every command that
writes into a run's folder holds it (:func:`hold_output_folder`).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from regenmap.errors import LockError, OutputError
from regenmap.io import check_writable_dir, describe_os_error, remove_leftovers, write_json_atomic
from regenmap.pipelines.layout import RunLayout


def _state_dir(out_dir: Path) -> Path:
    path = RunLayout(Path(out_dir)).state_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(describe_os_error(err, path, "create the folder"), path=path) from None
    return path


def stage_done(out_dir: Path, stage: str, config_hash: str) -> dict[str, Any] | None:
    """Return the marker of a finished stage if it is still valid, else ``None``.

    Valid means: written with the same configuration hash, and every output
    path it lists still exists.
    """
    marker = RunLayout(Path(out_dir)).stage_marker(stage)
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("config_hash") != config_hash:
        return None
    outputs = data.get("outputs", {})
    if not all(Path(p).exists() for p in _flatten(outputs)):
        return None
    return dict(data)


def mark_done(out_dir: Path, stage: str, config_hash: str, outputs: Any, **extra: Any) -> None:
    """Record that ``stage`` finished with ``outputs`` under ``config_hash``."""
    write_json_atomic(
        (_state_dir(out_dir), RunLayout(Path(out_dir)).stage_marker(stage))[1],
        {"stage": stage, "config_hash": config_hash, "outputs": outputs, **extra},
    )


def _flatten(outputs: Any) -> list[str]:
    if isinstance(outputs, dict):
        return [p for v in outputs.values() for p in _flatten(v)]
    if isinstance(outputs, list | tuple):
        return [p for v in outputs for p in _flatten(v)]
    return [str(outputs)] if outputs else []


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's live process
        return True
    return True


def _lock_owner(lock: Path) -> tuple[int, str]:
    """Pid and host name recorded for ``lock`` (0 and "" if unreadable)."""
    try:
        pid = int(lock.read_text().strip() or 0)
    except (OSError, ValueError):
        pid = 0
    try:
        host = lock.with_name(lock.name + ".host").read_text().strip()
    except OSError:
        host = ""
    return pid, host


@contextmanager
def run_lock(out_dir: Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``out_dir`` for the duration of a run.

    The lock file holds the owner's pid, and ``lock.host`` its host name, so that
    runs on several machines sharing a file system do not take over each other's
    lock. A lock left on this host by a process that no longer exists (a killed
    run) is taken over.

    Raises
    ------
    LockError
        If a live process holds the lock, or a process on another host does.
    """
    _state_dir(out_dir)
    lock = RunLayout(Path(out_dir)).lock
    host_file = lock.with_name("lock.host")
    here = socket.gethostname()
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid, host = _lock_owner(lock)
            if host and host != here:
                raise LockError(
                    f"another regenmap run (pid {pid} on host {host}) is writing to {out_dir}. "
                    f"Wait for it to finish, or if it is dead, delete {lock}."
                ) from None
            if pid and _pid_alive(pid) and pid != os.getpid():
                raise LockError(
                    f"another regenmap run (pid {pid}) is writing to {out_dir}. Wait for it to "
                    f"finish, or if it is dead on another machine, delete {lock}."
                ) from None
            lock.unlink(missing_ok=True)
            continue
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            host_file.write_text(here)
        except OSError as err:
            lock.unlink(missing_ok=True)
            raise OutputError(describe_os_error(err, lock, "take the lock"), path=lock) from None
        break
    try:
        yield lock
    finally:
        host_file.unlink(missing_ok=True)
        lock.unlink(missing_ok=True)


def clean_leftovers(out_dir: Path) -> list[Path]:
    """Remove the temporary files killed runs (or workers) left in a run's folders; return them.

    Only call it holding the lock, before or after a stage: no live writer of this
    folder is then left.
    """
    return [p for folder in RunLayout(Path(out_dir)).written_folders()
            for p in remove_leftovers(folder)]


@contextmanager
def hold_output_folder(out_dir: Path) -> Iterator[list[Path]]:
    """Make a run's output folder ready to write, and hold it for the duration of a command.

    Checks the folder can be written (creating it) before anything is written, takes
    the lock, then removes what killed runs left behind.

    Yields
    ------
    list of pathlib.Path
        The leftovers removed.

    Raises
    ------
    OutputError
        If the folder cannot be created or written.
    LockError
        If another run holds the lock.
    """
    check_writable_dir(out_dir, create=True)
    with run_lock(Path(out_dir)):
        yield clean_leftovers(Path(out_dir))
