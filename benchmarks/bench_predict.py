"""Prediction, its explanations and the GeoPackage writer at 2,000 to 100,000 fields.

Run: ``OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_predict.py [--fields 2000 20000 100000]``
(writes ``benchmarks/results/predict.md``; the features stage at 100,000 fields is
``bench_features.py``).

One model (180 features, 3 classes) is trained on 3,000 labelled fields; then, for each
size, :func:`regenmap.models.predict.predict_target` labels every field with
explanations, given an upstream status table that also names 2 % more fields without
features (the path that used to be quadratic in fields: 20,000 fields took 1,152 s), and
:func:`regenmap.maps.gpkg_contract.write_results` writes the fields with their labels
to a GeoPackage. Wall and CPU seconds, and the load average, per step.

Explanations (the ``_why`` reasons: TreeSHAP contributions of the margin between the
label and the runner-up) are timed as the difference between ``predict_target`` with and
without them, at every size. At the smallest size, the parts are also timed apart on the
same fields: LightGBM's own ``pred_contrib`` against the compiled engine
(:mod:`regenmap.models.treeshap`; the largest difference between the two is reported),
and the reason texts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from bench_train import make_table  # noqa: E402  (a sibling script, not a package)

N_FEATURES = 180
N_CLASSES = 3
N_LABELLED = 3000


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Return fn's result, wall seconds and CPU seconds of this process."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fields", type=int, nargs="+", default=[2000, 20000, 100000])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-lightgbm", action="store_true",
                    help="do not time LightGBM's pred_contrib (about 6 ms per field)")
    args = ap.parse_args()

    import geopandas as gpd
    import shapely

    from regenmap.maps.gpkg_contract import write_results
    from regenmap.models.explain import (
        contributions,
        margin_contributions,
        reason_texts,
        runner_up,
    )
    from regenmap.models.options import LabelledFields, TrainOptions
    from regenmap.models.predict import predict_target
    from regenmap.models.train import train_target
    from regenmap.models.treeshap import forest_of
    from regenmap.schema import FIELD_ID, REASON, STATUS

    biggest = max(args.fields)
    table, labels, groups = make_table(biggest, N_FEATURES, N_CLASSES)
    train_ids = table[FIELD_ID].iloc[:N_LABELLED].to_numpy()
    model, train_s, _ = timed(train_target, LabelledFields.of(
        table.iloc[:N_LABELLED], labels.loc[train_ids], target="bench",
        groups=groups.loc[train_ids]), TrainOptions(lightgbm={"num_threads": args.threads}, seed=0))
    rows = []
    parts: dict[str, float] = {}
    # Parts at the smallest size, on the same fields: LightGBM vs the compiled engine.
    small = table.iloc[:min(args.fields)].drop(columns=FIELD_ID).to_numpy(np.float32)
    import lightgbm as lgb

    # once per model (training built it already for the model's importance: time a copy)
    _, parts["forest"], _ = timed(forest_of, lgb.Booster(
        model_str=model.booster.model_to_string()))
    _, parts["compile"], _ = timed(contributions, model.booster, small[:8], N_CLASSES)
    fast, parts["compiled"], parts["compiled_cpu"] = timed(
        contributions, model.booster, small, N_CLASSES, threads=args.threads)
    if not args.skip_lightgbm:
        slow, parts["lightgbm"], parts["lightgbm_cpu"] = timed(
            contributions, model.booster, small, N_CLASSES, engine="lightgbm")
        parts["max_diff"] = float(np.abs(fast - slow).max())
    top, second = runner_up(model.predict_proba(small))
    margins, parts["margins"], _ = timed(margin_contributions, fast, top, second)
    names = np.asarray(model.classes, dtype=object)
    medians = [model.reference.get(f, {}).get("median") for f in model.feature_names]
    _, parts["texts"], _ = timed(reason_texts, margins, small, model.feature_names,
                                 names[top].tolist(), names[second].tolist(), medians)
    for n in sorted(args.fields):
        feats = table.iloc[:n]
        extra = [f"X{i:06d}" for i in range(n // 50)]  # fields with a status but no features
        ids = np.concatenate([feats[FIELD_ID].to_numpy(), np.array(extra, dtype=object)])
        status = np.where(np.arange(len(ids)) % 17 == 0, "too_small", "ok")
        up = pd.DataFrame({FIELD_ID: ids, STATUS: status, REASON: ""})
        load = os.getloadavg()[0]
        # labels, confidence, status, drift; explanations (TreeSHAP, per row) timed apart
        pred, p_wall, p_cpu = timed(predict_target, model, feats, field_status=up,
                                    explain=False)
        explained, x_wall, x_cpu = timed(predict_target, model, feats, field_status=up)
        assert explained["bench_why"].str.contains(" -> ").any()
        side = 100.0
        cols = np.arange(len(ids)) % 1000
        geoms = shapely.box(cols * side, (np.arange(len(ids)) // 1000) * side,
                            cols * side + 90, (np.arange(len(ids)) // 1000) * side + 90)
        fields = gpd.GeoDataFrame({FIELD_ID: ids}, geometry=geoms, crs="EPSG:32631")
        with tempfile.TemporaryDirectory() as tmp:
            _, g_wall, g_cpu = timed(write_results, Path(tmp) / "out.gpkg", fields, pred,
                                     targets={"bench": list(model.classes)},
                                     run_info={"benchmark": "bench_predict"})
        rows.append((n, len(ids), p_wall, p_cpu, x_wall - p_wall, x_cpu - p_cpu, g_wall, g_cpu,
                     load, os.getloadavg()[0]))
        print(f"{n} fields: predict {p_wall:.1f} s (CPU {p_cpu:.1f} s), explanations "
              f"{x_wall - p_wall:.1f} s (CPU {x_cpu - p_cpu:.1f} s), GeoPackage {g_wall:.1f} s "
              f"(CPU {g_cpu:.1f} s), load {load:.1f}", flush=True)
    lines = ["# Prediction, explanations and GeoPackage writer (benchmarks/bench_predict.py)",
             "", f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             f"One LightGBM model ({N_FEATURES} features, {N_CLASSES} classes) trained on "
             f"{N_LABELLED} fields in {train_s:.1f} s on {args.threads} threads; then per size "
             "`predict_target` (labels, confidence, status, drift; no explanations) with an "
             "upstream status table naming 2 % more fields without features, and "
             "`write_results` (fields, labels, QGIS styles) to a "
             f"GeoPackage. Explanations (`_why`: TreeSHAP contributions of the margin over the "
             f"runner-up, {model.best_iteration} boosting rounds x {N_CLASSES} classes, the 3 "
             "top features in words) are the difference between `predict_target` with and "
             f"without them. Machine: {os.cpu_count()} cores shared with other engineers' jobs; "
             "load average (1 min) before and after each row.", "",
             "| fields with features | rows (with status-only fields) | predict wall s | "
             "predict CPU s | explanations wall s | explanations CPU s | explanations ms "
             "per field (wall) | GeoPackage wall s | GeoPackage CPU s | load before / after |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {n} | {m} | {pw:.1f} | {pc:.1f} | {xw:.1f} | {xc:.1f} | {xw / n * 1000:.3f} "
              f"| {gw:.1f} | {gc:.1f} | {lb:.1f} / {la:.1f} |"
              for n, m, pw, pc, xw, xc, gw, gc, lb, la in rows]
    k = min(args.fields)
    lines += ["", f"Parts of the explanations at {k} fields (wall seconds; ms per field): "
              f"compiled TreeSHAP engine on {args.threads} threads {parts['compiled']:.2f} s "
              f"({parts['compiled'] / k * 1000:.3f} ms, CPU {parts['compiled_cpu']:.2f} s)"]
    if "lightgbm" in parts:
        lines[-1] += (f", LightGBM's `pred_contrib` {parts['lightgbm']:.2f} s "
                      f"({parts['lightgbm'] / k * 1000:.2f} ms, CPU "
                      f"{parts['lightgbm_cpu']:.2f} s; largest difference between the two "
                      f"{parts['max_diff']:.1e})")
    lines[-1] += (f", margins {parts['margins'] * 1000:.0f} ms, reason texts "
                  f"{parts['texts'] * 1000:.0f} ms; once per model: the engine's tables "
                  f"{parts['forest']:.2f} s, and the first call {parts['compile']:.2f} s "
                  "(loading or compiling the kernel).")
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "predict.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
