"""Stress cases for the honesty of labels: a model meets data unlike its training data.

One small simulated region (A, two years) trains the models on its first year; a
fresh region (B, another seed) is predicted with them as users would (``model.path``,
no labels). B's observations are then shifted the way real data go wrong (NDTI +0.02
and +0.05: a soil or residue effect; every index x0.8: a wrong scale), and a model
trained without ``conventional`` meets conventionally tilled fields (a class never seen). A's second year
is the harmless case: new weather, same fields, same practices' signatures.

Each case reports, per target, the share of fields labelled ``ok``, the accuracy of
those labels against the simulator's truth, the card's held-out accuracy at the
threshold, and whether the run was flagged. Used by ``tests/models/test_shift_cases.py``
and ``benchmarks/bench_shift.py``.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import yaml

from regenmap.pipelines.stages.evaluate import evaluate
from regenmap.pipelines.stages.features import features
from regenmap.pipelines.stages.predict import predict
from regenmap.pipelines.stages.train import train
from regenmap.schema import WHY_RUN_FLAGGED

TARGETS = ("tillage", "winter_cover")
#: The tillage class the ``unseen_class`` model never sees.
UNSEEN = "conventional"


def _config(name: str, out: Path, fields: Path, scenes: Path, *, n_dates: int,
            **model: object) -> dict[str, object]:
    return {
        "name": name, "out_dir": str(out), "seed": 0,
        "fields": {"path": str(fields), "layer": "fields"},
        "scenes": {"path": str(scenes), "sensor": "sentinel2_l2a"},
        "extract": {"indices": ["NDVI", "EVI", "NDTI", "BSI", "NDMI"], "stats": ["mean", "median"],
                    "tile_size_px": 2048},
        "model": {"group_column": "region", "n_bootstrap": 50, "n_folds": 4,
                  "classes": {"tillage": ["conventional", "no_till", "reduced"],
                              "winter_cover": ["bare", "cover_crop"]},
                  "card": {"owner": "tests", "licence": "none", "citation": "none",
                           "contact": "none"},
                  **model},
        "outputs": {"maps": False},
        "cluster": {"n_workers": 1, "processes": False},
    }


def _write(path: Path, config: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def build(root: Path, *, size: str = "small", n_dates: int = 24, seeds: tuple[int, int] = (11, 12)
          ) -> dict[str, Path]:
    """Build every case, the drift warnings of shifted runs (expected) silenced.

    See :func:`_build`.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*differ.* from the training data",
                                category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*mix of predicted classes",
                                category=UserWarning)
        return _build(root, size=size, n_dates=n_dates, seeds=seeds)


