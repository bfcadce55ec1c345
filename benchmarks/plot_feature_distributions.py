"""Practice-window features per class on the simulated region, and an ablation.

    python benchmarks/plot_feature_distributions.py [--size medium] [--work /tmp/regenmap-features]

1. Simulates a region (regenmap.geo.simulate.simulate_region) and extracts its
   observations with the pipeline's extract stage, unless ``WORK/observations``
   already holds them (``--synthetic`` uses regenmap.features.testing instead).
2. Builds the features table and plots, per class of each target, the
   distributions of the practice-window features -> docs/img/feature_distributions.png.
3. Ablation: held-out macro-F1 of LightGBM with all features vs without the
   practice-window features (``fallow_*``, ``fallow56_*``, ``precrop_*``, ``cover_*``)
   vs without the calendar-quarter statistics (``*_s1``..``*_s4``), with GroupKFold
   over the simulated regions (whole regions held out). Each held-out region is
   also scored with all its dates moved by ``--shift-days`` (a later season, as in
   a colder or more southern region): features anchored on each field's own
   phenology should survive it, calendar quarters should not. Printed.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PNG = ROOT / "docs" / "img" / "feature_distributions.png"

PLOTS = {
    "tillage": ["fallow_ndti_min", "fallow_ndti_drop", "fallow56_ndti_min", "precrop_ndti_min",
                "fallow_bare_share"],
    "winter_cover": ["fallow_ndvi_integral", "fallow_green_days", "precrop_ndvi_integral",
                     "precrop_green_days", "cover_longest_bare_days"],
}
WINDOW_PREFIXES = ("fallow_", "fallow56_", "precrop_", "cover_")
CLASS_ORDER = {"tillage": ("conventional", "reduced", "no_till"),
               "winter_cover": ("bare", "cover_crop")}


def simulated_observations(work: Path, size: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observations and labels (field_id, region, tillage, winter_cover) of a simulated region."""
    import geopandas as gpd
    import yaml

    from regenmap.pipelines.config import builtin_config_path, load_config
    from regenmap.pipelines.layout import RunLayout, read_observations

    obs_dir = work / "observations"
    fields = work / "region" / "fields.gpkg"
    if not (obs_dir.is_dir() and any(obs_dir.glob("*.parquet")) and fields.is_file()):
        from regenmap.geo.simulate import simulate_region
        from regenmap.pipelines import extract

        t0 = time.perf_counter()
        simulate_region(work / "region", size=size, seed=seed)  # type: ignore[arg-type]
        print(f"simulated a {size} region in {time.perf_counter() - t0:.0f} s")
        template = yaml.safe_load(builtin_config_path("demo.yaml").read_text(encoding="utf-8"))
        template["seed"] = seed
        (work / "run.yaml").write_text(yaml.safe_dump(template, sort_keys=False), encoding="utf-8")
        t0 = time.perf_counter()
        extract(load_config(work / "run.yaml"))
        print(f"extracted observations in {time.perf_counter() - t0:.0f} s")
    obs = read_observations(RunLayout(obs_dir.parent))
    labels = pd.DataFrame(gpd.read_file(fields, layer="fields").drop(columns="geometry"))
    labels["field_id"] = labels["field_id"].astype(str)
    return obs, labels[["field_id", "region", "tillage", "winter_cover"]]


