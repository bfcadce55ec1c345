from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from regenmap.errors import ConfigError, InputError
from regenmap.features.options import FeatureOptions
from regenmap.features.timegrid import (
    anchor_before,
    fill_gaps,
    grid_edges,
    regularize,
    smooth,
    to_dataarray,
    to_xarray,
)


def obs_table(rows: list[tuple[str, str, float, float]], **extra: list[object]) -> pd.DataFrame:
    """rows: (field_id, date, valid_fraction, ndvi)."""
    df = pd.DataFrame(rows, columns=["field_id", "time", "valid_fraction", "ndvi_mean"])
    df["time"] = pd.to_datetime(df["time"])
    df["valid_fraction"] = df["valid_fraction"].astype(np.float32)
    df["ndvi_mean"] = df["ndvi_mean"].astype(np.float32)
    for k, v in extra.items():
        df[k] = v
    return df


def test_anchor_before_handles_season_across_new_year() -> None:
    assert anchor_before(np.datetime64("2023-03-05"), "10-01") == np.datetime64("2022-10-01")
    assert anchor_before(np.datetime64("2023-10-01"), "10-01") == np.datetime64("2023-10-01")
    assert anchor_before(np.datetime64("2023-12-31T23:00"), "01-01") == np.datetime64("2023-01-01")


@pytest.mark.parametrize("bad", ["13-01", "02-30", "1-1x", "02-29"])
def test_bad_year_start_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="year_start"):
        anchor_before(np.datetime64("2023-03-05"), bad)


def test_grid_edges_days_and_monthly() -> None:
    o = np.datetime64("2023-01-01", "ns")
    e = grid_edges(o, np.datetime64("2023-01-25", "ns"), 10)
    np.testing.assert_array_equal(e, [0, 10, 20, 30])
    m = grid_edges(o, np.datetime64("2023-03-10", "ns"), "monthly")
    np.testing.assert_array_equal(m, [0, 31, 59, 90])


def test_fill_gaps_linear_up_to_max_gap_no_extrapolation() -> None:
    t = np.array([0.0, 10, 20, 30, 40, 50])
    y = np.array([[np.nan, 1.0, np.nan, np.nan, 4.0, np.nan]])
    np.testing.assert_allclose(fill_gaps(y, t, 30), [[np.nan, 1, 2, 3, 4, np.nan]])
    # the gap between the two values is 30 days: not filled with a 29-day limit
    np.testing.assert_array_equal(np.isnan(fill_gaps(y, t, 29)), np.isnan(y))


def test_mean_composite_is_weighted_by_valid_fraction() -> None:
    obs = obs_table([("a", "2023-01-02", 1.0, 0.2), ("a", "2023-01-05", 0.5, 0.8),
                     ("a", "2023-01-15", 0.9, 0.5)])
    g = regularize(obs, FeatureOptions(step_days=10, min_valid_fraction=0.0))
    assert g.composites["ndvi"][0, 0] == pytest.approx((0.2 * 1 + 0.8 * 0.5) / 1.5, abs=1e-6)
    assert g.counts["ndvi"][0].tolist() == [2, 1]


def test_median_and_max_ndvi_composites() -> None:
    obs = obs_table([("a", "2023-01-02", 1.0, 0.2), ("a", "2023-01-03", 1.0, 0.9),
                     ("a", "2023-01-04", 1.0, 0.3)],
                    ndti_mean=np.array([0.01, 0.02, 0.03], dtype=np.float32))
    med = regularize(obs, FeatureOptions(composite="median", min_valid_fraction=0))
    assert med.composites["ndvi"][0, 0] == pytest.approx(0.3)
    mx = regularize(obs, FeatureOptions(composite="max_ndvi", min_valid_fraction=0))
    assert mx.composites["ndvi"][0, 0] == pytest.approx(0.9)
    # every index comes from the same (greenest) acquisition
    assert mx.composites["ndti"][0, 0] == pytest.approx(0.02)