def _build(root: Path, *, size: str, n_dates: int, seeds: tuple[int, int]) -> dict[str, Path]:
    """Simulate both regions and run every job; return the output folder of each case.

    Returns
    -------
    dict
        Case name -> output folder: ``new_year`` (A, season 2024), ``fresh_region``,
        ``ndti_plus_0.02``, ``ndti_plus_0.05``, ``indices_x0.8`` (B, shifted copies) and
        ``unseen_class`` (B predicted by a tillage model trained without ``conventional``).
    """
    from regenmap.geo.simulate import simulate_region
    from regenmap.pipelines.job import run

    a, b = root / "A", root / "B"
    if not (a / "simulation.json").is_file():
        # A third year gives the second season its following winter (fallow windows).
        simulate_region(a, size=size, seed=seeds[0], n_dates=n_dates, years=3)
    if not (b / "simulation.json").is_file():
        simulate_region(b, size=size, seed=seeds[1], n_dates=n_dates, years=2)
    labels = pd.read_csv(a / "labels.csv", dtype={"season": str})
    labels[labels["season"] == "2023"].to_csv(a / "labels_2023.csv", index=False)
    unseen = labels[labels["season"] == "2023"].copy()
    unseen.loc[unseen["tillage"] == UNSEEN, "tillage"] = None
    unseen.to_csv(a / "labels_2023_unseen.csv", index=False)
    plain = b / "fields_unlabelled.gpkg"
    if not plain.is_file():
        fields = pyogrio.read_dataframe(b / "fields.gpkg", layer="fields")
        pyogrio.write_dataframe(fields.drop(columns=list(TARGETS)), plain, layer="fields")

    out: dict[str, Path] = {}
    train_a = _config("A", root / "A-out", a / "fields.gpkg", a / "scenes", n_dates=n_dates,
                      labels={"path": str(a / "labels_2023.csv"), "season_column": "season"})
    train_a["seasons"] = {"map": ["2023", "2024"]}
    if not (root / "A-out" / ".regenmap" / "predict.done.json").is_file():
        run(_write(root / "A.yaml", train_a), quiet=True)
    out["new_year"] = root / "A-out"

    unseen_cfg = {**train_a, "name": "A-unseen", "out_dir": str(root / "A-unseen")}
    unseen_cfg["model"] = {**train_a["model"],  # type: ignore[dict-item]
                           "labels": {"path": str(a / "labels_2023_unseen.csv"),
                                      "season_column": "season"},
                           "classes": {"tillage": ["no_till", "reduced"],
                                       "winter_cover": ["bare", "cover_crop"]}}
    if not (root / "A-unseen" / "model" / "tillage" / "metadata.json").is_file():
        _copy_run(root / "A-out", root / "A-unseen")
        path = _write(root / "A-unseen.yaml", unseen_cfg)
        train(path)
        evaluate(path)

    fresh = _config("B", root / "B-out", plain, b / "scenes", n_dates=n_dates,
                    path=str(root / "A-out" / "model"))
    fresh["seasons"] = {"map": ["2023"]}
    if not (root / "B-out" / "predictions.parquet").is_file():
        run(_write(root / "B.yaml", fresh), quiet=True, stages=("extract", "features",
                                                                 "predict"))
    out["fresh_region"] = root / "B-out"
    for name, change in SHIFTS.items():
        folder = root / f"B-{name}"
        if not (folder / "predictions.parquet").is_file():
            _copy_run(root / "B-out", folder)
            _shift_observations(folder, change)
            path = _write(root / f"B-{name}.yaml", {**fresh, "name": f"B-{name}",
                                                    "out_dir": str(folder)})
            features(path)
            predict(path)
        out[name] = folder
    folder = root / "B-unseen"
    if not (folder / "predictions.parquet").is_file():
        _copy_run(root / "B-out", folder)
        model = dict(fresh["model"])  # type: ignore[call-overload]
        model["path"] = str(root / "A-unseen" / "model")
        model["classes"] = unseen_cfg["model"]["classes"]  # type: ignore[index]
        path = _write(root / "B-unseen.yaml", {**fresh, "name": "B-unseen", "out_dir": str(folder),
                                               "model": model})
        predict(path)
    out["unseen_class"] = folder
    return out


def _copy_run(src: Path, dst: Path) -> None:
    """Copy a run's observations and tables (not its models) to a new output folder."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("observations", ".regenmap"):
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name, dirs_exist_ok=True)
    for f in src.glob("*.parquet"):
        shutil.copy2(f, dst / f.name)
    if (src / "model").is_dir() and not (dst / "model").exists():
        shutil.copytree(src / "model", dst / "model")
    for marker in (dst / ".regenmap").glob("*.done.json"):
        marker.unlink()


def _add(columns: tuple[str, ...], value: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(obs: pd.DataFrame) -> pd.DataFrame:
        for c in columns:
            if c in obs.columns:
                obs[c] = obs[c] + value
        return obs
    return change


def _scale(prefixes: tuple[str, ...], factor: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(obs: pd.DataFrame) -> pd.DataFrame:
        for c in obs.columns:
            if c.startswith(prefixes) and obs[c].dtype.kind == "f":
                obs[c] = obs[c] * factor
        return obs
    return change


#: The shifts applied to region B's observations (per acquisition and field).
SHIFTS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "ndti_plus_0.02": _add(("ndti_mean", "ndti_median"), 0.02),
    "ndti_plus_0.05": _add(("ndti_mean", "ndti_median"), 0.05),
    "indices_x0.8": _scale(("ndvi_", "evi_", "ndti_", "bsi_", "ndmi_"), 0.8),
}


def _shift_observations(folder: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    for tile in sorted((folder / "observations").glob("tile=*.parquet")):
        table = pd.read_parquet(tile)
        change(table).to_parquet(tile, index=False)


def truth(root: Path, case: str) -> pd.DataFrame:
    """Return the simulator's truth of a case: ``field_id``, ``season`` (str) and the targets."""
    region, season = ("A", "2024") if case == "new_year" else ("B", "2023")
    labels = pd.read_csv(root / region / "labels.csv", dtype={"season": str})
    return labels[labels["season"] == season][["field_id", "season", *TARGETS]]


