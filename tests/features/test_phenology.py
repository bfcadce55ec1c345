from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from regenmap.features.build import build_features
from regenmap.features.options import FeatureOptions
from regenmap.features.phenology import detect_cycles, rank_in_window
from regenmap.features.testing import synthetic_observations, trapezoid


def series_obs(field_id: str, start: str, days: int, every: int,
               ndvi: np.ndarray | None = None, fn=None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    t = np.arange(0, days, every, dtype=float)
    values = fn(t) if fn is not None else ndvi
    return pd.DataFrame({
        "field_id": field_id,
        "time": pd.Timestamp(start) + pd.to_timedelta(t, unit="D"),
        "sensor": "sentinel2_l2a",
        "valid_fraction": np.float32(1.0),
        "ndvi_mean": np.asarray(values, dtype=np.float32),
    })


def pulse(t: np.ndarray, start: float, rise: float, plateau: float, fall: float,
          base: float, peak: float) -> np.ndarray:
    s = trapezoid(t[None, :], np.array([[start]]), np.array([[rise]]), np.array([[plateau]]),
                  np.array([[fall]]))[0]
    return base + (peak - base) * s


def quiet_build(obs: pd.DataFrame, **kw: object) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        year = kw.pop("year", None)
        return build_features(obs, FeatureOptions(**kw), year=year)  # type: ignore[arg-type]


@pytest.mark.parametrize("step", [5, 10, 16])
def test_known_phenology_within_one_grid_step(step: int) -> None:
    obs, truth = synthetic_observations(300, n_obs=90, seed=3, cloud_share=0.1, noise=0.01)
    f = quiet_build(obs, step_days=step).merge(truth, on="field_id")
    sos_err = (f["phen_sos_day"] - f["sos"]).abs()
    eos_err = (f["phen_eos_day"] - f["eos"]).abs()
    assert np.isfinite(sos_err).mean() > 0.98
    assert (sos_err <= step).mean() > 0.95, sos_err.describe()
    assert (eos_err <= step).mean() > 0.95, eos_err.describe()
    pos_ok = (f["phen_pos_day"] >= f["pos_start"] - step) & (f["phen_pos_day"] <= f["pos_end"] + step)
    assert pos_ok.mean() > 0.97
    assert (f["phen_peak"] - f["peak"]).abs().median() < 0.03


def test_exact_trapezoid_on_the_grid() -> None:
    t = np.arange(0, 365, 10.0) + 5  # grid centres
    y = pulse(t, 100, 50, 20, 40, 0.15, 0.85)[None, :]
    c = detect_cycles(y, t)
    assert c.row.tolist() == [0]
    # 20 % of the amplitude: 10 days into the 50-day rise, 8 days before the end of the fall
    assert c.sos[0] == pytest.approx(110.0, abs=1e-6)
    assert c.eos[0] == pytest.approx(202.0, abs=1e-6)
    assert c.amplitude[0] == pytest.approx(0.7, abs=1e-6)
    assert 150 <= c.pos[0] <= 170
    # integral of the pulse above the base between SOS and EOS, within a grid cell's worth
    assert c.integral[0] == pytest.approx(0.7 * (20 + 0.5 * 50 + 0.5 * 40) * 0.96, rel=0.1)


def test_flat_all_nan_and_single_observation_have_no_cycle() -> None:
    t = np.arange(0, 365, 10.0)
    y = np.vstack([np.full(t.size, 0.6), np.full(t.size, np.nan), np.full(t.size, np.nan)])
    y[2, 17] = 0.8
    c = detect_cycles(y, t)
    assert c.row.size == 0
    first, _, count = rank_in_window(c, 3, 0, 365)
    assert first.tolist() == [-1, -1, -1] and count.tolist() == [0, 0, 0]


def test_season_across_the_year_boundary_southern_hemisphere() -> None:
    # Summer crop emerging in November, peak in January, harvested in March; twice.
    obs = series_obs("sh", "2022-07-01", 730, 5,
                     fn=lambda t: pulse(t, 140, 50, 20, 40, 0.2, 0.85)
                     + pulse(t, 505, 50, 20, 40, 0.0, 0.65))
    f = quiet_build(obs, year_start="07-01", year=2022)
    assert f["phen_n_cycles"].item() == 1
    assert f["phen_sos_day"].item() == pytest.approx(150, abs=10)
    assert f["phen_eos_day"].item() == pytest.approx(242, abs=10)
    # the fallow window runs from the March harvest to the next emergence in November
    assert f["fallow_closed"].item() == 1
    assert f["fallow_length_days"].item() == pytest.approx(515 - 242, abs=10)
    # the same crop seen from a calendar year: the season starts the year before
    g = quiet_build(obs, year_start="01-01", year=2023)
    jan1 = (pd.Timestamp("2023-01-01") - pd.Timestamp("2022-07-01")).days
    assert g["phen_sos_day"].item() == pytest.approx(150 - jan1, abs=10)
    assert g["phen_sos_day"].item() < 0
    assert g["phen_eos_day"].item() == pytest.approx(242 - jan1, abs=10)


def test_double_cropping_soy_then_millet() -> None:
    # West Bahia: soy Nov-Feb (peak 0.85), second-season millet Mar-May (peak 0.6), dry season bare.
    def ndvi(t: np.ndarray) -> np.ndarray:
        return (pulse(t, 45, 40, 25, 25, 0.18, 0.85)  # soy from mid-November
                + pulse(t, 150, 30, 15, 30, 0.0, 0.42)  # millet from late February
                + pulse(t + 365, 45, 40, 25, 25, 0.0, 0.67))  # previous soy, same shape

    obs = series_obs("br", "2019-10-01", 365, 5, fn=ndvi)
    f = quiet_build(obs, year_start="10-01")
    assert f["phen_n_cycles"].item() == 2
    assert f["phen_pos_day"].item() == pytest.approx(97, abs=15)
    assert f["phen2_pos_day"].item() == pytest.approx(187, abs=15)
    assert f["phen2_peak"].item() == pytest.approx(0.6, abs=0.05)
    # the millet grows in the fallow window after the soy harvest (it is below the cash-crop ratio)
    assert f["fallow_start_day"].item() == pytest.approx(135 - 5, abs=10)
    assert f["fallow_ndvi_max"].item() == pytest.approx(0.6, abs=0.05)
