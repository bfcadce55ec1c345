"""Prediction and the GeoPackage writer at 2,000 to 100,000 fields: both linear in fields.

Run: ``OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_predict.py [--fields 2000 20000 100000]``
(writes ``benchmarks/results/predict.md``; the features stage at 100,000 fields is
``bench_features.py``).

One model (180 features, 3 classes) is trained on 3,000 labelled fields; then, for each
size, :func:`regenmap.models.predict.predict_target` labels every field with
explanations, given an upstream status table that also names 2 % more fields without
features (the path that used to be quadratic in fields: 20,000 fields took 1,152 s), and
:func:`regenmap.maps.gpkg_contract.write_results` writes the fields with their labels
to a GeoPackage. Wall and CPU seconds, and the load average, per step.
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
    args = ap.parse_args()

    import geopandas as gpd
    import shapely

    from regenmap.maps.gpkg_contract import write_results
    from regenmap.models.options import LabelledFields, TrainOptions
    from regenmap.models.predict import predict_target
    from regenmap.models.train import train_target
    from regenmap.schema import FIELD_ID, REASON, STATUS

    biggest = max(args.fields)
    table, labels, groups = make_table(biggest, N_FEATURES, N_CLASSES)
    train_ids = table[FIELD_ID].iloc[:N_LABELLED].to_numpy()
    model, train_s, _ = timed(train_target, LabelledFields.of(
        table.iloc[:N_LABELLED], labels.loc[train_ids], target="bench",
        groups=groups.loc[train_ids]), TrainOptions(lightgbm={"num_threads": args.threads}, seed=0))
    rows = []
    explain_rate = float("nan")
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
        if n == min(args.fields):
            _, x_wall, _ = timed(predict_target, model, feats, field_status=up)
            explain_rate = (x_wall - p_wall) / n
        side = 100.0
        cols = np.arange(len(ids)) % 1000
        geoms = shapely.box(cols * side, (np.arange(len(ids)) // 1000) * side,
                            cols * side + 90, (np.arange(len(ids)) // 1000) * side + 90)
        fields = gpd.GeoDataFrame({FIELD_ID: ids}, geometry=geoms, crs="EPSG:32631")
        with tempfile.TemporaryDirectory() as tmp:
            _, g_wall, g_cpu = timed(write_results, Path(tmp) / "out.gpkg", fields, pred,
                                     targets={"bench": list(model.classes)},
                                     run_info={"benchmark": "bench_predict"})
        rows.append((n, len(ids), p_wall, p_cpu, g_wall, g_cpu, load, os.getloadavg()[0]))
        print(f"{n} fields: predict {p_wall:.1f} s (CPU {p_cpu:.1f} s), GeoPackage {g_wall:.1f} s "
              f"(CPU {g_cpu:.1f} s), load {load:.1f}", flush=True)
    lines = ["# Prediction and GeoPackage writer (benchmarks/bench_predict.py)", "",
             f"One LightGBM model ({N_FEATURES} features, {N_CLASSES} classes) trained on "
             f"{N_LABELLED} fields in {train_s:.1f} s on {args.threads} threads; then per size "
             "`predict_target` (labels, confidence, status, drift; no explanations) with an "
             "upstream status table naming 2 % more fields without features, and "
             "`write_results` (fields, labels, QGIS styles) to a "
             f"GeoPackage. Machine: {os.cpu_count()} cores shared with other engineers' jobs; "
             "load average (1 min) before and after each row.", "",
             "| fields with features | rows (with status-only fields) | predict wall s | "
             "predict CPU s | GeoPackage wall s | GeoPackage CPU s | load before / after |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {n} | {m} | {pw:.1f} | {pc:.1f} | {gw:.1f} | {gc:.1f} | {lb:.1f} / {la:.1f} |"
              for n, m, pw, pc, gw, gc, lb, la in rows]
    lines += ["", f"Explanations (TreeSHAP contributions, the top features per field) add "
              f"{explain_rate * 1000:.2f} ms per field ({model.best_iteration} boosting rounds "
              f"x {N_CLASSES} classes), measured at {min(args.fields)} fields; they are computed "
              "in chunks, so they grow linearly too."]
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "predict.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