def test_duplicated_timestamps_give_the_same_grid() -> None:
    rows = [("a", f"2023-01-{d:02d}", 0.9, 0.1 + d / 100) for d in range(1, 29, 3)]
    once = regularize(obs_table(rows), FeatureOptions(composite="median"))
    twice = regularize(obs_table(rows + rows), FeatureOptions(composite="median"))
    np.testing.assert_allclose(once.values["ndvi"], twice.values["ndvi"])
    mean2 = regularize(obs_table(rows + rows))
    np.testing.assert_allclose(once.values["ndvi"], mean2.values["ndvi"], rtol=1e-6)


def test_cloudy_rows_are_dropped_and_counted_fields_kept() -> None:
    obs = obs_table([("a", "2023-01-02", 0.9, 0.2), ("a", "2023-01-03", 0.1, 0.9),
                     ("b", "2023-01-03", 0.2, 0.5), ("c", "2023-01-03", np.nan, 0.5)])
    g = regularize(obs, FeatureOptions(min_valid_fraction=0.6))
    assert g.field_ids.tolist() == ["a", "b", "c"]
    assert g.n_rows.tolist() == [2, 1, 1]
    assert g.n_dropped.tolist() == [1, 1, 1]
    assert g.composites["ndvi"][0, 0] == pytest.approx(0.2)
    assert np.isnan(g.values["ndvi"][1:]).all()


def test_sensor_offsets_harmonise_before_compositing() -> None:
    obs = obs_table([("a", "2023-01-02", 1.0, 0.50), ("a", "2023-01-12", 1.0, 0.50)],
                    sensor=["sentinel2_l2a", "landsat_c2_l2"])
    g = regularize(obs, FeatureOptions(sensor_offsets={"landsat_c2_l2": {"NDVI": 0.05}}))
    np.testing.assert_allclose(g.composites["ndvi"][0], [0.50, 0.55], atol=1e-6)
    assert g.options["sensor_offsets"] == {"landsat_c2_l2": {"ndvi": 0.05}}
    assert g.n_sensors.tolist() == [2]


def test_linear_series_survives_both_smoothers() -> None:
    t = np.arange(20) * 10.0
    y = np.vstack([0.1 + 0.002 * t, 0.8 - 0.001 * t]).astype(np.float64)
    y[1, 5] = np.nan
    for method in ("savgol", "whittaker"):
        out = smooth(y, t, method)  # type: ignore[arg-type]
        assert np.isnan(out[1, 5])
        np.testing.assert_allclose(out[0], y[0], atol=1e-6)
        np.testing.assert_allclose(np.delete(out[1], 5), np.delete(y[1], 5), atol=1e-6)


def test_whittaker_reduces_noise() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(36) * 10.0
    truth = 0.2 + 0.6 * np.exp(-(((t - 180) / 40) ** 2))
    y = truth + rng.normal(0, 0.05, (50, t.size))
    out = smooth(y, t, "whittaker", lam=5.0)
    assert np.abs(out - truth).mean() < 0.75 * np.abs(y - truth).mean()


def test_xarray_view_is_field_by_time() -> None:
    obs = obs_table([("b", "2023-01-02", 1.0, 0.2), ("a", "2023-01-22", 1.0, 0.4)])
    g = regularize(obs)
    ds = to_xarray(g)
    assert isinstance(ds, xr.Dataset)
    da = to_dataarray(g, "NDVI")
    assert da.dims == ("field", "time")
    assert da.sel(field="a").isel(time=2).item() == pytest.approx(0.4)
    assert str(da.time.values[0])[:10] == "2023-01-06"  # centre of the first 10-day bin
    with pytest.raises(InputError, match="ndti"):
        to_dataarray(g, "ndti")


def test_missing_columns_raise_input_error() -> None:
    with pytest.raises(InputError, match="time"):
        regularize(pd.DataFrame({"field_id": ["a"], "ndvi_mean": [0.2]}))


def test_integer_and_missing_field_ids_become_strings() -> None:
    obs = obs_table([("x", "2023-01-02", 1.0, 0.2), ("x", "2023-01-12", 1.0, 0.3),
                     ("x", "2023-01-22", 1.0, 0.4)])
    obs["field_id"] = pd.array([10, 2, None], dtype="Int64")
    g = regularize(obs)
    assert g.field_ids.tolist() == ["10", "2", "None"]
    assert g.n_rows.tolist() == [1, 1, 1]
