"""The compiled-code caches: outside the installed package, and a planted kernel line never runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import regenmap.features
import regenmap.geo

# Two fields on a 4 x 4 window: NDVI mean, median, std (the generated kernel and numba's
# cached helpers of features/zonal.py and geo/rasterize.py all run).
SCRIPT = """
import numpy as np, shapely
from affine import Affine
from regenmap.features.indices import resolve_indices
from regenmap.features.zonal import BandInput, zonal_stats
from regenmap.geo.grid import GridSpec
from regenmap.geo.rasterize import rasterize_fields

grid = GridSpec("EPSG:32631", Affine(10, 0, 0, 0, -10, 40), 4, 4)
fields = np.array([shapely.box(0, 20, 20, 40), shapely.box(20, 0, 40, 20)], dtype=object)
nir = np.arange(16, dtype=np.uint16).reshape(4, 4) * 500 + 2000
bands = {"red": BandInput(np.full((4, 4), 1000, np.uint16), 1e-4, 0.0, 0),
         "nir": BandInput(nir, 1e-4, 0.0, 0)}
res = zonal_stats(rasterize_fields(fields, grid), bands, resolve_indices(["NDVI"]))
print(sorted((k, v.tolist()) for k, v in res.stats.items()))
"""


def run_zonal(cache: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["REGENMAP_CACHE_DIR"] = str(cache)
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def numba_files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc")}


@pytest.mark.slow
def test_a_line_planted_in_the_cached_kernel_is_never_run(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    packages = [Path(regenmap.features.__file__).parent, Path(regenmap.geo.__file__).parent]
    in_package = set().union(*(numba_files(p) for p in packages))
    first = run_zonal(cache)
    # numba's machine code went to the cache folder, not beside the package's sources
    assert numba_files(cache / "regenmap" / "numba")
    assert set().union(*(numba_files(p) for p in packages)) == in_package
    [kernel] = (cache / "regenmap" / "kernels").glob("zonal_*.py")
    source = kernel.read_text()

    marker = tmp_path / "planted-line-ran"
    kernel.write_text(source + f"\nopen({str(marker)!r}, 'w').write('ran')\n")
    second = run_zonal(cache)
    assert not marker.exists(), "the planted line was executed"
    assert second.stdout == first.stdout
    assert "differs from the generated source" in second.stderr
    assert kernel.read_text() == source  # replaced by the generated source

    third = run_zonal(cache)  # the verified cache is used as it is, silently
    assert third.stdout == first.stdout and "differs" not in third.stderr
