"""PNG plots of an evaluation report.

Figures are built as :class:`matplotlib.figure.Figure` objects, outside pyplot:
no display is needed, and importing this module or writing plots leaves the
user's matplotlib backend (e.g. inline plots in a notebook) as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from regenmap.io import atomic_path
from regenmap.models.train import TrainedModel

_DPI = 110


def _axes(width_in: float, height_in: float) -> tuple[Figure, Axes]:
    """Return a new figure of this size (inches) with one axes, not registered with pyplot."""
    fig = Figure(figsize=(width_in, height_in))
    return fig, fig.subplots()


def _save(fig: Figure, path: Path) -> Path:
    """Save a figure as PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=_DPI, bbox_inches="tight", format="png")
    return path


def reliability_plot(report: dict[str, Any]) -> Figure:
    """Reliability diagram: observed accuracy against mean confidence per bin."""
    fig, ax = _axes(4.8, 4.2)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
    cal = report["calibration"]
    for key, colour in (("uncalibrated", "tab:blue"), ("calibrated", "tab:orange")):
        rel = cal.get(key)
        if not rel:
            continue
        c = [b["confidence"] for b in rel["bins"]]
        a = [b["accuracy"] for b in rel["bins"]]
        n = np.array([b["n"] for b in rel["bins"]], dtype=float)
        label = f"{key if key == 'uncalibrated' else cal['method']} (ECE {rel['ece']:.3f})"
        ax.plot(c, a, marker="o", color=colour, label=label)
        ax.scatter(c, a, s=20 + 180 * n / max(n.max(), 1), color=colour, alpha=0.3)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean confidence (max probability)",
           ylabel="held-out accuracy", title=f"{report['target']}: reliability")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def coverage_plot(report: dict[str, Any]) -> Figure:
    """Share of fields labelled and their accuracy as the confidence threshold rises."""
    cov = report["coverage"]
    t = [c["threshold"] for c in cov]
    fig, ax = _axes(4.8, 4.2)
    ax.plot(t, [c["coverage"] for c in cov], color="tab:green", label="coverage (share labelled)")
    ax.plot(t, [np.nan if c["accuracy"] is None else c["accuracy"] for c in cov],
            color="tab:purple", label="accuracy of labelled fields")
    op = report["operating_point"]
    ax.axvline(op["threshold"], color="0.4", ls=":", lw=1,
               label=f"threshold {op['threshold']:.2f}: {op['coverage']:.0%} labelled")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="confidence threshold",
           title=f"{report['target']}: coverage vs accuracy")
    ax.legend(loc="lower left", fontsize=8)
    return fig


def confusion_plot(report: dict[str, Any]) -> Figure:
    """Row-normalised held-out confusion matrix, annotated with counts."""
    classes = report["classes"]
    cm = np.asarray(report["overall"]["confusion"], dtype=float)
    rate = cm / np.where(cm.sum(axis=1, keepdims=True) > 0, cm.sum(axis=1, keepdims=True), 1)
    k = len(classes)
    fig, ax = _axes(1.3 * k + 2.2, 1.1 * k + 1.6)
    ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{rate[i, j]:.0%}\n({int(cm[i, j])})", ha="center", va="center",
                    fontsize=8, color="white" if rate[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), classes, rotation=30, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set(xlabel="predicted", ylabel="true (held out)", title=f"{report['target']}: confusion")
    return fig


def groups_plot(report: dict[str, Any]) -> Figure:
    """Held-out accuracy per subgroup of every factor, with 95 % bootstrap intervals."""
    dis = report["disaggregated"]["factors"]
    rows: list[tuple[str, float, list[float | None] | None, int]] = []
    for factor, groups in dis.items():
        for g, m in groups.items():
            if m["accuracy"] is not None:
                rows.append((f"{factor}: {g}", m["accuracy"], m["accuracy_ci"], m["n"]))
    fig, ax = _axes(5.6, 0.32 * max(len(rows), 3) + 1.2)
    y = np.arange(len(rows))
    acc = np.array([r[1] for r in rows])
    lo = np.array([acc[i] - (r[2][0] if r[2] and r[2][0] is not None else acc[i])
                   for i, r in enumerate(rows)])
    hi = np.array([(r[2][1] if r[2] and r[2][1] is not None else acc[i]) - acc[i]
                   for i, r in enumerate(rows)])
    ax.errorbar(acc, y, xerr=[lo, hi], fmt="o", color="tab:blue", ecolor="0.5", capsize=2)
    overall = report["overall"]["accuracy"]
    ax.axvline(overall, color="tab:red", ls="--", lw=1, label=f"overall {overall:.2f}")
    ax.set_yticks(y, [f"{r[0]} (n={r[3]})" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.02), xlabel="held-out accuracy",
           title=f"{report['target']}: accuracy by group and field size")
    ax.legend(loc="lower left", fontsize=8)
    return fig


def importance_plot(model: TrainedModel, top: int = 15) -> Figure:
    """Mean |contribution| of the most influential features."""
    items = sorted(model.importance.items(), key=lambda kv: -kv[1])[:top]
    fig, ax = _axes(5.6, 0.3 * max(len(items), 3) + 1.2)
    ax.barh(range(len(items)), [v for _, v in items], color="tab:gray")
    ax.set_yticks(range(len(items)), [k for k, _ in items], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="mean |contribution| (log-odds)", title=f"{model.target}: global importance")
    return fig


def write_plots(report: dict[str, Any], model: TrainedModel, out_dir: Path) -> dict[str, Path]:
    """Write every plot of a target as ``<out_dir>/<target>_<kind>.png``.

    Returns
    -------
    dict
        Plot kind (``reliability``, ``coverage``, ``confusion``, ``groups``,
        ``importance``) -> PNG path.
    """
    t = report["target"]
    figures = {
        "reliability": reliability_plot(report),
        "coverage": coverage_plot(report),
        "confusion": confusion_plot(report),
        "groups": groups_plot(report),
        "importance": importance_plot(model),
    }
    return {k: _save(fig, Path(out_dir) / f"{t}_{k}.png") for k, fig in figures.items()}
