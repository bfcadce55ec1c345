"""Synthetic labelled feature tables and run folders for the models and stage tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from regenmap.models.options import TrainOptions

TILLAGE = ("conventional", "reduced", "no_till")
COVER = ("bare", "cover_crop")
FAST_LIGHTGBM = {"num_leaves": 7, "num_threads": 1, "min_data_in_leaf": 5, "learning_rate": 0.2}
FAST = TrainOptions(lightgbm=FAST_LIGHTGBM, num_boost_round=30, early_stopping_rounds=5)


def make_data(
    n: int = 300, *, n_regions: int = 6, seed: int = 0, noise: float = 0.6
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features (field_id + 6 float32 columns) and a field table (labels, region, area, x, y).

    ``ndti_min_bare`` separates tillage classes (means 0, 1.5, 3), ``ndvi_int_intercrop``
    separates cover classes; a regional offset on ``bsi_mean`` and two noise columns
    make it non-trivial. 5 % of fields are unlabelled.
    """
    rng = np.random.default_rng(seed)
    ids = np.array([f"F{i:04d}" for i in range(n)], dtype=object)
    region = np.array([f"R{i % n_regions}" for i in range(n)], dtype=object)
    till = rng.integers(0, 3, n)
    cover = rng.integers(0, 2, n)
    reg_off = np.array([int(r[1:]) for r in region]) * 0.2
    feats = pd.DataFrame(
        {
            "field_id": ids,
            "ndti_min_bare": (till * 1.5 + rng.normal(0, noise, n)).astype(np.float32),
            "ndti_drop": (-till * 0.8 + rng.normal(0, noise, n)).astype(np.float32),
            "ndvi_int_intercrop": (cover * 2.0 + rng.normal(0, noise, n)).astype(np.float32),
            "bsi_mean": (reg_off - cover * 0.5 + rng.normal(0, noise, n)).astype(np.float32),
            "noise_a": rng.normal(0, 1, n).astype(np.float32),
            "noise_b": rng.normal(0, 1, n).astype(np.float32),
        }
    )
    feats.loc[rng.random(n) < 0.05, "noise_b"] = np.nan
    labels = pd.DataFrame(
        {
            "field_id": ids,
            "tillage": np.asarray(TILLAGE, dtype=object)[till],
            "winter_cover": np.asarray(COVER, dtype=object)[cover],
            "region": region,
            "area_ha": rng.lognormal(2.0, 1.2, n),
            "x": (np.arange(n) % n_regions) * 20_000.0 + rng.uniform(0, 8000, n),
            "y": rng.uniform(0, 8000, n),
        }
    )
    unlabelled = rng.random(n) < 0.05
    labels.loc[unlabelled, ["tillage", "winter_cover"]] = None
    return feats, labels


def write_run(tmp: Path, *, n: int = 300, extra_yaml: str = "") -> Path:
    """Write fields.gpkg, features.parquet and run.yaml into ``tmp``; return the YAML path."""
    import geopandas as gpd
    import shapely

    feats, lab = make_data(n)
    half = np.sqrt(lab["area_ha"].to_numpy() * 1e4) / 2
    geoms = shapely.box(lab["x"] - half, lab["y"] - half, lab["x"] + half, lab["y"] + half)
    gdf = gpd.GeoDataFrame(lab.drop(columns=["x", "y"]), geometry=geoms, crs="EPSG:32633")
    gdf.to_file(tmp / "fields.gpkg", layer="fields", engine="pyogrio")
    out = tmp / "out"
    out.mkdir()
    feats.to_parquet(out / "features.parquet", index=False)
    params = ", ".join(f"{k}: {v}" for k, v in FAST_LIGHTGBM.items())
    cfg = tmp / "run.yaml"
    cfg.write_text(
        "name: t\nout_dir: out\nseed: 0\n"
        "fields: {path: fields.gpkg, layer: fields}\n"
        "model:\n  targets: [tillage, winter_cover]\n  group_column: region\n"
        f"  n_folds: 3\n  n_bootstrap: 100\n  min_group_count: 10\n  lightgbm: {{{params}}}\n"
        "  training: {num_boost_round: 30, early_stopping_rounds: 5}\n" + extra_yaml,
        encoding="utf-8",
    )
    return cfg
