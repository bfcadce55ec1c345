"""Design-based estimators against the worked example of Olofsson et al. (2014) and by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regenmap.errors import ModelError
from regenmap.models.area import (
    Z95,
    allocate,
    cochran_sample_size,
    estimate_from_counts,
    estimate_from_sample,
)

# Olofsson et al. (2014), Remote Sensing of Environment 148:42-57, section 5:
# strata = map classes; error matrix of sample counts (Table 8) and mapped areas in
# 30 m pixels (0.09 ha each).
CLASSES = ["deforestation", "forest_gain", "stable_forest", "stable_non_forest"]
COUNTS = np.array([[66, 0, 5, 4],
                   [0, 55, 8, 12],
                   [1, 0, 153, 11],
                   [2, 1, 9, 313]])
MAPPED_PIXELS = np.array([200_000, 150_000, 3_200_000, 6_450_000])
HA_PER_PIXEL = 0.09


@pytest.fixture(scope="module")
def paper():  # type: ignore[no-untyped-def]
    return estimate_from_counts(COUNTS, MAPPED_PIXELS * HA_PER_PIXEL, map_classes=CLASSES,
                                ref_classes=CLASSES, area_unit="ha")


def test_error_matrix_in_area_proportions_is_table_9(paper):
    table9 = np.array([[0.0176, 0.0000, 0.0013, 0.0011],
                       [0.0000, 0.0110, 0.0016, 0.0024],
                       [0.0019, 0.0000, 0.2967, 0.0213],
                       [0.0040, 0.0020, 0.0179, 0.6212]])
    np.testing.assert_array_equal(np.round(paper.proportions, 4), table9)
    # Column totals: the estimated area shares.
    assert [round(paper.area_share[c].value, 4) for c in CLASSES] == [0.0235, 0.0130, 0.3175,
                                                                      0.6460]


def test_overall_users_and_producers_accuracy_as_printed(paper):
    assert round(paper.overall.value, 2) == 0.95
    assert round(paper.overall.half_width, 2) == 0.02
    users = {c: (round(paper.users[c].value, 2), round(paper.users[c].half_width, 2))
             for c in CLASSES}
    assert users == {"deforestation": (0.88, 0.07), "forest_gain": (0.73, 0.10),
                     "stable_forest": (0.93, 0.04), "stable_non_forest": (0.96, 0.02)}
    producers = {c: round(paper.producers[c].value, 2) for c in CLASSES}
    assert producers == {"deforestation": 0.75, "forest_gain": 0.85, "stable_forest": 0.93,
                         "stable_non_forest": 0.96}
    assert round(paper.producers["deforestation"].half_width, 2) == 0.21
    assert round(paper.producers["stable_forest"].half_width, 2) == 0.03
    # The paper prints +/-0.23 (forest gain) and +/-0.01 (stable non-forest); its own
    # eq. 7 gives 0.254 and 0.018 on these counts (worked out by hand below), so these two
    # printed half-widths are not reproducible from the published formula.
    assert paper.producers["forest_gain"].half_width == pytest.approx(0.2544, abs=1e-4)
    assert paper.producers["stable_non_forest"].half_width == pytest.approx(0.0184, abs=1e-4)


def test_producers_variance_is_eq_7_by_hand(paper):
    a, n = MAPPED_PIXELS.astype(float), COUNTS.astype(float)
    ni = n.sum(axis=1)
    u = np.diag(n) / ni
    for j, c in enumerate(CLASSES):
        big_nj = np.sum(a / ni * n[:, j])
        p = paper.producers[c].value
        t1 = a[j] ** 2 * (1 - p) ** 2 * u[j] * (1 - u[j]) / (ni[j] - 1)
        t2 = p ** 2 * sum(a[i] ** 2 * n[i, j] / ni[i] * (1 - n[i, j] / ni[i]) / (ni[i] - 1)
                          for i in range(4) if i != j)
        assert paper.producers[c].se == pytest.approx(np.sqrt(t1 + t2) / big_nj, rel=1e-12)


def test_error_adjusted_areas_as_printed(paper):
    printed = {"deforestation": (21_158, 6_158), "forest_gain": (11_686, 3_756),
               "stable_forest": (285_770, 15_510), "stable_non_forest": (581_386, 16_282)}
    got = {c: (round(paper.area[c].value), round(paper.area[c].half_width)) for c in CLASSES}
    assert got == printed
    # In pixels, the paper's 235,086 +/- 68,418 for deforestation.
    px = estimate_from_counts(COUNTS, MAPPED_PIXELS, map_classes=CLASSES, ref_classes=CLASSES)
    assert round(px.area["deforestation"].value) == 235_086
    assert round(px.area["deforestation"].half_width) == 68_418
    assert paper.total_area == pytest.approx(900_000)
    assert paper.mapped_area["deforestation"] == pytest.approx(18_000)


def test_two_by_two_by_hand():
    # Strata (map) A, B of shares 0.2 / 0.8; 10 units each. Mapped A: 8 A, 2 B;
    # mapped B: 1 A, 9 B.
    r = estimate_from_counts(np.array([[8, 2], [1, 9]]), [20.0, 80.0], map_classes=["A", "B"],
                             ref_classes=["A", "B"], area_unit="ha")
    # p_AA = .2 * .8 = .16, p_AB = .04, p_BA = .08, p_BB = .72
    np.testing.assert_allclose(r.proportions, [[0.16, 0.04], [0.08, 0.72]])
    assert r.area["A"].value == pytest.approx(24.0)  # 100 ha * (0.16 + 0.08)
    # V(p_.A) = .2^2 * .8 * .2 / 9 + .8^2 * .1 * .9 / 9
    se = np.sqrt(0.04 * 0.16 / 9 + 0.64 * 0.09 / 9)
    assert r.area_share["A"].se == pytest.approx(se)
    assert r.area["A"].se == pytest.approx(100 * se)
    assert r.area["A"].ci_low == pytest.approx(24 - Z95 * 100 * se)
    assert r.overall.value == pytest.approx(0.88)
    assert r.users["A"].value == pytest.approx(0.8)
    assert r.producers["A"].value == pytest.approx(0.16 / 0.24)


def test_unit_level_equals_counts_form_when_units_are_equal():
    sample = pd.DataFrame({"stratum": ["A"] * 10 + ["B"] * 10,
                           "map": ["A"] * 10 + ["B"] * 10,
                           "ref": ["A"] * 8 + ["B"] * 2 + ["A"] + ["B"] * 9})
    unit = estimate_from_sample(sample, stratum_weights={"A": 0.2, "B": 0.8}, total_area=100.0)
    counts = estimate_from_counts(np.array([[8, 2], [1, 9]]), [20.0, 80.0],
                                  map_classes=["A", "B"], ref_classes=["A", "B"])
    for c in ("A", "B"):
        assert unit.area[c].value == pytest.approx(counts.area[c].value)
        assert unit.area[c].se == pytest.approx(counts.area[c].se)
        assert unit.producers[c].se == pytest.approx(counts.producers[c].se)


def test_fields_of_unequal_area_with_finite_population_by_hand():
    # One stratum of N = 4 fields, all sampled: the estimate is the census, SE 0.
    sample = pd.DataFrame({"stratum": ["s"] * 4, "map": ["A", "A", "B", "B"],
                           "ref": ["A", "B", "B", "B"], "area": [1.0, 2.0, 3.0, 4.0]})
    r = estimate_from_sample(sample, strata_N={"s": 4})
    assert r.area["A"].value == pytest.approx(1.0) and r.area["A"].se == 0
    assert r.area["B"].value == pytest.approx(9.0)
    assert r.overall.value == pytest.approx(8 / 10)
    assert r.users["A"].value == pytest.approx(1 / 3)
    # Half of a stratum of N = 4 sampled: area of B = 4 / 2 * (3 + 0) = 6; s^2 of
    # (3, 0) is 4.5; V = N^2 (1 - n/N) s^2 / n = 16 * 0.5 * 4.5 / 2 = 18.
    half = estimate_from_sample(sample.iloc[[1, 2]].assign(ref=["A", "B"]), strata_N={"s": 4})
    assert half.area["B"].value == pytest.approx(6.0)
    assert half.area["B"].se == pytest.approx(np.sqrt(18.0))
    no_fpc = estimate_from_sample(sample.iloc[[1, 2]].assign(ref=["A", "B"]),
                                  strata_N={"s": 4}, finite_population=False)
    assert no_fpc.area["B"].se == pytest.approx(6.0)


def test_withheld_stratum_counts_in_areas_not_in_accuracies():
    sample = pd.DataFrame({"stratum": ["A", "A", "withheld", "withheld"],
                           "map": ["A", "A", "withheld", "withheld"],
                           "ref": ["A", "B", "B", "B"], "area": [1.0, 1.0, 1.0, 1.0]})
    r = estimate_from_sample(sample, strata_N={"A": 10, "withheld": 10},
                             ref_classes=["A", "B"])
    assert r.area["B"].value == pytest.approx(15.0)  # 10 * 1/2 + 10 * 2/2
    assert r.overall.value == pytest.approx(0.5)  # only the mapped stratum counts
    assert "withheld" not in r.users
    table = r.table()
    assert table["class"].tolist() == ["A", "B", "withheld"]
    assert table.loc[2, "mapped_area"] == pytest.approx(10.0)


def test_domain_estimate_counts_only_its_units():
    sample = pd.DataFrame({"stratum": ["s"] * 4, "map": ["A"] * 4, "ref": ["A", "B", "A", "B"],
                           "area": [1.0] * 4})
    r = estimate_from_sample(sample, strata_N={"s": 8},
                             domain=np.array([True, True, False, False]))
    assert r.area["A"].value == pytest.approx(2.0)  # 8/4 * 1
    assert r.total_area == pytest.approx(4.0)


def test_cochran_sample_size_of_the_paper():
    # Section 5.1: target SE of the overall accuracy 0.01 and expected user's accuracies
    # 0.70, 0.60, 0.90, 0.95: n = (sum W_i S_i / 0.01)^2 = 25.31^2 = 640.6 -> 641.
    u = np.array([0.70, 0.60, 0.90, 0.95])
    n = cochran_sample_size(MAPPED_PIXELS, np.sqrt(u * (1 - u)), 0.01)
    assert n == 641
    # The finite-population correction lowers it: (sum W S)^2 / (SE^2 + sum W S^2 / N)
    # = 0.0640536 / (0.0001 + 0.0672375 / 1000) = 383.01 -> 384.
    small = cochran_sample_size(MAPPED_PIXELS, np.sqrt(u * (1 - u)), 0.01, population=1000)
    w = MAPPED_PIXELS / MAPPED_PIXELS.sum()
    s = np.sqrt(u * (1 - u))
    expect = np.sum(w * s) ** 2 / (1e-4 + np.sum(w * s ** 2) / 1000)
    assert small == int(np.ceil(expect - 1e-9))


def test_cochran_with_a_given_allocation_needs_more_than_neyman():
    w, s = [0.5, 0.5], [0.5, 0.1]
    neyman = cochran_sample_size(w, s, 0.02)  # (0.25 + 0.05)^2 / 4e-4 = 225
    assert neyman == 225
    equal = cochran_sample_size(w, s, 0.02, fractions=[0.5, 0.5])  # (.0625+.0025)/.5/4e-4
    assert equal == 325


@pytest.mark.parametrize(("rule", "expect"), [
    ("proportional", [10, 20, 70]),
    ("equal", [34, 33, 33]),
    ("neyman", [20, 20, 60]),          # sizes x stds = 10, 10, 30
    ("olofsson", [25, 25, 50]),         # 10 and 20 below the minimum of 25: rest to the last
])
def test_allocation_rules_by_hand(rule, expect):
    got = allocate(100, [10, 20, 70], rule=rule, stds=[1.0, 0.5, 3 / 7],
                   minimum=25 if rule == "olofsson" else 0)
    assert got.tolist() == expect
    assert got.sum() == 100


def test_allocation_respects_available_units_and_minimum():
    got = allocate(50, [100, 100, 800], rule="proportional", minimum=5, available=[3, 100, 30])
    assert got.tolist() == [3, 17, 30]
    assert allocate(500, [1, 1], available=[4, 6]).tolist() == [4, 6]


def test_bad_inputs_are_named():
    with pytest.raises(ModelError, match="no sample unit"):
        estimate_from_counts(np.array([[1, 0], [0, 0]]), [1, 1])
    with pytest.raises(ModelError, match="weights have 3 values for 2 map classes"):
        estimate_from_counts(np.eye(2), [1, 1, 1])
    with pytest.raises(ModelError, match="allocation rule 'random'"):
        allocate(10, [1, 2], rule="random")
    with pytest.raises(ModelError, match="lacks column"):
        estimate_from_sample(pd.DataFrame({"map": ["A"]}), strata_N={"s": 1})
    with pytest.raises(ModelError, match="more sample units than population units"):
        estimate_from_sample(pd.DataFrame({"stratum": ["s"] * 3, "map": ["A"] * 3,
                                           "ref": ["A"] * 3}), strata_N={"s": 2})


def test_calibrated_to_known_stratum_area_by_hand():
    # One stratum of 40 fields and 100 ha; sampled fields of 1, 2, 3, 4 ha, the first of
    # class A. Area of A = 100 * 1 / 10 = 10 ha. Ratio residuals e = y - 0.1 a =
    # (0.9, -0.2, -0.3, -0.4): V = N^2 s_e^2 / n = 1600 * (1.1 / 3) / 4 = 146.67.
    sample = pd.DataFrame({"stratum": ["s"] * 4, "map": ["A"] * 4,
                           "ref": ["A", "B", "B", "B"], "area": [1.0, 2.0, 3.0, 4.0]})
    r = estimate_from_sample(sample, strata_N={"s": 40}, stratum_area={"s": 100.0},
                             finite_population=False)
    assert r.area["A"].value == pytest.approx(10.0)
    assert r.area["B"].value == pytest.approx(90.0)
    assert r.area["A"].se == pytest.approx(np.sqrt(1600 * (1.1 / 3) / 4))
    assert r.total_area == pytest.approx(100.0)
    # A perfect map and known areas: the estimate is the mapped area, with no error.
    perfect = estimate_from_sample(sample.assign(ref="A"), strata_N={"s": 40},
                                   stratum_area={"s": 100.0})
    assert perfect.area["A"].value == pytest.approx(100.0) and perfect.area["A"].se == 0


def test_calibration_leaves_the_paper_example_unchanged():
    strata = np.repeat(CLASSES, COUNTS.sum(axis=1))
    ref = np.concatenate([np.repeat(CLASSES, row) for row in COUNTS])
    sample = pd.DataFrame({"stratum": strata, "map": strata, "ref": ref})
    area = dict(zip(CLASSES, MAPPED_PIXELS * HA_PER_PIXEL, strict=True))
    r = estimate_from_sample(sample, strata_N=dict(zip(CLASSES, MAPPED_PIXELS, strict=True)),
                             stratum_area=area, finite_population=False)
    assert round(r.area["deforestation"].value) == 21_158
    # Units are pixels (area 1); the known stratum areas in hectares rescale them.
    assert round(r.area["deforestation"].half_width) == 6_158
