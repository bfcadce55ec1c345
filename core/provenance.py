"""Provenance records stamped on every artifact (tables, models, GeoPackages)."""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from regenmap._version import __version__

_TRACKED = ("numpy", "pandas", "rasterio", "geopandas", "lightgbm", "dask", "xarray", "pyarrow")


def config_hash(config: dict[str, Any]) -> str:
    """Return a short stable hash of a JSON-serialisable configuration.

    Parameters
    ----------
    config
        The resolved configuration as plain data.

    Returns
    -------
    str
        First 16 hex digits of the SHA-256 of its canonical JSON.
    """
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def package_versions() -> dict[str, str]:
    """Return versions of regenmap, Python and the libraries that shape results."""
    out = {"regenmap": __version__, "python": platform.python_version()}
    for name in _TRACKED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - optional
            continue
    return out


def stamp(*, schema: str, config: dict[str, Any] | None = None, inputs: list[str] | None = None
          ) -> dict[str, Any]:
    """Build the provenance dictionary written beside or inside an artifact.

    Parameters
    ----------
    schema
        Schema version string of the artifact, e.g. ``regenmap.features/1``.
    config
        Resolved configuration it was made with, if any.
    inputs
        Paths or URIs of its inputs.
    """
    return {
        "schema": schema,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "config_hash": config_hash(config) if config is not None else None,
        "versions": package_versions(),
        "inputs": list(inputs or []),
    }
