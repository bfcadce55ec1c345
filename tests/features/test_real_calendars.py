"""Windows found, not assumed: real west-Bahia crop calendars (LEM, CC-BY-4.0).

The LEM subset in ``shared/data/lem_west_bahia_fields`` gives, for 100 real fields,
one land-use label per month from October 2019 to September 2020 (soy in the
rainy season, then bare soil or a second-season millet / brachiaria / sorghum).
There is no imagery, so each label is turned into a plausible NDVI level and the
series is sampled every 5 days; the test checks that cycles and bare periods
found by the features follow each field's own calendar across the year boundary.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regenmap.features.build import build_features
from regenmap.features.options import FeatureOptions

LEM = Path(__file__).resolve().parents[3] / "shared" / "data" / "lem_west_bahia_fields" \
    / "fields_monthly_landuse_long.csv"

NDVI = {"Soybean": 0.85, "Corn": 0.8, "Sorghum": 0.7, "Millet": 0.65, "Brachiaria": 0.65,
        "Beans": 0.7, "Uncultivated soil": 0.18, "Conversion area": 0.2, "Cerrado": 0.5,
        "Pasture": 0.55, "Hay": 0.55, "Eucalyptus": 0.75, "Coffee": 0.7, "Not identified": 0.3}
CROPS = {"Soybean", "Corn", "Sorghum", "Millet", "Brachiaria", "Beans"}


@pytest.fixture(scope="module")
def lem() -> tuple[pd.DataFrame, pd.DataFrame]:
    if not LEM.is_file():
        pytest.skip(f"shared sample data not found: {LEM}")
    long = pd.read_csv(LEM)
    wide = long.pivot(index="id", columns="month", values="land_use")
    months = pd.to_datetime(wide.columns) + pd.Timedelta(days=14)  # mid-month anchors
    level = wide.apply(lambda col: col.map(NDVI)).to_numpy(dtype=float)
    t = pd.date_range("2019-10-01", "2020-09-30", freq="5D")
    x = (months - months[0]).days.to_numpy(dtype=float)
    xt = (t - months[0]).days.to_numpy(dtype=float)
    rng = np.random.default_rng(0)
    series = np.vstack([np.interp(xt, x, row) for row in level])
    series += rng.normal(0, 0.015, series.shape)
    obs = pd.DataFrame({
        "field_id": np.repeat(wide.index.astype(str), t.size),
        "time": np.tile(t.to_numpy(), len(wide)),
        "sensor": "sentinel2_l2a",
        "valid_fraction": np.float32(1.0),
        "ndvi_mean": series.ravel().astype(np.float32),
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feats = build_features(obs, FeatureOptions(year_start="10-01")).set_index("field_id")
    return wide, feats


def crop_runs(row: pd.Series) -> int:
    """Number of separate runs of crop months in a field's calendar."""
    is_crop = row.isin(CROPS).to_numpy()
    return int(is_crop[0]) + int(((~is_crop[:-1]) & is_crop[1:]).sum())


def test_cycles_follow_each_fields_calendar(lem: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    wide, feats = lem
    expected = wide.apply(crop_runs, axis=1)
    expected.index = expected.index.astype(str)
    cropped = expected[expected > 0]
    got = feats.loc[cropped.index, "phen_n_cycles"]
    assert (got == cropped).mean() > 0.9, pd.concat([cropped, got], axis=1)[got != cropped]
    assert set(cropped.unique()) == {1, 2}  # single and double cropping are both present


def test_main_season_crosses_new_year(lem: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    wide, feats = lem
    soy = wide.index[(wide == "Soybean").any(axis=1)].astype(str)
    pos = feats.loc[soy, "phen_pos_day"]
    # soy (January-March) peaks 90-190 days after the 1 October year start
    assert pos.between(90, 190).mean() > 0.9
    # the fallow window opens at the soy harvest, in March-May
    assert feats.loc[soy, "fallow_start_day"].between(150, 240).mean() > 0.9


def test_bare_periods_and_permanent_cover(lem: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    wide, feats = lem
    idx = wide.index.astype(str)
    bare_months = (wide == "Uncultivated soil").sum(axis=1).to_numpy()
    perennial = wide.isin(["Cerrado", "Pasture", "Hay", "Eucalyptus", "Coffee"]).all(axis=1)
    assert (feats.loc[idx[perennial.to_numpy()], "cover_longest_bare_days"] == 0).all()
    bare_days = feats.loc[idx, "cover_bare_days"].to_numpy()
    # within about one month of the labelled bare months (monthly labels, interpolated levels)
    close = np.abs(bare_days - 30.4 * bare_months) <= 40
    assert close[bare_months > 0].mean() > 0.85
