"""Probability calibration fitted on held-out (out-of-fold) raw scores.

A calibration is plain JSON-serialisable data so it can live in metadata.json:
``{"method": "none"}``, ``{"method": "temperature", "temperature": T}`` or
``{"method": "isotonic", "x": [[...] per class], "y": [[...] per class]}``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.isotonic import IsotonicRegression

from regenmap.errors import ModelError

Method = Literal["none", "temperature", "isotonic"]


def softmax(raw: np.ndarray) -> np.ndarray:
    """Row-wise softmax of raw scores (n, k) -> probabilities (n, k) summing to 1."""
    z = raw - raw.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_calibration(raw: np.ndarray, y: np.ndarray, method: str) -> dict[str, Any]:
    """Fit a calibration map on out-of-fold raw scores.

    Parameters
    ----------
    raw
        float array (n, k) of held-out raw (log-odds) scores.
    y
        int array (n,) of true class indices.
    method
        ``none``, ``temperature`` (one scalar T dividing the raw scores, fitted by
        minimising the log loss) or ``isotonic`` (one-vs-rest isotonic maps, renormalised).

    Raises
    ------
    ModelError
        For an unknown method.
    """
    if method == "none":
        return {"method": "none"}
    if method == "temperature":
        idx = np.arange(len(y))

        def nll(log_t: float) -> float:
            p = softmax(raw / np.exp(log_t))
            return float(-np.mean(np.log(np.clip(p[idx, y], 1e-12, None))))

        res = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
        return {"method": "temperature", "temperature": float(np.exp(res.x))}
    if method == "isotonic":
        p = softmax(raw)
        xs, ys = [], []
        for k in range(raw.shape[1]):
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            iso.fit(p[:, k], (y == k).astype(float))
            xs.append(iso.X_thresholds_.tolist())
            ys.append(iso.y_thresholds_.tolist())
        return {"method": "isotonic", "x": xs, "y": ys}
    raise ModelError(f"unknown calibration method {method!r}; use none, temperature or isotonic")


def apply_calibration(raw: np.ndarray, calibration: dict[str, Any] | None) -> np.ndarray:
    """Turn raw scores (n, k) into calibrated probabilities (n, k) summing to 1."""
    cal = calibration or {"method": "none"}
    method = cal.get("method", "none")
    if method == "none":
        return softmax(raw)
    if method == "temperature":
        return softmax(raw / float(cal["temperature"]))
    if method == "isotonic":
        p = softmax(raw)
        out = np.empty_like(p)
        for k in range(p.shape[1]):
            out[:, k] = np.interp(p[:, k], cal["x"][k], cal["y"][k])
        total = out.sum(axis=1, keepdims=True)
        # A field every map sends to 0 keeps its uncalibrated probabilities.
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), p)
    raise ModelError(f"model metadata holds an unknown calibration method {method!r}")
