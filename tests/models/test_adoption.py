"""Adoption areas: error-adjusted areas of a map from its held-out labels, checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regenmap.models.adoption import COLUMNS, AdoptionOptions, adoption_areas
from regenmap.models.area import estimate_from_counts


def _map(n_a: int, n_b: int, n_unc: int = 0, n_nodata: int = 0, area: float = 1.0,
         season: str = "2023") -> pd.DataFrame:
    cls = ["A"] * n_a + ["B"] * n_b + [None] * (n_unc + n_nodata)
    status = ["ok"] * (n_a + n_b) + ["uncertain"] * n_unc + ["no_data"] * n_nodata
    ids = [f"f{i:03d}" for i in range(len(cls))]
    return pd.DataFrame({"field_id": ids, "season": season, "t": cls, "t_status": status,
                         "_area": area})


def _labels(pred: pd.DataFrame, truth: dict[str, list[str]]) -> pd.Series:
    """Label the first len(truth[s]) fields of each map stratum with the given classes."""
    out = {}
    stratum = pred["t"].where(pred["t_status"] == "ok", pred["t_status"])
    for s, classes in truth.items():
        ids = pred.loc[stratum == s, "field_id"].iloc[:len(classes)]
        out.update(dict(zip(ids, classes, strict=True)))
    return pd.Series(out, dtype=object).rename_axis("field_id")


def test_equal_fields_give_the_papers_estimate() -> None:
    pred = _map(100, 50)
    labels = _labels(pred, {"A": ["A"] * 8 + ["B"] * 2, "B": ["A"] * 1 + ["B"] * 9})
    table, notes = adoption_areas(pred, labels, pred.set_index("field_id")["_area"], target="t",
                                  classes=["A", "B"])
    assert list(table.columns) == list(COLUMNS) and notes == []
    row = table.set_index("class")
    # By hand: share(A) = 100/150 * 8/10 + 50/150 * 1/10 = 0.5667; area = 85 ha of 150.
    assert row.loc["A", "share"] == pytest.approx(100 / 150 * 0.8 + 50 / 150 * 0.1)
    assert row.loc["A", "area_ha"] == pytest.approx(85.0)
    assert row.loc["B", "area_ha"] == pytest.approx(65.0)
    assert row.loc["A", "mapped_ha"] == 100 and row.loc["B", "mapped_ha"] == 50
    # The same numbers as the paper's formulas from the error matrix (infinite population).
    paper = estimate_from_counts(np.array([[8, 2], [1, 9]]), [100 / 150, 50 / 150],
                                 map_classes=["A", "B"], ref_classes=["A", "B"], total_area=150)
    assert row.loc["A", "area_se_ha"] == pytest.approx(paper.area["A"].se, rel=1e-9)
    assert row.loc["A", "users_accuracy"] == pytest.approx(0.8)
    assert row.loc["A", "domain_accuracy"] == pytest.approx(paper.overall.value)
    assert row.loc["A", "area_ci_low_ha"] < 85 < row.loc["A", "area_ci_high_ha"]
    assert (row["n_visit"] == 0).all() and (row["errors_from"] == "held-out labels of this domain").all()


def test_withheld_fields_are_a_stratum_and_fields_without_data_are_counted_apart() -> None:
    pred = _map(60, 20, n_unc=20, n_nodata=10)
    labels = _labels(pred, {"A": ["A"] * 5, "B": ["B"] * 5, "uncertain": ["A", "B", "B", "B"]})
    table, _ = adoption_areas(pred, labels, pred.set_index("field_id")["_area"], target="t",
                              classes=["A", "B"])
    row = table.set_index("class")
    # Mapped classes are right; the 20 ha withheld are 1/4 A, 3/4 B by their labels.
    assert row.loc["A", "area_ha"] == pytest.approx(60 + 5)
    assert row.loc["B", "area_ha"] == pytest.approx(20 + 15)
    assert row.loc["A", "share"] == pytest.approx(65 / 100)
    assert row.loc["A", "assessed_ha"] == 100 and row.loc["A", "withheld_ha"] == 20
    assert row.loc["A", "not_assessed_ha"] == 10
    assert row.loc["A", "n_visit"] == 30  # uncertain and without data
    assert row.loc["A", "domain_accuracy"] == pytest.approx(1.0)


def test_small_groups_borrow_the_seasons_errors_and_say_so() -> None:
    pred = _map(100, 50)
    labels = _labels(pred, {"A": ["A"] * 8 + ["B"] * 2, "B": ["A"] * 1 + ["B"] * 9})
    groups = pd.Series(np.where(np.arange(150) % 2 == 0, "north", "south"),
                       index=pred["field_id"])
    table, _ = adoption_areas(pred, labels, pred.set_index("field_id")["_area"], target="t",
                              classes=["A", "B"], groups=groups, group_name="region",
                              options=AdoptionOptions(min_reference=15))
    assert set(table["domain"]) == {"all", "region=north", "region=south"}
    north = table[table["domain"] == "region=north"].set_index("class")
    assert (north["errors_from"] == "held-out labels of the whole season").all()
    # North holds 50 A and 25 B mapped: the season's error rates applied to them.
    assert north.loc["A", "area_ha"] == pytest.approx(50 * 0.8 + 25 * 0.1)
    assert north.loc["A", "n_reference"] == 10
    # The groups' areas add up to the season's.
    total = table[table["domain"] != "all"].groupby("class")["area_ha"].sum()
    assert total["A"] == pytest.approx(table.set_index(["domain", "class"]).loc[("all", "A"),
                                                                                  "area_ha"])


def test_unequal_field_sizes_weight_the_errors_by_area() -> None:
    pred = _map(4, 4)
    pred["_area"] = [10.0, 10.0, 1.0, 1.0, 5.0, 5.0, 5.0, 5.0]
    # Mapped A: the two big fields are right, the two small ones are B.
    labels = pd.Series(dict(zip(pred["field_id"], ["A", "A", "B", "B", "B", "B", "B", "B"],
                                strict=True))).rename_axis("field_id")
    table, _ = adoption_areas(pred, labels, pred.set_index("field_id")["_area"], target="t",
                              classes=["A", "B"])
    row = table.set_index("class")
    assert row.loc["A", "area_ha"] == pytest.approx(20.0)
    assert row.loc["A", "users_accuracy"] == pytest.approx(20 / 22)


def test_strata_without_labels_are_left_out_with_a_note_and_unknown_classes_too() -> None:
    pred = _map(30, 30, n_unc=10)
    labels = _labels(pred, {"A": ["A", "A", "C"], "B": ["B", "B"]})
    table, notes = adoption_areas(pred, labels, pred.set_index("field_id")["_area"], target="t",
                                  classes=["A", "B"])
    assert any("'withheld' have fewer than two labelled fields" in n for n in notes)
    assert any("classes the model does not know (C)" in n for n in notes)
    assert table.set_index("class").loc["A", "area_ha"] + \
        table.set_index("class").loc["B", "area_ha"] == pytest.approx(60)


def test_seasons_are_estimated_apart_and_season_labels_match_their_season() -> None:
    one, two = _map(10, 10, season="2022"), _map(10, 10, season="2023")
    pred = pd.concat([one, two], ignore_index=True)
    labels = pd.Series({("f000", "2022"): "A", ("f001", "2022"): "A", ("f010", "2022"): "B",
                        ("f011", "2022"): "B", ("f000", "2023"): "B", ("f001", "2023"): "B",
                        ("f010", "2023"): "B", ("f011", "2023"): "B"})
    labels.index.names = ["field_id", "season"]
    table, _ = adoption_areas(pred, labels, one.set_index("field_id")["_area"], target="t",
                              classes=["A", "B"])
    a = table.set_index(["season", "class"])["area_ha"]
    assert a[("2022", "A")] == pytest.approx(10) and a[("2023", "A")] == pytest.approx(0)


def test_a_stratum_a_group_has_no_labels_in_borrows_the_seasons_units() -> None:
    pred = _map(20, 20)
    pred["region"] = ["north"] * 10 + ["south"] * 10 + ["north"] * 10 + ["south"] * 10
    # North: its mapped-A fields are all labelled (right), its mapped-B fields not at all.
    labels = pd.Series({**{f"f{i:03d}": "A" for i in range(10)},
                        **{f"f{i:03d}": "A" for i in range(30, 32)},
                        **{f"f{i:03d}": "B" for i in range(32, 40)}}).rename_axis("field_id")
    table, _ = adoption_areas(pred, labels, pred.set_index("field_id")["_area"], target="t",
                              classes=["A", "B"], groups=pred.set_index("field_id")["region"],
                              group_name="region", options=AdoptionOptions(min_reference=5))
    north = table[table["domain"] == "region=north"].set_index("class")
    assert north["errors_from"].iloc[0] == ("held-out labels of this domain (of the whole "
                                            "season for B)")
    # 10 ha mapped A, all A; 10 ha mapped B at the season's 2/10 A: 12 ha A in all.
    assert north.loc["A", "area_ha"] == pytest.approx(12.0)
    assert north["area_ha"].sum() == pytest.approx(20.0)
