"""Where regenmap keeps its caches: never inside the installed package.

numba's on-disk cache (``cache=True``) writes ``.nbi``/``.nbc`` files into a
``__pycache__`` folder beside the source by default, that is, into the installed
``regenmap`` package. pip does not know those files: uninstalling or replacing the
package (``pip install .`` then ``pip install -e .``) leaves a ``regenmap/`` folder
holding only them, which then shadows the real package as an empty namespace
package (``cannot import name '__version__' from 'regenmap'``).

:func:`use_numba_cache_dir` (called when :mod:`regenmap` is imported) points numba's
cache at ``<cache root>/numba`` unless ``NUMBA_CACHE_DIR`` is already set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Environment variable naming the cache root (else ``$XDG_CACHE_HOME``, else ``~/.cache``).
CACHE_ENV = "REGENMAP_CACHE_DIR"
#: numba's own environment variable for its on-disk cache folder.
NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"


def cache_root() -> Path:
    """Return regenmap's cache folder (not created).

    ``$REGENMAP_CACHE_DIR/regenmap``, else ``$XDG_CACHE_HOME/regenmap``, else
    ``~/.cache/regenmap``.
    """
    base = os.environ.get(CACHE_ENV) or os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "regenmap"


def use_numba_cache_dir() -> Path | None:
    """Send numba's on-disk cache to ``<cache root>/numba``, outside the package.

    Leaves a ``NUMBA_CACHE_DIR`` chosen by the user as it is. Sets the environment
    variable (inherited by Dask worker processes) and, when numba was imported before
    regenmap, numba's already-read configuration too.

    Returns
    -------
    pathlib.Path or None
        The folder numba caches into, or None when it cannot be created (numba then
        keeps its own default).
    """
    chosen = os.environ.get(NUMBA_CACHE_ENV)
    if chosen:
        return Path(chosen)
    folder = cache_root() / "numba"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    os.environ[NUMBA_CACHE_ENV] = str(folder)
    numba = sys.modules.get("numba")
    if numba is not None:  # configuration read at numba's import; later decorations see this
        numba.config.CACHE_DIR = str(folder)
    return folder
