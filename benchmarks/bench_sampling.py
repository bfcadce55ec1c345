"""Label-efficient training and interval coverage of regenmap's sampling, on simulated regions.

Usage (from the repository root)::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_sampling.py              # medium, seeds 1-3
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_sampling.py --size small --seeds 1 \
        --reps 1 --max-labels 60 --designs 50                                # a quick look

Two measurements, written to ``benchmarks/results/sampling.md`` (and the raw rows to
``sampling_runs.jsonl``):

1. **Learning curves.** Per simulated region (``--size``, one per ``--seeds``) the fields
   with features are split at random into a test set (30 %) and a pool; ``--start``
   random pool fields are labelled, then batches of ``--batch`` fields are added until
   ``--max-labels``, chosen by each strategy: ``random``; ``stratified`` (random within
   the current model's predicted tillage classes, the same number per class);
   ``next`` (:func:`regenmap.models.selection.select_next` with its defaults: uncertainty
   of both targets, representativeness and novelty in feature space); ``uncertainty``
   (the same, uncertainty only). After each batch one LightGBM model per target is
   trained on the labelled fields (the true labels of the simulator) and its macro-F1
   measured on the test set. ``--reps`` repetitions per region start from other random
   fields; curves are averaged over regions x repetitions with t-intervals (95 %). The
   labels saved by ``next`` are the labels ``random`` needs to reach a macro-F1 minus
   those ``next`` needs (linear interpolation of the mean curves).
2. **Coverage of ``assess`` intervals.** Per region, a map from a model trained on
   ``--map-labels`` random fields (with the run's confidence threshold: uncertain and
   featureless fields are withheld, a stratum of their own); then ``--designs`` reference
   samples of ``--design-n`` fields (strata: predicted tillage class; Neyman allocation
   planned with the model's probabilities; seeds 0..designs-1), each "visited" with the
   simulator's truth, and the 95 % interval of the area of every class of both targets
   estimated as ``regenmap assess`` does (calibrated to the strata's mapped area) and,
   for comparison, by plain expansion (Horvitz-Thompson). Coverage is the share of the
   intervals holding the simulator's true area.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
TARGETS = ("tillage", "winter_cover")
STRATEGIES = ("random", "stratified", "next", "uncertainty")
#: Features must be defined (not NaN) on at least this share of a region's fields.
MIN_DEFINED = 0.5
#: LightGBM settings for small training sets (the defaults need 20 fields per leaf).
LGB = {"num_leaves": 15, "min_data_in_leaf": 5, "num_threads": 1}


# --------------------------------------------------------------------------- data
def prepare_region(work: Path, size: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate a region and extract its features (cached in ``work``).

    Returns
    -------
    features, fields
        The features table; the fields (``field_id``, ``region``, ``area_ha``, ``x``,
        ``y`` and the true ``tillage``, ``winter_cover``).
    """
    import geopandas as gpd
    import yaml

    from regenmap.pipelines.config import builtin_config_path, load_config
    from regenmap.pipelines.demo import _region_is_current, simulate
    from regenmap.pipelines.layout import RunLayout, read_features
    from regenmap.pipelines.stages import STAGES

    out = work / f"{size}-{seed}"
    region = out / "region"
    if not _region_is_current(region, size, seed):
        simulate(region, size=size, seed=seed)
    cfg_path = out / "run.yaml"
    template = yaml.safe_load(builtin_config_path("demo.yaml").read_text(encoding="utf-8"))
    template["seed"] = seed
    template["name"] = f"bench-{size}-{seed}"
    cfg_path.write_text(yaml.safe_dump(template, sort_keys=False), encoding="utf-8")
    cfg = load_config(cfg_path)
    layout = RunLayout.of(cfg)
    if not layout.features.is_file():
        STAGES["extract"](cfg)
        STAGES["features"](cfg)
    feats = read_features(layout)
    # Features defined on few fields (a second growing cycle...) can be all-NaN on a
    # handful of labelled fields, which training refuses: keep those defined on half.
    numeric = feats.columns.drop("field_id")
    keep = [c for c in numeric if feats[c].notna().mean() >= MIN_DEFINED]
    feats = feats[["field_id", *keep]]
    fields = gpd.read_file(region / "fields.gpkg", engine="pyogrio")
    pts = fields.geometry.representative_point()
    table = pd.DataFrame({"field_id": fields["field_id"].astype(str), "region": fields["region"],
                          "area_ha": fields["area_ha"].astype(float), "x": pts.x, "y": pts.y,
                          "tillage": fields["tillage"], "winter_cover": fields["winter_cover"]})
    return feats, table


