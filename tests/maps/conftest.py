"""Small, hand-checkable results for the maps tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

TARGETS = {"tillage": ["conventional", "reduced", "no_till"], "winter_cover": ["cover", "bare"]}
DEBIAN_PYTHON = "/usr/bin/python3"


def make_results(n: int = 20, *, targets: dict[str, list[str]] | None = None,
                 crs: str = "EPSG:32631", prefix: str = "F") -> tuple[gpd.GeoDataFrame,
                                                                      pd.DataFrame]:
    """Fields on a 5-wide grid of 100 m x 80 m boxes (0.8 ha each) and predictions.

    Field ``i`` gets class ``classes[i % n_classes]`` with confidence
    ``0.4 + 0.5 * (i % 5) / 4`` (0.4, 0.525, 0.65, 0.775, 0.9); confidence
    below 0.5 is ``uncertain``; fields 0 and 1 are ``no_data`` (class and
    confidence null).
    """
    targets = targets or TARGETS
    i = np.arange(n)
    x = 500_000 + (i % 5) * 120.0
    y = 5_450_000 + (i // 5) * 120.0
    ids = np.array([f"{prefix}{k:03d}" for k in i], dtype=object)
    fields = gpd.GeoDataFrame({"field_id": ids}, geometry=shapely.box(x, y, x + 100, y + 80),
                              crs=crs)
    cols: dict[str, Any] = {"field_id": ids}
    conf = 0.4 + 0.5 * (i % 5) / 4
    for t, classes in targets.items():
        k = len(classes)
        cls = np.array([classes[j % k] for j in i], dtype=object)
        status = np.where(conf < 0.5, "uncertain", "ok").astype(object)
        status[:2] = "no_data"
        for c in classes:
            rest = (1 - conf) / (k - 1)
            cols[f"{t}_p_{c}"] = np.where(cls == c, conf, rest)
        cls[:2] = None
        cols[t] = cls
        cols[f"{t}_conf"] = np.where(status == "no_data", np.nan, conf)
        cols[f"{t}_status"] = status
        why = np.where(status == "ok", "ndti drop 0.12; 9 clear observations",
                       np.where(status == "no_data", "2 clear observations < 4",
                                "confidence below 0.5"))
        cols[f"{t}_why"] = why.astype(object)
    return fields, pd.DataFrame(cols)


def make_observations(fields: gpd.GeoDataFrame, n_times: int = 12) -> pd.DataFrame:
    """Per field ``n_times`` acquisitions every 30 days; valid_fraction 0 at every 4th one."""
    rows = []
    times = pd.date_range("2024-01-10", periods=n_times, freq="30D")
    for k, fid in enumerate(fields["field_id"]):
        for j, t in enumerate(times):
            vf = 0.0 if j % 4 == 3 else 0.9
            ndvi = 0.3 + 0.4 * np.sin(j / 2 + k % 3) if vf else np.nan
            rows.append((fid, t, "sentinel2_l2a", vf, ndvi))
    return pd.DataFrame(rows, columns=["field_id", "time", "sensor", "valid_fraction",
                                       "ndvi_mean"])


RUN_INFO: dict[str, Any] = {
    "config": {"model": {"confidence_threshold": 0.5}, "outputs": {"gpkg": "practices.gpkg"}},
    "versions": {"regenmap": "0.1.0", "lightgbm": "4.7.0"},
    "inputs": ["fields.gpkg", "scenes/"],
    "time_range": ("2024-01-01", "2024-12-31"),
    "models": {"tillage": "tillage-2024-abc", "winter_cover": {"id": "wc-2024-def"}},
    "counts": {"scenes": 24},
    "name": "test run",
}


@pytest.fixture(name="make_results")
def _make_results_fixture() -> Callable[..., tuple[gpd.GeoDataFrame, pd.DataFrame]]:
    return make_results


@pytest.fixture(name="make_observations")
def _make_observations_fixture() -> Callable[..., pd.DataFrame]:
    return make_observations


@pytest.fixture
def run_info() -> dict[str, Any]:
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in RUN_INFO.items()}


@pytest.fixture
def targets() -> dict[str, list[str]]:
    return {k: list(v) for k, v in TARGETS.items()}


@pytest.fixture(scope="session")
def qgis_python() -> str:
    """Debian's python3 with PyQGIS; skips with the reason when it is not importable."""
    reason = debian_python_has("qgis.core")
    if reason:
        pytest.skip(reason)
    return DEBIAN_PYTHON


@pytest.fixture(scope="session")
def gdal_validator_python() -> str:
    """Debian's python3 with GDAL's validate_gpkg; skips with the reason otherwise."""
    reason = debian_python_has("osgeo_utils.samples.validate_gpkg")
    if reason:
        pytest.skip(reason)
    return DEBIAN_PYTHON


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    return path


def debian_python_has(module: str) -> str | None:
    """Return None if Debian's python3 can import ``module``, else the reason it cannot."""
    if not Path(DEBIAN_PYTHON).is_file():
        return f"{DEBIAN_PYTHON} not found (apt-get install python3-qgis python3-gdal)"
    proc = subprocess.run([DEBIAN_PYTHON, "-c", f"import {module}"], capture_output=True,
                          text=True, timeout=60, env={"QT_QPA_PLATFORM": "offscreen",
                                                      "PATH": "/usr/bin:/bin"})
    if proc.returncode != 0:
        return f"{DEBIAN_PYTHON} cannot import {module}: {proc.stderr.strip()[-200:]}"
    return None


def chromium_path() -> str | None:
    """Return the Chromium binary, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")
