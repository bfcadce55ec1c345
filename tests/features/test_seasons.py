"""Seasons: reading season values, and features of a field in each of several seasons."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from regenmap.errors import ConfigError
from regenmap.features.build import build_features
from regenmap.features.seasons import NamedSeason, SeasonCalendar
from regenmap.features.testing import synthetic_observations

CAL = SeasonCalendar(year_start="10-01", named={"Primera": NamedSeason("04-01", 4),
                                                "short rains": NamedSeason("10-15", 3)})


@pytest.mark.parametrize(("value", "name", "start", "end"), [
    ("2023", "2023", "2023-10-01", "2024-10-01"),
    (2023, "2023", "2023-10-01", "2024-10-01"),
    (2023.0, "2023", "2023-10-01", "2024-10-01"),
    ("2023/24", "2023", "2023-10-01", "2024-10-01"),
    ("2023-2024", "2023", "2023-10-01", "2024-10-01"),
    ("2024-primera", "2024-primera", "2024-04-01", "2024-08-01"),
    ("Primera 2024", "2024-primera", "2024-04-01", "2024-08-01"),
    ("2024 Short-Rains", "2024-short_rains", "2024-10-15", "2025-01-15"),
    ("2023-03-01/2023-09-30", "2023-03-01/2023-09-30", "2023-03-01", "2023-10-01"),
])
def test_parse__accepted_forms(value: object, name: str, start: str, end: str) -> None:
    season = CAL.parse(value)
    assert (season.name, season.start, season.end) == (name, pd.Timestamp(start), pd.Timestamp(end))


def test_parse__unknown_names_the_forms_and_the_closest_season() -> None:
    with pytest.raises(ConfigError, match=r"'2024 primerra'.*Did you mean 'primera'\?"):
        CAL.parse("2024 primerra")
    with pytest.raises(ConfigError, match="ends before it starts"):
        CAL.parse("2023-09-01/2023-03-01")
    with pytest.raises(ConfigError, match="No named season is defined"):
        SeasonCalendar().parse("postrera 2023")


def test_quarters__whole_months_or_equal_parts() -> None:
    q = CAL.parse("2023").quarters()
    assert [a.strftime("%m-%d") for a, _ in q] == ["10-01", "01-01", "04-01", "07-01"]
    q = CAL.parse("2023-01-01/2023-01-08").quarters()
    assert q[1][0] == pd.Timestamp("2023-01-03")  # 8 days (end inclusive) in 4 parts


def two_years() -> pd.DataFrame:
    """Two agricultural years of the same fields: 2022's values lowered by 0.2."""
    a, _ = synthetic_observations(12, n_obs=70, start="2022-01-01", seed=1, cloud_share=0.0)
    b, _ = synthetic_observations(12, n_obs=70, start="2023-01-01", seed=1, cloud_share=0.0)
    a["ndvi_mean"] = (a["ndvi_mean"] - 0.2).astype(np.float32)
    return pd.concat([a, b], ignore_index=True)


def quiet(*args: object, **kwargs: object) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_features(*args, **kwargs)  # type: ignore[arg-type]


def test_each_season_is_described_over_its_own_window() -> None:
    obs = two_years()
    cal = SeasonCalendar()
    both = quiet(obs, seasons=[cal.year(2022), cal.year(2023)])
    assert both["season"].tolist()[:2] == ["2022", "2023"]  # sorted by field, then season start
    assert len(both) == 24
    for year in (2022, 2023):
        alone = quiet(obs, year=year).drop(columns="season")
        mine = both[both["season"] == str(year)].drop(columns="season").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone)
    by = both.set_index(["field_id", "season"])["ndvi_mean_year"].unstack()
    np.testing.assert_allclose(by["2023"] - by["2022"], 0.2, atol=0.03)


def test_samples_pick_the_pairs_and_unknown_fields_keep_a_row() -> None:
    obs = two_years()
    cal = SeasonCalendar()
    samples = pd.DataFrame({"field_id": ["f0000000", "f0000001", "ghost"],
                            "season": ["2022", "2023", "2023"]})
    f = quiet(obs, seasons=[cal.year(2022), cal.year(2023)], samples=samples)
    assert list(zip(f["field_id"], f["season"], strict=True)) == [
        ("f0000000", "2022"), ("f0000001", "2023"), ("ghost", "2023")]
    assert f.loc[2, "ndvi_mean_year":].isna().all()
    with pytest.raises(ConfigError, match=r"season\(s\) \['2021'\]"):
        quiet(obs, seasons=[cal.year(2022)], samples=samples.assign(season="2021"))


def test_a_season_without_observations_gives_nan_and_the_few_obs_flag() -> None:
    obs = two_years()
    f = quiet(obs, seasons=[SeasonCalendar().year(2025)])
    assert f["ndvi_mean_year"].isna().all()
    assert (f["flag_few_obs"] == 1).all() and (f["obs_n_valid"] == 0).all()
