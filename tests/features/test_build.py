from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regenmap.features.build import build_features
from regenmap.features.dictionary import dictionary_markdown, feature_dictionary
from regenmap.features.options import FeatureOptions
from regenmap.features.testing import synthetic_observations
from regenmap.features.timegrid import MissingIndexWarning
from regenmap.schema import FEATURES_SCHEMA

DOCS = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def build(obs: pd.DataFrame, **kw: object) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingIndexWarning)
        year = kw.pop("year", None)
        return build_features(obs, FeatureOptions(**kw), year=year)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def small() -> tuple[pd.DataFrame, pd.DataFrame]:
    return synthetic_observations(40, n_obs=60, seed=5)


def test_table_contract_matches_the_dictionary(small: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    obs, _ = small
    f = build(obs)
    d = feature_dictionary()
    assert list(f.columns) == ["field_id", "season", *d["name"]]
    assert f["season"].nunique() == 1
    assert f["field_id"].tolist() == sorted(obs["field_id"].unique())
    assert pd.api.types.is_string_dtype(f["field_id"])
    assert all(f[c].dtype == np.float32 for c in d["name"])
    assert d["name"].is_unique
    assert (d["unit"].str.len() > 0).all() and (d["description"].str.len() > 20).all()
    assert set(d["window"]) <= {"all", "year", "s1", "s2", "s3", "s4", "cycle", "cycle2",
                                "fallow", "fallow56", "precrop"}
    assert f.attrs["features"]["schema"] == FEATURES_SCHEMA
    assert f.attrs["features"]["seasons"] == {"2023": {"start": "2023-01-01", "end": "2024-01-01",
                                                       "months": 12}}


def test_docs_list_every_feature() -> None:
    text = DOCS.read_text(encoding="utf-8")
    names = set(re.findall(r"^\| `([a-z0-9_]+)` \|", text, flags=re.M))
    assert names == set(feature_dictionary()["name"])
    assert dictionary_markdown() in text, "docs/features.md is stale: regenerate it"


def test_fields_without_usable_observations_keep_a_nan_row(
        small: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    obs, _ = small
    extra = pd.DataFrame({
        "field_id": ["cloudy", "cloudy", "empty", "single"],
        "time": pd.to_datetime(["2023-03-01", "2023-04-01", "2023-05-01", "2023-06-01"]),
        "valid_fraction": np.array([0.1, 0.2, 0.9, 0.95], dtype=np.float32),
        "ndvi_mean": np.array([0.5, 0.5, np.nan, 0.6], dtype=np.float32),
    })
    f = build(pd.concat([obs, extra], ignore_index=True)).set_index("field_id")
    assert f.loc["cloudy", "obs_n_rows"] == 2 and f.loc["cloudy", "obs_n_dropped"] == 2
    assert f.loc["cloudy", "obs_n_valid"] == 0 and f.loc["cloudy", "flag_few_obs"] == 1
    assert f.loc["cloudy", "obs_longest_gap_days"] == pytest.approx(365, abs=10)
    assert np.isnan(f.loc["cloudy", "ndvi_mean_year"])
    assert np.isnan(f.loc["empty", "phen_peak"]) and f.loc["empty", "phen_n_cycles"] == 0
    # a single observation gives its value, no phenology
    assert f.loc["single", "ndvi_mean_year"] == pytest.approx(0.6)
    assert f.loc["single", "obs_n_valid"] == 1
    assert np.isnan(f.loc["single", "phen_sos_day"])


def test_all_nan_table() -> None:
    obs = pd.DataFrame({"field_id": ["a", "b"], "time": pd.to_datetime(["2023-01-01"] * 2),
                        "valid_fraction": np.float32(1), "ndvi_mean": np.float32(np.nan)})
    f = build(obs)
    assert f["field_id"].tolist() == ["a", "b"]
    known = {"obs_n_rows": 1, "obs_n_dropped": 0, "obs_n_valid": 0, "obs_n_sensors": 1,
             "obs_year_share": 0, "obs_filled_share": 0, "flag_few_obs": 1, "flag_long_gap": 1,
             "flag_no_ndti": 1, "phen_n_cycles": 0}
    for name, value in known.items():
        assert (f[name] == value).all(), name
    assert (f["obs_longest_gap_days"] >= 365).all()
    rest = [c for c in f.columns[2:] if c not in known and c != "obs_longest_gap_days"]
    assert f[rest].isna().all().all()


def test_no_swir_sensor_warns_once_and_keeps_ndvi_features(
        small: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    obs, _ = small
    four_band = obs.drop(columns=["ndti_mean", "bsi_mean"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = build_features(four_band)
    texts = [str(w.message) for w in caught if issubclass(w.category, MissingIndexWarning)]
    assert sum("'ndti'" in t for t in texts) == 1
    assert sum("'bsi'" in t for t in texts) == 1
    ndti_cols = feature_dictionary().query("index == 'ndti' and unit != 'flag'")["name"]
    assert f[ndti_cols].isna().all().all()
    assert (f["flag_no_ndti"] == 1).all()
    assert f["phen_peak"].notna().mean() > 0.9
    assert f["fallow_ndvi_integral"].notna().mean() > 0.9


def test_duplicates_and_row_order_do_not_change_features(
        small: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    obs, _ = small
    a = build(obs, composite="median")
    shuffled = obs.sample(frac=1.0, random_state=1)
    dup = pd.concat([shuffled, obs.iloc[::3]], ignore_index=True)
    b = build(dup, composite="median")
    same = [c for c in a.columns if c not in ("obs_n_rows", "obs_n_dropped")]
    pd.testing.assert_frame_equal(a[same], b[same], check_exact=False, atol=1e-5)


def test_mixed_sensors_with_offsets_are_recorded(small: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    obs, _ = small
    mixed = obs.copy()
    mixed["sensor"] = np.where(np.arange(len(obs)) % 2 == 0, "sentinel2_l2a", "landsat_c2_l2")
    mixed.loc[mixed["sensor"] == "landsat_c2_l2", "ndvi_mean"] -= np.float32(0.05)
    raw = build(mixed)
    fixed = build(mixed, sensor_offsets={"landsat_c2_l2": {"ndvi": 0.05}})
    ref = build(obs)
    err_raw = (raw["ndvi_mean_year"] - ref["ndvi_mean_year"]).abs().mean()
    err_fixed = (fixed["ndvi_mean_year"] - ref["ndvi_mean_year"]).abs().mean()
    assert err_fixed < 1e-4 < err_raw
    assert fixed.attrs["features"]["sensor_offsets"] == {"landsat_c2_l2": {"ndvi": 0.05}}
    assert (fixed["obs_n_sensors"] == 2).all()


@pytest.mark.parametrize("step", [5, 16, "monthly"])
def test_steps_and_smoothing_options_run(small: tuple[pd.DataFrame, pd.DataFrame],
                                         step: int | str) -> None:
    obs, truth = small
    for smoothing in ("none", "savgol", "whittaker"):
        f = build(obs, step_days=step, smoothing=smoothing, composite="max_ndvi")
        m = f.merge(truth, on="field_id")
        tol = 31 if step == "monthly" else max(step, 10)
        assert ((m["phen_sos_day"] - m["sos"]).abs() <= tol + 5).mean() > 0.8, (step, smoothing)


def test_longest_gap_is_exact_with_year_edges() -> None:
    days = [10, 20, 100, 110, 300]
    obs = pd.DataFrame({"field_id": "g",
                        "time": pd.Timestamp("2023-01-01") + pd.to_timedelta(days, unit="D"),
                        "valid_fraction": np.float32(1), "ndvi_mean": np.float32(0.5)})
    f = build(obs)
    # gaps: 10 from the year start, 80 between day 20 and 100, 190 to day 300, 65 to the year end
    assert f["obs_longest_gap_days"].item() == pytest.approx(190)
    assert f["flag_long_gap"].item() == 1


def test_wrong_stat_is_an_error_naming_the_stats_present(
        small: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    from regenmap.errors import InputError

    obs, _ = small
    with pytest.raises(InputError, match=r"_median.*Statistics present: mean"):
        build_features(obs, FeatureOptions(stat="median"))