def synthetic(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observations from regenmap.features.testing, with 8 pseudo-regions."""
    from regenmap.features.testing import synthetic_observations

    obs, truth = synthetic_observations(n, seed=seed)
    truth["region"] = "R" + (np.arange(n) % 8 + 1).astype(str)
    return obs, truth[["field_id", "region", "tillage", "winter_cover"]]


def plot(table: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from regenmap.features.dictionary import feature_dictionary

    units = feature_dictionary().set_index("name")["unit"]
    fig, axes = plt.subplots(2, 5, figsize=(20, 7.5), constrained_layout=True)
    for row, (target, names) in enumerate(PLOTS.items()):
        present = set(table[target].dropna().unique())
        classes = [c for c in CLASS_ORDER.get(target, ()) if c in present] + \
            sorted(present - set(CLASS_ORDER.get(target, ())))
        for ax, name in zip(axes[row], names, strict=True):
            data = [table.loc[table[target] == c, name].dropna().to_numpy() for c in classes]
            parts = ax.violinplot([d if d.size else np.array([np.nan]) for d in data],
                                  showmedians=True, widths=0.8)
            for body in parts["bodies"]:  # type: ignore[attr-defined]
                body.set_alpha(0.55)
            ax.set_xticks(range(1, len(classes) + 1),
                          [f"{c}\n(n={d.size})" for c, d in zip(classes, data, strict=True)])
            ax.set_title(name, fontsize=10)
            ax.set_ylabel(units.get(name, ""))
            ax.grid(axis="y", alpha=0.3)
        axes[row][0].annotate(target, xy=(-0.35, 0.5), xycoords="axes fraction", rotation=90,
                              va="center", fontsize=12, fontweight="bold")
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def feature_sets(names: list[str]) -> dict[str, list[str]]:
    """The ablation's feature sets."""
    window = {c for c in names if c.startswith(WINDOW_PREFIXES)}
    quarters = {c for c in names if c.endswith(("_s1", "_s2", "_s3", "_s4"))}
    return {"all features": names,
            "without practice windows": [c for c in names if c not in window],
            "without calendar quarters": [c for c in names if c not in quarters]}


def ablation(table: pd.DataFrame, shifted: pd.DataFrame | None, feature_names: list[str],
             seed: int) -> pd.DataFrame:
    """Held-out macro-F1 per target and feature set (GroupKFold over regions).

    ``shifted`` (same fields and order) holds the features of the same observations
    with every date moved; when given, each held-out region is also scored on it
    (the model trained on unshifted regions): a later or earlier calendar.
    """
    import lightgbm as lgb
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GroupKFold

    groups = table["region"].to_numpy()
    n_splits = min(5, len(np.unique(groups)))
    rows = []
    for target in PLOTS:
        codes = table[target].astype("category").cat.codes.to_numpy()
        for label, cols in feature_sets(feature_names).items():
            pred = np.full(codes.shape, -1)
            pred_shift = np.full(codes.shape, -1)
            fold_f1 = []
            for train, test in GroupKFold(n_splits=n_splits).split(table, codes, groups):
                model = lgb.LGBMClassifier(n_estimators=150, learning_rate=0.06, num_leaves=15,
                                           min_child_samples=10, subsample=0.8, subsample_freq=1,
                                           colsample_bytree=0.8, random_state=seed, n_jobs=1,
                                           verbose=-1)
                model.fit(table.iloc[train][cols], codes[train])
                pred[test] = model.predict(table.iloc[test][cols])
                fold_f1.append(f1_score(codes[test], pred[test], average="macro"))
                if shifted is not None:
                    pred_shift[test] = model.predict(shifted.iloc[test][cols])
            row = {"target": target, "features": label, "n_features": len(cols),
                   "macro_f1": f1_score(codes, pred, average="macro"),
                   "fold_min": min(fold_f1), "fold_max": max(fold_f1)}
            if shifted is not None:
                row["macro_f1_shifted"] = f1_score(codes, pred_shift, average="macro")
            rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="medium", choices=["tiny", "small", "medium", "large"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/regenmap-features"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", type=int, default=0,
                    help="use N fields of regenmap.features.testing instead of the simulator")
    ap.add_argument("--out", type=Path, default=PNG)
    ap.add_argument("--no-ablation", action="store_true", help="only draw the figure")
    ap.add_argument("--shift-days", type=int, default=30,
                    help="also score held-out regions with every date moved by this many days")
    args = ap.parse_args()

    from regenmap.features.build import build_features
    from regenmap.features.dictionary import feature_dictionary

    if args.synthetic:
        obs, labels = synthetic(args.synthetic, args.seed)
        source = f"synthetic generator, {args.synthetic} fields"
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        obs, labels = simulated_observations(args.work, args.size, args.seed)
        source = f"simulated {args.size} region (seed {args.seed})"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feats = build_features(obs)
    print(f"features: {feats.shape[0]} fields x {feats.shape[1] - 1} columns "
          f"in {time.perf_counter() - t0:.1f} s from {len(obs):,} observation rows")
    table = feats.merge(labels, on="field_id", how="inner")
    print(table.groupby("region").size().rename("fields").to_frame().T.to_string())
    plot(table, args.out, f"Practice-window features per class - {source}")
    print(f"wrote {args.out}")
    if args.no_ablation:
        return
    names = feature_dictionary()["name"].tolist()
    shifted = None
    if args.shift_days:
        moved = obs.assign(time=obs["time"] + pd.Timedelta(days=args.shift_days))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f2 = build_features(moved, year=int(pd.Timestamp(obs["time"].min()).year))
        shifted = table[["field_id"]].merge(f2, on="field_id", how="left")
    res = ablation(table, shifted, names, args.seed)
    print("\nHeld-out macro-F1 (GroupKFold over regions, LightGBM; macro_f1_shifted: the "
          f"held-out regions' dates moved by {args.shift_days} days):")
    print(res.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
