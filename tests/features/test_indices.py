"""Spectral indices by name: spyndex catalogue plus regenmap's tillage and bare-soil indices."""

from __future__ import annotations

import numpy as np
import pytest

from regenmap.errors import ConfigError
from regenmap.features.indices import available_indices, get_index, resolve_indices

REFL = {"blue": np.array([0.05]), "green": np.array([0.08]), "red": np.array([0.1]),
        "nir": np.array([0.4]), "swir16": np.array([0.3]), "swir22": np.array([0.2])}


def test_design_formulas_by_hand() -> None:
    assert get_index("ndvi").evaluate(REFL)[0] == pytest.approx(0.3 / 0.5)
    assert get_index("NDTI").evaluate(REFL)[0] == pytest.approx(0.1 / 0.5)  # tillage, not turbidity
    assert get_index("STI").evaluate(REFL)[0] == pytest.approx(1.5)
    assert get_index("BSI").evaluate(REFL)[0] == pytest.approx((0.4 - 0.45) / 0.85)
    assert get_index("NDMI").evaluate(REFL)[0] == pytest.approx(0.1 / 0.7)
    evi = 2.5 * 0.3 / (0.4 + 6 * 0.1 - 7.5 * 0.05 + 1)
    assert get_index("EVI").evaluate(REFL)[0] == pytest.approx(evi)
    assert get_index("EVI").bands == ("nir", "red", "blue")


def test_regenmap_ndti_overrides_spyndex_turbidity() -> None:
    ndti = get_index("NDTI")
    assert ndti.source == "regenmap" and ndti.bands == ("swir16", "swir22")
    assert "NDTI" in available_indices() and "SAVI" in available_indices()


def test_unknown_name_lists_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown spectral index 'NVDI'.*NDVI"):
        get_index("NVDI")


def test_undefined_values_are_nan() -> None:
    zero = {k: np.array([0.0]) for k in REFL}
    assert np.isnan(get_index("NDVI").evaluate(zero)[0])


def test_resolve_keeps_order_and_drops_repeats() -> None:
    assert [i.name for i in resolve_indices(["bsi", "NDVI", "ndvi"])] == ["BSI", "NDVI"]
