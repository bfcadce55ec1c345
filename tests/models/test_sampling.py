"""Reference-sample designs, next-field selection and visit orders, checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regenmap.errors import ModelError
from regenmap.models.area import estimate_from_sample
from regenmap.models.sampling import WITHHELD, DesignOptions, design_sample, expected_se
from regenmap.models.selection import NextOptions, select_next, uncertainty_scores
from regenmap.models.visits import route_length, spatial_clusters, visit_order

CLASSES = ["a", "b"]


def _frame(n_a: int = 60, n_b: int = 30, n_w: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_a + n_b + n_w
    mapped = np.array(["a"] * n_a + ["b"] * n_b + [None] * n_w, dtype=object)
    return pd.DataFrame({"key": [f"F{i:03d}" for i in range(n)], "map_class": mapped,
                         "area_ha": rng.uniform(1, 10, n), "eligible": True,
                         "region": np.where(np.arange(n) % 2, "R1", "R2"),
                         "village": [f"v{i % 7}" for i in range(n)]})


def test_fixed_size_proportional_design_by_hand():
    d = design_sample(_frame(), CLASSES, DesignOptions(n=20, allocation="proportional",
                                                       min_per_stratum=2))
    # 60 / 30 / 10 fields -> 12 / 6 / 2 drawn, each with probability 1/5.
    assert d.strata.set_index("stratum")["n"].to_dict() == {"a": 12, "b": 6, WITHHELD: 2}
    assert np.allclose(d.sample["inclusion_prob"], 0.2)
    assert d.sample["key"].is_unique and len(d.sample) == 20
    again = design_sample(_frame(), CLASSES, DesignOptions(n=20, allocation="proportional",
                                                           min_per_stratum=2))
    assert again.sample["key"].tolist() == d.sample["key"].tolist()  # seeded
    other = design_sample(_frame(), CLASSES, DesignOptions(n=20, allocation="proportional",
                                                           min_per_stratum=2, seed=1))
    assert other.sample["key"].tolist() != d.sample["key"].tolist()


def test_exclusions_are_never_drawn_and_shrink_the_frame():
    f = _frame()
    f.loc[:29, "eligible"] = False  # half of class a: no access
    d = design_sample(f, CLASSES, DesignOptions(n=20, allocation="proportional",
                                                min_per_stratum=2))
    assert not d.sample["key"].isin(f.loc[:29, "key"]).any()
    row = d.strata.set_index("stratum").loc["a"]
    assert row["N"] == 60 and row["N_eligible"] == 30
    assert d.summary["n_eligible"] == 70
    assert d.summary["excluded_area_ha"] == pytest.approx(f.loc[:29, "area_ha"].sum())


def test_strata_cross_the_factors_and_keep_withheld():
    d = design_sample(_frame(), CLASSES, DesignOptions(n=30), factors=["region"])
    assert set(d.strata["stratum"]) == {"a | R1", "a | R2", "b | R1", "b | R2",
                                        "withheld | R1", "withheld | R2"}
    assert (d.strata["n"] >= 5).all()  # the minimum per stratum


def test_target_se_is_reached_and_more_precision_needs_more_fields():
    f = _frame(300, 150, 20)
    loose = design_sample(f, CLASSES, DesignOptions(target_se=0.05, expected_accuracy=0.8))
    tight = design_sample(f, CLASSES, DesignOptions(target_se=0.025, expected_accuracy=0.8))
    assert max(loose.summary["expected_se"].values()) <= 0.05
    assert max(tight.summary["expected_se"].values()) <= 0.025
    assert tight.summary["n"] > 2 * loose.summary["n"]


def test_expected_se_by_hand():
    # One stratum, N = 10 units of 1 ha, S = 0.5, n = 5: V = 100 * 0.5 * 0.25 / 5 / 100.
    se = expected_se(np.array([5]), np.array([10]), np.array([[0.5]]), 10.0)
    assert se[0] == pytest.approx(np.sqrt(100 * 0.5 * 0.25 / 5) / 10)


def test_cap_per_unit_holds_and_probabilities_are_estimated():
    f = _frame()
    d = design_sample(f, CLASSES, DesignOptions(n=28, allocation="proportional",
                                                min_per_stratum=2, max_per_unit=4),
                      unit_column="village")
    assert d.sample["village"].value_counts().max() <= 4
    assert (d.sample["inclusion_prob"] > 0).all() and (d.sample["inclusion_prob"] <= 1).all()


def test_design_and_estimate_cover_the_truth_on_average():
    # Repeated designs on one population: the 95 % interval of the area of class b
    # holds the true area about 95 % of the time (hand-made truth: 80 % agreement).
    rng = np.random.default_rng(3)
    f = _frame(400, 200, 40, seed=3)
    truth = np.where(rng.random(len(f)) < 0.8, f["map_class"].fillna("b"),
                     np.where(f["map_class"] == "a", "b", "a"))
    true_b = f["area_ha"][truth == "b"].sum()
    hits = 0
    reps = 200
    for s in range(reps):
        d = design_sample(f, CLASSES, DesignOptions(n=80, seed=s, expected_accuracy=0.8))
        ref = pd.Series(truth, index=f["key"]).loc[d.sample["key"]].to_numpy()
        smp = pd.DataFrame({"stratum": d.sample["stratum"],
                            "map": d.sample["map_class"].fillna(WITHHELD), "ref": ref,
                            "area": d.sample["area_ha"]})
        est = estimate_from_sample(smp, strata_N=d.strata.set_index("stratum")["N_eligible"]
                                   .to_dict(), ref_classes=CLASSES,
                                   map_classes=[*CLASSES, WITHHELD])
        hits += est.area["b"].covers(true_b)
    assert 0.88 <= hits / reps <= 0.99


def test_bad_design_inputs_are_named():
    with pytest.raises(ModelError, match="allocation='best'"):
        DesignOptions(allocation="best")
    with pytest.raises(ModelError, match="every field is excluded"):
        design_sample(_frame().assign(eligible=False), CLASSES, DesignOptions(n=5))
    with pytest.raises(ModelError, match="max_per_unit needs"):
        design_sample(_frame(), CLASSES, DesignOptions(n=5, max_per_unit=1))
    with pytest.raises(ModelError, match="not classes of the target"):
        design_sample(_frame().assign(map_class="zz"), CLASSES, DesignOptions(n=5))


# --------------------------------------------------------------------------- next
def test_uncertainty_scores_by_hand():
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.7, 0.3]])
    np.testing.assert_allclose(uncertainty_scores(p, "margin"), [1.0, 0.0, 0.6])
    ent = -(0.7 * np.log(0.7) + 0.3 * np.log(0.3)) / np.log(2)
    np.testing.assert_allclose(uncertainty_scores(p, "entropy"), [1.0, 0.0, ent])


def _pool(n: int = 40) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.arange(n) * 100.0
    cand = pd.DataFrame({"key": [f"F{i:02d}" for i in range(n)], "x": x, "y": 0.0,
                         "village": [f"v{i // 10}" for i in range(n)]})
    feats = rng.normal(size=(n, 5))
    p1 = np.linspace(0.5, 1.0, n)  # field 0 the most uncertain
    return cand, feats, np.column_stack([p1, 1 - p1])


def test_most_uncertain_first_when_only_uncertainty_counts():
    cand, feats, p = _pool()
    r = select_next(cand, {"t": p}, feats, np.zeros((0, 5)),
                    NextOptions(budget=3, w_representative=0, w_novelty=0),
                    classes={"t": ["x", "y"]})
    assert r["key"].tolist() == ["F00", "F01", "F02"]
    assert r["rank"].tolist() == [1, 2, 3]
    assert r["reason"].iloc[0].startswith("uncertainty 1.00 (t: x 0.50 vs y 0.50); typical")


def test_spread_in_space_and_cap_per_unit():
    cand, feats, p = _pool()
    opts = NextOptions(budget=4, w_representative=0, w_novelty=0, min_distance_m=250)
    r = select_next(cand, {"t": p}, feats, np.zeros((0, 5)), opts)
    xs = cand.set_index("key").loc[r["key"], "x"].to_numpy()
    assert np.diff(np.sort(xs)).min() >= 250  # F00, F03, F06, F09
    assert r["key"].tolist() == ["F00", "F03", "F06", "F09"]
    capped = select_next(cand, {"t": p}, feats, np.zeros((0, 5)),
                         NextOptions(budget=4, w_representative=0, w_novelty=0,
                                     max_per_unit=1), unit_column="village")
    assert capped["key"].tolist() == ["F00", "F10", "F20", "F30"]


def test_novelty_avoids_near_duplicates_of_labelled_fields():
    cand, feats, p = _pool()
    p = np.full_like(p, 0.5)  # all equally uncertain
    labelled = feats[:20] + 1e-6  # the first half is (almost) labelled already
    r = select_next(cand, {"t": p}, feats, labelled,
                    NextOptions(budget=10, w_representative=0, w_novelty=1))
    assert set(r["key"]) <= {f"F{i:02d}" for i in range(20, 40)}


def test_clusters_share_the_budget():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [10_000, 0], [0, 10_000], [10_000, 10_000]])
    xy = np.vstack([c + rng.normal(0, 300, size=(25, 2)) for c in centres])
    cand = pd.DataFrame({"key": [f"F{i:03d}" for i in range(100)], "x": xy[:, 0],
                         "y": xy[:, 1]})
    p = rng.dirichlet([1, 1], 100)
    r = select_next(cand, {"t": p}, rng.normal(size=(100, 4)), np.zeros((0, 4)),
                    NextOptions(budget=10, clusters=2))
    assert sorted(r["cluster"].value_counts().tolist()) == [5, 5]
    chosen = cand.set_index("key").loc[r["key"]]
    # Each area is compact: fields of one cluster are within a few km of each other.
    for c in (1, 2):
        pts = chosen[r.set_index("key")["cluster"] == c][["x", "y"]].to_numpy()
        assert np.ptp(pts[:, 0]) < 4000 and np.ptp(pts[:, 1]) < 4000


def test_visit_order_walks_a_line_in_order():
    x = np.array([300.0, 0.0, 200.0, 100.0])
    assert visit_order(x, np.zeros(4)).tolist() == [4, 1, 3, 2]
    assert route_length(x, np.zeros(4), visit_order(x, np.zeros(4))) == pytest.approx(300)
    cl = spatial_clusters(np.array([0, 1, 1000, 1001.0]), np.zeros(4), 2)
    assert cl.tolist() == [1, 1, 2, 2]
