"""Disaggregated skill: per-class error rates by group, flags, gaps, and cluster intervals."""

from __future__ import annotations

import numpy as np

from regenmap.models.metrics import bootstrap_intervals, disaggregate, disaggregation_table

CLASSES = ("conventional", "no_till")


def test_rates_per_group_by_hand() -> None:
    # group A: 4 no_till, 3 recognised; 2 conventional, 1 called no_till
    # group B: everything right
    y = np.array([1, 1, 1, 1, 0, 0] + [1, 0] * 20)
    pred = np.array([1, 1, 1, 0, 1, 0] + [1, 0] * 20)
    crop = np.array(["A"] * 6 + ["B"] * 40, dtype=object)
    dis = disaggregate(y, pred, CLASSES, {"crop": crop}, min_count=5, n_boot=100)
    a = dis["factors"]["crop"]["A"]
    assert a["n"] == 6 and a["accuracy"] == 4 / 6
    nt = a["per_class"]["no_till"]
    assert nt["recall"] == 3 / 4 and nt["fnr"] == 1 / 4        # a no-till farmer missed
    assert nt["precision"] == 3 / 4 and nt["fdr"] == 1 / 4     # no-till paid without it
    assert a["per_class"]["conventional"]["fdr"] == 1 / 2
    gaps = dis["gaps"]["crop"]
    assert gaps["accuracy"]["difference"] == 1 - 4 / 6
    assert gaps["accuracy"]["ratio"] == 4 / 6
    table = disaggregation_table(dis, CLASSES)
    row = table[(table["factor"] == "crop") & (table["group"] == "A")].iloc[0]
    assert row["no_till_fnr"] == 0.25 and row["n"] == 6


def test_every_subgroup_clearly_below_overall_is_flagged_not_only_the_worst() -> None:
    rng = np.random.default_rng(1)
    n = 600
    region = np.repeat(np.array(["r1", "r2", "r3", "r4"], dtype=object), n // 4)
    y = rng.integers(0, 2, n)
    wrong = rng.random(n) < np.where(np.isin(region, ["r1", "r2"]), 0.45, 0.02)
    pred = np.where(wrong, 1 - y, y)
    dis = disaggregate(y, pred, CLASSES, {"region": region}, min_count=20, n_boot=200)
    assert [f["group"] for f in dis["flagged"]] == sorted(
        ["r1", "r2"], key=lambda g: dis["factors"]["region"][g]["accuracy"])
    assert dis["worst"]["group"] in ("r1", "r2")
    assert not dis["factors"]["region"]["r3"]["flagged"]


def test_cluster_bootstrap_is_wider_when_errors_come_by_region() -> None:
    rng = np.random.default_rng(2)
    region = np.repeat(np.arange(12), 50).astype(str).astype(object)
    y = rng.integers(0, 2, region.size)
    # whole regions are mostly wrong or mostly right: errors are correlated in space
    bad = np.isin(region, ["0", "1", "2"])
    pred = np.where(bad & (rng.random(region.size) < 0.8), 1 - y, y)
    iid = bootstrap_intervals(y, pred, CLASSES, n_boot=500, seed=0)
    cluster = bootstrap_intervals(y, pred, CLASSES, n_boot=500, seed=0, clusters=region)
    width = lambda ci: ci["accuracy"][1] - ci["accuracy"][0]  # noqa: E731
    assert cluster["resampled"] == "clusters"
    assert width(cluster) > 2 * width(iid)
