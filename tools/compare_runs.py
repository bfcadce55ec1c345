"""Compare the tables of two runs' output folders: observations, features, predictions, GeoPackage.

Usage: ``python tools/compare_runs.py OUT_A OUT_B`` prints, per table, whether the
two runs hold the same rows and values (provenance timestamps aside) and exits
1 if any differs. Used to check that a refactoring or a speed-up changed nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pyogrio


def _observations(out: Path) -> pd.DataFrame:
    files = sorted((out / "observations").glob("tile=*.parquet"))
    table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return table.sort_values(["field_id", "time", "acquisition_id"]).reset_index(drop=True)


def _gpkg(out: Path, layer: str) -> pd.DataFrame:
    return pyogrio.read_dataframe(out / "practices.gpkg", layer=layer, read_geometry=False)


def tables(out: Path) -> dict[str, pd.DataFrame]:
    """Return the comparable tables of a run folder."""
    found = {"observations": _observations(out),
             "fields_status": pd.read_parquet(out / "fields_status.parquet"),
             "features": pd.read_parquet(out / "features.parquet"),
             "predictions": pd.read_parquet(out / "predictions.parquet"),
             "gpkg.fields": _gpkg(out, "fields")}
    return found


def main(a: str, b: str) -> int:
    """Compare two run folders; return 0 when every table is identical."""
    ta, tb = tables(Path(a)), tables(Path(b))
    differ = 0
    for name in ta:
        try:
            pd.testing.assert_frame_equal(ta[name], tb[name], check_exact=True)
            print(f"{name}: identical ({len(ta[name])} rows, {ta[name].shape[1]} columns)")
        except AssertionError as err:
            differ += 1
            print(f"{name}: DIFFERENT\n{str(err)[:800]}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