# --------------------------------------------------------------------------- models
def train(feats: pd.DataFrame, fields: pd.DataFrame, ids: list[str], target: str, seed: int
          ) -> Any:
    """One LightGBM model of ``target`` trained on the true labels of ``ids``."""
    from regenmap.models.options import LabelledFields, TrainOptions
    from regenmap.models.train import train_target

    f = fields.set_index("field_id")
    labels = pd.Series(np.nan, index=feats["field_id"].astype(str), dtype=object)
    labels.loc[ids] = f.loc[ids, target].to_numpy()
    data = LabelledFields.of(feats, labels, target=target, groups=f["region"],
                             area_ha=f["area_ha"])
    opts = TrainOptions(lightgbm=LGB, num_boost_round=200, early_stopping_rounds=20, seed=seed)
    return train_target(data, opts)


def proba(model: Any, feats: pd.DataFrame, ids: list[str]) -> np.ndarray:
    """Class probabilities (n, k) of ``ids`` in the model's class order."""
    from regenmap.models.data import feature_matrix

    sub = feats.set_index(feats["field_id"].astype(str)).loc[ids].reset_index(drop=True)
    return model.predict_proba(feature_matrix(sub, model.feature_names).values)


def macro_f1(model: Any, feats: pd.DataFrame, fields: pd.DataFrame, test: list[str],
             target: str) -> float:
    from sklearn.metrics import f1_score

    pred = np.asarray(model.classes, dtype=object)[proba(model, feats, test).argmax(axis=1)]
    truth = fields.set_index("field_id").loc[test, target].to_numpy()
    return float(f1_score(truth, pred, average="macro", labels=list(model.classes)))


# --------------------------------------------------------------------------- strategies
def choose(strategy: str, rng: np.random.Generator, models: dict[str, Any], feats: pd.DataFrame,
           fields: pd.DataFrame, pool: list[str], labelled: list[str], batch: int,
           seed: int) -> list[str]:
    """The next ``batch`` fields of ``pool`` (unlabelled) for one strategy."""
    from regenmap.models.selection import NextOptions, select_next

    if strategy == "random":
        return rng.choice(pool, size=min(batch, len(pool)), replace=False).tolist()
    if strategy == "stratified":
        m = models["tillage"]
        pred = np.asarray(m.classes)[proba(m, feats, pool).argmax(axis=1)]
        groups = [np.flatnonzero(pred == c) for c in m.classes]
        groups = [g for g in groups if g.size]
        picked: list[str] = []
        share = int(np.ceil(batch / len(groups)))
        for g in groups:
            take = rng.choice(g, size=min(share, g.size), replace=False)
            picked += [pool[i] for i in take]
        rest = [p for p in pool if p not in set(picked)]
        while len(picked) < batch and rest:
            picked.append(rest.pop(int(rng.integers(len(rest)))))
        return picked[:batch]
    opts = NextOptions(budget=batch, seed=seed) if strategy == "next" else \
        NextOptions(budget=batch, w_representative=0.0, w_novelty=0.0, seed=seed)
    f = fields.set_index("field_id")
    cand = pd.DataFrame({"key": pool, "x": f.loc[pool, "x"].to_numpy(),
                         "y": f.loc[pool, "y"].to_numpy()})
    names = models["tillage"].feature_names
    fx = feats.set_index(feats["field_id"].astype(str))
    chosen = select_next(cand, {t: proba(models[t], feats, pool) for t in TARGETS},
                         fx.loc[pool, names].to_numpy(float),
                         fx.loc[labelled, names].to_numpy(float), opts,
                         classes={t: list(models[t].classes) for t in TARGETS})
    return chosen["key"].tolist()


