"""Samples are fields in seasons: labels per season, folds that keep a field whole, year transfer."""

from __future__ import annotations

import numpy as np
import pandas as pd
from model_data import make_data

from regenmap.models.evaluate import cross_validate_predictions, year_transfer
from regenmap.models.options import CVOptions, LabelledFields
from regenmap.models.predict import predict_target
from regenmap.models.train import train_target


def two_seasons() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """The same 200 fields in 2022 and 2023, with their own practices each year."""
    f22, l22 = make_data(200, seed=1)
    f23, l23 = make_data(200, seed=2)
    feats = pd.concat([f22.assign(season="2022"), f23.assign(season="2023")], ignore_index=True)
    feats.insert(1, "season", feats.pop("season"))
    labels = pd.concat([l22.assign(season="2022"), l23.assign(season="2023")])
    tillage = labels.set_index(["field_id", "season"])["tillage"]
    region = l22.set_index("field_id")["region"]  # per field: holds for every season
    return feats, tillage, region


def test_a_fields_seasons_are_held_out_together(fast) -> None:  # type: ignore[no-untyped-def]
    feats, tillage, region = two_seasons()
    for groups, random in ((region, False), (None, True)):
        cv = cross_validate_predictions(
            LabelledFields.of(feats, tillage, target="tillage", groups=groups), fast,
            CVOptions(n_folds=3, random_folds=random))
        folds = pd.Series(cv.folds).groupby(cv.field_ids).nunique()
        assert (folds == 1).all(), "a field's two seasons fell in different folds"
        assert set(cv.seasons) == {"2022", "2023"}
        assert set(cv.factors["season"]) == {"2022", "2023"}
    assert any("kept in one fold" in n for n in cv.notes)


def test_per_season_labels_train_and_predict_per_season(fast) -> None:  # type: ignore[no-untyped-def]
    feats, tillage, region = two_seasons()
    # the 2023 labels of half the fields are unknown: predicted, not trained on
    tillage = tillage.copy()
    tillage.loc[(slice(None), "2023")] = tillage.loc[(slice(None), "2023")].where(
        np.arange(200) % 2 == 0)
    model = train_target(LabelledFields.of(feats, tillage, target="tillage", groups=region), fast)
    assert model.training["season_counts"]["2022"] and model.training["season_counts"]["2023"]
    assert model.training["n_labelled"] == int(tillage.notna().sum())
    out = predict_target(model, feats, explain=False)
    assert len(out) == 400 and list(out.columns[:2]) == ["field_id", "season"]
    assert out.groupby("field_id")["season"].nunique().eq(2).all()
    status = pd.DataFrame({"field_id": ["F0000", "ghost"], "status": ["too_small", "no_data"]})
    out = predict_target(model, feats, field_status=status, explain=False).set_index(
        ["field_id", "season"])
    assert (out.loc["F0000", "tillage_status"] == "too_small").all()
    assert list(out.loc["ghost"].index) == ["2022", "2023"]  # a row per season, withheld
    assert out.loc["ghost", "tillage"].isna().all()


def test_year_transfer_trains_on_the_other_years(fast) -> None:  # type: ignore[no-untyped-def]
    feats, tillage, region = two_seasons()
    res = year_transfer(LabelledFields.of(feats, tillage, target="tillage", groups=region), fast)
    assert res is not None
    assert res["trained_on"] == {"2022": ["2023"], "2023": ["2022"]}
    assert res["years"]["2022"]["n"] == int(tillage.loc[(slice(None), "2022")].notna().sum())
    assert res["mean_accuracy"] > 0.8  # the synthetic classes are separable every year
    one = tillage[
        tillage.index.get_level_values("season") == "2022"]
    assert year_transfer(LabelledFields.of(feats, one, target="tillage", groups=region),
                         fast) is None
