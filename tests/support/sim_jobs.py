"""Jobs over one small simulated region, shared by the run and fault tests.

The first test that needs the region or the reference run builds it in the
session's temporary folder; later tests reuse it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from regenmap.pipelines.job import run
from regenmap.schema import FIELD_ID, TILE_ID, TIME

N_DATES = 16


def make_job(root: Path, name: str, *, tile_size_px: int, cluster: dict[str, object]) -> Path:
    region = shared_region(root)
    config = {
        "name": name, "out_dir": str(root / name), "seed": 0,
        "fields": {"path": str(region / "fields.gpkg"), "layer": "fields"},
        "scenes": {"path": str(region / "scenes"), "sensor": "sentinel2_l2a"},
        "extract": {"indices": ["NDVI", "EVI", "NDTI", "BSI", "NDMI"],
                    "stats": ["mean", "median", "std"], "tile_size_px": tile_size_px},
        "model": {"n_bootstrap": 20, "n_folds": 3,
                  "training": {"num_boost_round": 60, "early_stopping_rounds": 10}},
        "outputs": {"maps": False},
        "cluster": cluster,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def shared_root(factory: pytest.TempPathFactory) -> Path:
    root = factory.getbasetemp() / "regenmap-jobs"
    root.mkdir(exist_ok=True)
    return root


def shared_region(root: Path) -> Path:
    from regenmap.geo.simulate import simulate_region

    region = root / "region"
    if not (region / "simulation.json").is_file():
        simulate_region(region, size="small", seed=0, n_dates=N_DATES)
    return region


def reference_run(factory: pytest.TempPathFactory) -> Path:
    root = shared_root(factory)
    out = root / "reference"
    if not (out / ".regenmap" / "predict.done.json").is_file():
        cfg = make_job(root, "reference", tile_size_px=2048,
                       cluster={"n_workers": 1, "processes": False})
        run(cfg, quiet=True)
    return out


def observations(out: Path) -> pd.DataFrame:
    files = sorted((out / "observations").glob("tile=*.parquet"))
    leftovers = [f.name for f in (out / "observations").iterdir() if ".tmp" in f.name]
    assert not leftovers, f"temporary files left after the run: {leftovers}"
    table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return table.drop(columns=[TILE_ID]).sort_values([FIELD_ID, TIME]).reset_index(drop=True)


def by_field(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).sort_values(FIELD_ID).reset_index(drop=True)


def describe_difference(a: pd.DataFrame, b: pd.DataFrame) -> str:
    """Where two observation tables differ: rows, acquisitions and the largest gap."""
    if a.shape != b.shape or not a[[FIELD_ID, TIME]].equals(b[[FIELD_ID, TIME]]):
        return f"different rows: {a.shape} vs {b.shape}"
    num = a.select_dtypes("number").columns
    va, vb = a[num].to_numpy(float), b[num].to_numpy(float)
    bad = ~((va == vb) | (np.isnan(va) & np.isnan(vb)))
    rows = bad.any(axis=1)
    gap = np.nanmax(np.abs(va - vb)[bad]) if bad.any() else 0.0
    return (f"{int(rows.sum())} row(s) differ, columns {list(num[bad.any(axis=0)])}, "
            f"acquisitions {sorted(set(a.loc[rows, 'acquisition_id']))[:5]}, "
            f"fields {sorted(set(a.loc[rows, FIELD_ID]))[:5]}, largest gap {gap:.3g}")


def assert_same_outputs(out: Path, ref: Path, *, predictions: bool = True) -> None:
    got, want = observations(out), observations(ref)
    if not got.equals(want):
        raise AssertionError(f"observations differ from the reference: "
                             f"{describe_difference(got, want)}")
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    pd.testing.assert_frame_equal(by_field(out / "features.parquet"),
                                  by_field(ref / "features.parquet"), check_exact=True)
    pd.testing.assert_frame_equal(by_field(out / "fields_status.parquet"),
                                  by_field(ref / "fields_status.parquet"), check_exact=True)
    if predictions:
        pd.testing.assert_frame_equal(by_field(out / "predictions.parquet"),
                                      by_field(ref / "predictions.parquet"), check_exact=True)
