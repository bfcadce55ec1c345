"""Fingerprints of a run's input files, so that edited inputs are never met by stale outputs.

Stage markers and the extraction's tile files are reused only when the
configuration *and* the inputs are unchanged. A file up to
:data:`HASH_LIMIT` bytes is fingerprinted by its content (SHA-256); a larger
file, and every file under a folder (scene folders hold thousands of large
band files), by name, size and modification time. Remote inputs (``s3://``,
``/vsicurl/``...) are taken by name only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

#: Files up to this size are hashed by content; larger ones by size and mtime.
HASH_LIMIT = 256 * 1024 * 1024


def inputs_fingerprint(paths: Iterable[Path | str | None], *, exclude: Path | None = None) -> str:
    """Return a short fingerprint of the given input files and folders.

    Parameters
    ----------
    paths
        Input files or folders (None entries are skipped). A Shapefile's sidecar
        files (same name, other suffix) count with it.
    exclude
        A folder left out of folder walks (the run's own output folder).

    Returns
    -------
    str
        16 hex digits.
    """
    digest = hashlib.sha256()
    skip = Path(exclude).resolve() if exclude is not None else None
    for raw in paths:
        if raw is None:
            continue
        text = str(raw)
        digest.update(text.encode())
        if "://" in text or text.startswith("/vsi"):
            continue
        path = Path(raw)
        if path.is_dir():
            _walk(path, skip, digest)
        elif path.is_file():
            for item in _with_sidecars(path):
                _file(item, digest)
        else:
            digest.update(b"<missing>")
    return digest.hexdigest()[:16]


def _with_sidecars(path: Path) -> list[Path]:
    if path.suffix.lower() != ".shp":
        return [path]
    return sorted(p for p in path.parent.glob(f"{path.stem}.*") if p.is_file())


def _file(path: Path, digest: hashlib._Hash) -> None:
    st = path.stat()
    digest.update(f"{path.name}\0{st.st_size}".encode())
    if st.st_size <= HASH_LIMIT:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    else:
        digest.update(str(st.st_mtime_ns).encode())


def _walk(folder: Path, skip: Path | None, digest: hashlib._Hash) -> None:
    for root, dirs, files in os.walk(folder, followlinks=False):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if skip is None or (here / d).resolve() != skip)
        for name in sorted(files):
            try:
                st = (here / name).stat()  # follows symlinks: the target's size and time
            except OSError:
                continue
            rel = (here / name).relative_to(folder)
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