def learning_curves(feats: pd.DataFrame, fields: pd.DataFrame, *, seed: int, rep: int,
                    start: int, batch: int, max_labels: int) -> list[dict[str, Any]]:
    """Macro-F1 on the test set after each batch, for every strategy."""
    rng = np.random.default_rng([seed, rep])
    ids = sorted(set(feats["field_id"].astype(str)) & set(fields["field_id"]))
    order = rng.permutation(len(ids))
    n_test = int(0.3 * len(ids))
    test = [ids[i] for i in order[:n_test]]
    pool0 = [ids[i] for i in order[n_test:]]
    first = rng.choice(pool0, size=start, replace=False).tolist()
    rows = []
    for strategy in STRATEGIES:
        srng = np.random.default_rng([seed, rep, STRATEGIES.index(strategy)])
        labelled = list(first)
        while True:
            models = {t: train(feats, fields, labelled, t, seed) for t in TARGETS}
            f1 = {t: macro_f1(models[t], feats, fields, test, t) for t in TARGETS}
            rows.append({"kind": "curve", "seed": seed, "rep": rep, "strategy": strategy,
                         "n_labels": len(labelled), "n_test": len(test),
                         **{f"f1_{t}": v for t, v in f1.items()},
                         "f1_mean": float(np.mean(list(f1.values())))})
            if len(labelled) >= max_labels:
                break
            pool = sorted(set(pool0) - set(labelled))
            labelled += choose(strategy, srng, models, feats, fields, pool, labelled,
                               min(batch, max_labels - len(labelled)), seed)
    return rows


# --------------------------------------------------------------------------- coverage
def coverage(feats: pd.DataFrame, fields: pd.DataFrame, *, seed: int, map_labels: int,
             designs: int, design_n: int) -> list[dict[str, Any]]:
    """Share of repeated designs whose 95 % interval holds the true area of each class."""
    from regenmap.models.area import estimate_from_sample
    from regenmap.models.predict import predict_target
    from regenmap.models.sampling import WITHHELD, DesignOptions, design_sample

    rng = np.random.default_rng([seed, 99])
    ids = sorted(set(feats["field_id"].astype(str)) & set(fields["field_id"]))
    train_ids = rng.choice(ids, size=min(map_labels, len(ids)), replace=False).tolist()
    f = fields.set_index("field_id")
    maps: dict[str, pd.Series] = {}
    probs: dict[str, pd.DataFrame] = {}
    for t in TARGETS:
        model = train(feats, fields, train_ids, t, seed)
        pred = predict_target(model, feats, confidence_threshold=0.5, explain=False)
        pred = pred.set_index(pred["field_id"].astype(str))
        maps[t] = pred[t].astype(object).reindex(f.index)
        probs[t] = pred[[f"{t}_p_{c}" for c in model.classes]].reindex(f.index)
        probs[t].columns = [f"p_{c}" for c in model.classes]
    classes = {t: sorted(fields[t].unique()) for t in TARGETS}
    frame = pd.DataFrame({"key": f.index, "map_class": maps["tillage"].where(
        maps["tillage"].notna(), None).to_numpy(), "area_ha": f["area_ha"].to_numpy(),
        "eligible": True})
    frame = pd.concat([frame, probs["tillage"].reset_index(drop=True)], axis=1)
    truth = {t: f.groupby(t)["area_ha"].sum().to_dict() for t in TARGETS}
    withheld = float(frame["map_class"].isna().mean())
    hits: dict[tuple[str, str, str], int] = {}
    widths: dict[tuple[str, str, str], list[float]] = {}
    for r in range(designs):
        d = design_sample(frame, classes["tillage"], DesignOptions(n=design_n, seed=r))
        strata_n = d.strata.set_index("stratum")["N_eligible"].to_dict()
        strata_a = d.strata.set_index("stratum")["area_eligible_ha"].to_dict()
        keys = d.sample["key"].to_numpy()
        for t in TARGETS:
            m = maps[t].loc[keys]
            sample = pd.DataFrame({"stratum": d.sample["stratum"].to_numpy(),
                                   "map": m.where(m.notna(), WITHHELD).to_numpy(),
                                   "ref": f.loc[keys, t].to_numpy(),
                                   "area": d.sample["area_ha"].to_numpy()})
            rows = [*classes[t], WITHHELD]
            for how, area in (("calibrated", strata_a), ("expansion", None)):
                est = estimate_from_sample(sample, strata_N=strata_n, stratum_area=area,
                                           map_classes=rows, ref_classes=classes[t])
                for c in classes[t]:
                    key = (t, c, how)
                    hits[key] = hits.get(key, 0) + est.area[c].covers(truth[t][c])
                    widths.setdefault(key, []).append(2 * est.area[c].half_width)
    out = []
    for (t, c, how), h in hits.items():
        out.append({"kind": "coverage", "seed": seed, "target": t, "class": c, "estimator": how,
                    "designs": designs, "design_n": design_n, "covered": h,
                    "coverage": h / designs, "true_area_ha": truth[t][c],
                    "mean_ci_width_ha": float(np.mean(widths[(t, c, how)])),
                    "withheld_share": withheld, "map_labels": map_labels})
    return out


