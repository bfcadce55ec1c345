from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from regenmap.features.build import build_features
from regenmap.features.testing import synthetic_observations
from regenmap.features.windows import _drop_before_min, _rise_after_min, longest_run_days


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    obs, truth = synthetic_observations(600, n_obs=80, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feats = build_features(obs)
    return feats.merge(truth, on="field_id")


def test_longest_run_in_days() -> None:
    flag = np.array([[True, True, False, True, True, True], [False] * 6, [True] * 6])
    width = np.array([10.0, 10, 10, 10, 10, 5])
    np.testing.assert_allclose(longest_run_days(flag, width), [25.0, 0.0, 55.0])


def test_drop_and_rise_around_the_minimum() -> None:
    x = np.array([[0.10, 0.14, 0.12, 0.03, 0.05, np.nan],
                  [np.nan] * 6,
                  [0.02, 0.04, 0.08, 0.09, 0.3, 0.2]])
    np.testing.assert_allclose(_drop_before_min(x), [0.11, np.nan, 0.0])
    np.testing.assert_allclose(_rise_after_min(x), [0.02, np.nan, 0.28])


def test_fallow_window_starts_at_each_fields_own_harvest(synthetic: pd.DataFrame) -> None:
    s = synthetic
    # window start is the NDVI-based end of season (20 % of the fall), not a calendar date
    err = (s["fallow_start_day"] - s["eos"]).abs()
    assert (err <= 10).mean() > 0.95
    assert s["fallow_start_day"].std() > 15  # harvest dates vary by field


def test_tillage_shows_in_fallow_ndti(synthetic: pd.DataFrame) -> None:
    by = synthetic.groupby("tillage")["fallow_ndti_min"].median()
    assert by["conventional"] < by["reduced"] < by["no_till"]
    assert by["no_till"] - by["conventional"] > 0.05
    drop = synthetic.groupby("tillage")["fallow_ndti_drop"].median()
    assert drop["conventional"] > drop["no_till"]
    bare = synthetic.groupby("tillage")["fallow_bare_share"].median()
    assert bare["conventional"] > bare["no_till"]


def test_cover_crops_show_in_fallow_greenness(synthetic: pd.DataFrame) -> None:
    g = synthetic.groupby("winter_cover")
    integ = g["fallow_ndvi_integral"].median()
    assert integ["cover_crop"] > 5 * max(integ["bare"], 1.0)
    assert g["fallow_green_days"].median()["cover_crop"] > 40
    assert g["fallow_ndvi_greenup"].median()["cover_crop"] > 0.2
    assert g["cover_longest_bare_days"].median()["cover_crop"] < \
        g["cover_longest_bare_days"].median()["bare"]


def test_permanent_grass_has_no_bare_period() -> None:
    t = np.arange(0, 365, 6, dtype=float)
    grass = 0.7 + 0.1 * np.sin(2 * np.pi * t / 365)
    crop = np.where((t > 120) & (t < 220), 0.8, 0.15)
    obs = pd.DataFrame({
        "field_id": np.repeat(["grass", "crop"], t.size),
        "time": np.tile(pd.Timestamp("2023-01-01") + pd.to_timedelta(t, unit="D"), 2),
        "valid_fraction": np.float32(1.0),
        "ndvi_mean": np.concatenate([grass, crop]).astype(np.float32),
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = build_features(obs).set_index("field_id")
    assert f.loc["grass", "cover_longest_bare_days"] == 0
    assert f.loc["grass", "cover_ndvi_min"] > 0.55
    assert f.loc["crop", "cover_longest_bare_days"] >= 120
    assert f.loc["crop", "cover_ndvi_min"] < 0.2