def card_accuracy(model_dir: Path, target: str) -> float:
    """Return the held-out accuracy of the labels a model gives (its card's operating point)."""
    meta = json.loads((model_dir / target / "metadata.json").read_text())
    return float(meta["decision"]["accuracy"])


def outcomes(root: Path, cases: dict[str, Path]) -> pd.DataFrame:
    """Score every case against the truth.

    Returns
    -------
    pandas.DataFrame
        One row per (case, target): ``n``, ``labelled_share`` (status ok), ``accuracy_ok``
        (of those labels; NaN when none), ``card_accuracy``, ``run_flagged`` (the drift
        report says the run is unlike training), ``within`` (accuracy of the ok labels
        within 0.05 of the card), ``honest`` (within, or flagged with every field withheld
        that would be wrong... see the test for the rule).
    """
    rows = []
    for case, folder in cases.items():
        pred = pd.read_parquet(folder / "predictions.parquet")
        models = root / ("A-unseen" if case == "unseen_class" else "A-out") / "model"
        t = truth(root, case)
        if case == "new_year":
            pred = pred[pred["season"].astype(str) == "2024"]
        merged = pred.merge(t.drop(columns="season"), on="field_id", suffixes=("", "_true"))
        drift = json.loads((folder / "drift.json").read_text())["drift"]
        for target in TARGETS:
            ok = merged[f"{target}_status"] == "ok"
            right = merged.loc[ok, target].astype(str) == merged.loc[ok, f"{target}_true"].astype(str)
            report = drift.get(target) or {}
            card = card_accuracy(models, target)
            acc = float(right.mean()) if ok.any() else float("nan")
            # What the labels withheld for the run's shift would have scored: was the flag
            # needed (accuracy below the card's) or a false alarm?
            probs = [c for c in merged.columns if c.startswith(f"{target}_p_")]
            best = merged[probs].to_numpy(dtype=float).argmax(axis=1)
            guess = np.asarray([c.removeprefix(f"{target}_p_") for c in probs], dtype=object)[best]
            would = ok | merged[f"{target}_why"].fillna("").str.startswith(
                WHY_RUN_FLAGGED).to_numpy()
            truth_ = merged[f"{target}_true"].astype(str).to_numpy()
            acc_would = (float((guess[would] == truth_[would]).mean()) if would.any()
                         else float("nan"))
            rows.append({"case": case, "target": target, "n": len(merged),
                         "labelled_share": float(ok.mean()), "accuracy_ok": acc,
                         "accuracy_unflagged": acc_would,
                         "card_accuracy": card,
                         "run_flagged": bool(report.get("run_flagged", False)),
                         "shift_score": report.get("shift_score"),
                         "shift_threshold": report.get("shift_threshold"),
                         "mix_score": (report.get("class_mix") or {}).get("score"),
                         "mix_threshold": (report.get("class_mix") or {}).get("threshold"),
                         "max_psi": report.get("max_psi"),
                         "within": bool(np.isnan(acc) or acc >= card - 0.05)})
    return pd.DataFrame(rows)