# --------------------------------------------------------------------------- report
def _ci(values: np.ndarray) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return mean, mean - half, mean + half


def labels_needed(curve: pd.Series, level: float) -> float:
    """Smallest number of labels at which the mean curve reaches ``level`` (interpolated)."""
    n = curve.index.to_numpy(float)
    f = curve.to_numpy(float)
    for i in range(len(f)):
        if f[i] >= level:
            if i == 0:
                return float(n[0])
            return float(n[i - 1] + (level - f[i - 1]) / (f[i] - f[i - 1]) * (n[i] - n[i - 1]))
    return float("nan")


def report(rows: list[dict[str, Any]], conditions: dict[str, Any]) -> str:
    curves = pd.DataFrame([r for r in rows if r["kind"] == "curve"])
    cov = pd.DataFrame([r for r in rows if r["kind"] == "coverage"])
    lines = ["# Sampling benchmark (benchmarks/bench_sampling.py)", "",
             "Conditions: " + "; ".join(f"{k} {v}" for k, v in conditions.items()) + ".", ""]
    if len(curves):
        n_curves = curves.groupby(["seed", "rep"]).ngroups
        for metric, title in (("f1_mean", "mean of tillage and winter-cover macro-F1"),
                              ("f1_tillage", "tillage macro-F1"),
                              ("f1_winter_cover", "winter-cover macro-F1")):
            lines += [f"## Learning curves: {title} on the test fields",
                      f"(mean over {n_curves} curves = regions x repetitions; 95 % t-interval)", "",
                      "| labels | " + " | ".join(STRATEGIES) + " |",
                      "|---|" + "---|" * len(STRATEGIES)]
            for n in sorted(curves["n_labels"].unique()):
                cells = []
                for s in STRATEGIES:
                    v = curves.loc[(curves["n_labels"] == n) & (curves["strategy"] == s), metric]
                    m, lo, hi = _ci(v.to_numpy())
                    cells.append(f"{m:.3f} [{lo:.3f}, {hi:.3f}]")
                lines.append(f"| {n} | " + " | ".join(cells) + " |")
            lines.append("")
        lines += ["## Paired differences from random sampling",
                  "(same regions, test fields and first labels; mean difference of macro-F1 "
                  "over the curves, 95 % t-interval; an interval above 0 = better than random)",
                  "", "| labels | target | " + " | ".join(s for s in STRATEGIES if s != "random")
                  + " |", "|---|---|" + "---|" * (len(STRATEGIES) - 1)]
        wide = curves.pivot_table(index=["seed", "rep", "n_labels"], columns="strategy",
                                  values=["f1_mean", "f1_tillage", "f1_winter_cover"])
        for n in sorted(curves["n_labels"].unique())[1:]:
            for metric in ("f1_mean", "f1_tillage", "f1_winter_cover"):
                part = wide.xs(n, level="n_labels")[metric]
                cells = []
                for s in STRATEGIES:
                    if s == "random":
                        continue
                    m, lo, hi = _ci((part[s] - part["random"]).to_numpy())
                    cells.append(f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]")
                lines.append(f"| {n} | {metric.removeprefix('f1_')} | " + " | ".join(cells) + " |")
        lines.append("")
        mean = curves.groupby(["strategy", "n_labels"])["f1_mean"].mean()
        rnd = mean.loc["random"]
        lines += ["## Labels needed for the same macro-F1 (mean curves, interpolated)", "",
                  "| macro-F1 reached by random at | random needs | "
                  + " | ".join(s for s in STRATEGIES if s != "random") + " |",
                  "|---|---|" + "---|" * (len(STRATEGIES) - 1)]
        for n in sorted(rnd.index)[1:]:
            level = float(rnd.loc[n])
            cells = []
            for s in STRATEGIES:
                if s == "random":
                    continue
                need = labels_needed(mean.loc[s], level)
                cells.append("not reached" if np.isnan(need) else
                             f"{need:.0f} ({n - need:+.0f} saved)")
            lines.append(f"| {n} labels: {level:.3f} | {labels_needed(rnd, level):.0f} | "
                         + " | ".join(cells) + " |")
        lines.append("")
    if len(cov):
        lines += ["## Coverage of the 95 % intervals of `assess` (true area inside)", "",
                  "| target | class | estimator | coverage | designs | mean interval width ha "
                  "| true area ha (mean over regions) |", "|---|---|---|---|---|---|---|"]
        g = cov.groupby(["target", "class", "estimator"])
        for (t, c, how), part in g:
            lines.append(f"| {t} | {c} | {how} | {part['covered'].sum() / part['designs'].sum():.3f}"
                         f" | {int(part['designs'].sum())} | {part['mean_ci_width_ha'].mean():.0f} "
                         f"| {part['true_area_ha'].mean():.0f} |")
        for how in ("calibrated", "expansion"):
            part = cov[cov["estimator"] == how]
            lines.append(f"| all | all | {how} | "
                         f"{part['covered'].sum() / part['designs'].sum():.3f} | "
                         f"{int(part['designs'].sum())} | | |")
        lines += ["", f"Withheld share of the maps: {cov['withheld_share'].mean():.3f} "
                  "(mean over regions)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="medium")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--start", type=int, default=20)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--max-labels", type=int, default=200)
    ap.add_argument("--map-labels", type=int, default=200)
    ap.add_argument("--designs", type=int, default=500)
    ap.add_argument("--design-n", type=int, default=100)
    ap.add_argument("--work", type=Path, default=ROOT / "_data" / "sampling")
    ap.add_argument("--out", default="sampling")
    ap.add_argument("--skip-curves", action="store_true")
    ap.add_argument("--from-runs", type=Path,
                    help="only write the report again from a *_runs.jsonl file")
    args = ap.parse_args(argv)
    if args.from_runs:
        runs = [json.loads(line) for line in args.from_runs.read_text().splitlines() if line]
        cond = runs[0]["conditions"]
        rows = [{k: v for k, v in r.items() if k != "conditions"} for r in runs]
        (RESULTS / f"{args.out}.md").write_text(report(rows, cond), encoding="utf-8")
        print(report(rows, cond))
        return 0
    t0 = time.time()
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        feats, fields = prepare_region(args.work, args.size, seed)
        print(f"region {args.size} seed {seed}: {len(fields)} fields, {len(feats)} with features "
              f"({time.time() - t0:.0f} s)", flush=True)
        if not args.skip_curves:
            for rep in range(args.reps):
                rows += learning_curves(feats, fields, seed=seed, rep=rep, start=args.start,
                                        batch=args.batch, max_labels=args.max_labels)
                print(f"  curves rep {rep} done ({time.time() - t0:.0f} s)", flush=True)
        rows += coverage(feats, fields, seed=seed, map_labels=args.map_labels,
                         designs=args.designs, design_n=args.design_n)
        print(f"  coverage done ({time.time() - t0:.0f} s)", flush=True)
    load = os.getloadavg()
    conditions = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "size": args.size,
        "seeds": args.seeds, "repetitions per region": args.reps,
        "start labels": args.start, "batch": args.batch, "max labels": args.max_labels,
        "test share": 0.3, "features defined on at least": f"{MIN_DEFINED:.0%} of fields",
        "LightGBM": LGB, "rounds": "200, early stopping 20",
        "map labels (coverage)": args.map_labels, "designs per region": args.designs,
        "design size": args.design_n, "machine": f"{os.cpu_count()} cores, {platform.machine()}",
        "load average at the end": [round(x, 1) for x in load],
        "wall time": f"{(time.time() - t0) / 60:.1f} min"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text(report(rows, conditions), encoding="utf-8")
    with (RESULTS / f"{args.out}_runs.jsonl").open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({**r, "conditions": conditions}, default=str) + "\n")
    print(report(rows, conditions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
