"""Synthetic feature tables with separable classes and a regional structure."""

from __future__ import annotations

import pandas as pd
import pytest
from model_data import FAST, make_data, write_run

from regenmap.models.options import LabelledFields, TrainOptions


@pytest.fixture(scope="session")
def fast() -> TrainOptions:
    """Tiny LightGBM settings keeping each training well under a second."""
    return FAST


@pytest.fixture(scope="session")
def synth():  # type: ignore[no-untyped-def]
    """The :func:`make_data` generator."""
    return make_data


@pytest.fixture(scope="session")
def run_dir():  # type: ignore[no-untyped-def]
    """The :func:`write_run` helper."""
    return write_run


@pytest.fixture(scope="session")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_data()


@pytest.fixture(scope="session")
def series(data: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, pd.Series]:
    _, lab = data
    idx = lab.set_index("field_id")
    return {
        "tillage": idx["tillage"],
        "winter_cover": idx["winter_cover"],
        "region": idx["region"],
        "area_ha": idx["area_ha"],
    }


@pytest.fixture(scope="session")
def tillage_model(data, series):  # type: ignore[no-untyped-def]
    from regenmap.models.train import train_target

    feats, _ = data
    return train_target(
        LabelledFields.of(
            feats, series["tillage"], target="tillage", groups=series["region"], area_ha=series["area_ha"]
        ),
        FAST,
    )
