"""Implausible values: out of their range, and what they look like."""

from __future__ import annotations

import numpy as np
import pytest

from regenmap.features.plausibility import Tally, check_values, judge, tally, value_range


@pytest.mark.parametrize(("series", "values", "looks"), [
    ("ndvi", np.linspace(-0.2, 0.9, 100) * 10000, "x10000"),
    ("red", np.linspace(500, 3000, 100), "x10000"),
    ("ndvi", np.r_[np.full(40, 0.5), np.full(60, -3.0)], "offset"),
    ("ndvi", np.r_[np.full(40, 0.5), np.full(60, 3.0)], "out of range"),
])
def test_implausible_values_say_what_they_look_like(series: str, values: np.ndarray,
                                                     looks: str) -> None:
    problem = check_values(series, values)
    assert problem is not None and problem.looks_like == looks
    assert series.upper() in problem.text()


def test_plausible_and_unknown_series_pass() -> None:
    rng = np.random.default_rng(0)
    assert check_values("ndvi", rng.uniform(-0.3, 0.95, 1000)) is None
    assert check_values("red", rng.uniform(0.0, 0.4, 1000)) is None
    # 4 % out of range is noise, not a wrong scale
    assert check_values("ndvi", np.r_[np.full(96, 0.5), np.full(4, 1.5)]) is None
    assert value_range("vh") is None and check_values("vh", np.full(10, -15.0)) is None
    assert check_values("ndvi", np.full(5, np.nan)) is None


def test_tallies_add_up_across_tiles_to_the_same_verdict() -> None:
    values = np.r_[np.full(30, 0.5), np.full(70, 12.0)]
    a, b = tally("ndvi", values[:50]), tally("ndvi", values[50:])
    assert a is not None and b is not None
    whole = a + b
    assert whole == tally("ndvi", values) == Tally(100, 70, 0, 0)
    assert judge("ndvi", whole) == check_values("ndvi", values)
