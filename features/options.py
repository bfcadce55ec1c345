"""Every knob of the features layer, as one frozen value with units.

:class:`FeatureOptions` travels from the run configuration (``features:``
section, which is built from the same fields) to :func:`~regenmap.features.build.build_features`
and :func:`~regenmap.features.timegrid.regularize`; it is checked once, when it is
made, and recorded in the features table's provenance.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from regenmap.errors import ConfigError
from regenmap.features.timegrid import Composite, Smoothing, Step, parse_year_start
from regenmap.features.windows import WindowOptions

#: Statistics a series may be built from: those of the extraction, and ``pNN`` percentiles.
STAT_PATTERN = r"^(mean|median|std|min|max|count|p\d{1,2})$"


def _plain(mapping: Mapping[str, Mapping[str, float]] | None) -> dict[str, dict[str, float]]:
    return {str(k): {str(i): float(v) for i, v in m.items()} for k, m in (mapping or {}).items()}


@dataclass(frozen=True)
class FeatureOptions:
    """How observations become a regular time grid and features.

    Attributes
    ----------
    step_days
        Step of the regular time grid in days (5, 10, 16 ...), or ``"monthly"``.
    min_valid_fraction
        Observations whose valid (cloud-free) share of the field is below this (0-1)
        are dropped and counted.
    max_gap_days
        Longest gap, in days, bridged by linear interpolation; longer gaps stay NaN.
    year_start
        ``MM-DD`` first day of the agricultural year the features describe.
    stat
        Per-acquisition statistic the series are built from (``<index>_<stat>`` columns):
        ``mean``, ``median``, ``std``, ``min``, ``max``, ``count`` or ``pNN``.
    composite
        How observations in one grid step combine: ``mean`` weighted by valid fraction,
        ``median``, or ``max_ndvi`` (the greenest observation).
    smoothing
        ``none``, ``savgol`` (Savitzky-Golay) or ``whittaker`` smoothing of the grid.
    smoothing_window_days
        Window of the Savitzky-Golay filter, days.
    whittaker_lambda
        Roughness penalty of the Whittaker smoother (unitless, larger = smoother).
    sensor_offsets
        ``{sensor: {index: offset}}`` added to that sensor's index values before
        compositing (harmonisation between sensors, index units).
    detect_fraction
        Share of a field's NDVI range above its minimum that starts a growing cycle (0-1).
    amplitude_fraction
        Share of the amplitude that marks start and end of season (0-1).
    min_amplitude
        Smallest NDVI amplitude (peak minus valley) of a growing cycle.
    windows
        Thresholds of the practice windows (fallow, pre-crop).
    """

    step_days: Step = 10
    min_valid_fraction: float = 0.6
    max_gap_days: int = 45
    year_start: str = "01-01"
    stat: str = "mean"
    composite: Composite = "mean"
    smoothing: Smoothing = "none"
    smoothing_window_days: float = 50.0
    whittaker_lambda: float = 2.0
    sensor_offsets: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    detect_fraction: float = 0.4
    amplitude_fraction: float = 0.2
    min_amplitude: float = 0.1
    windows: WindowOptions = field(default_factory=WindowOptions)

    def __post_init__(self) -> None:
        step = self.step_days
        if isinstance(step, bool) or not (step == "monthly" or (isinstance(step, int) and 1 <= step <= 366)):
            raise ConfigError(f"step_days={step!r}: use whole days >= 1 (5, 10, 16 ...) or 'monthly'")
        if not 0 <= self.min_valid_fraction <= 1:
            raise ConfigError(f"min_valid_fraction={self.min_valid_fraction}: use a value in [0, 1]")
        if self.max_gap_days < 0:
            raise ConfigError(f"max_gap_days={self.max_gap_days}: use a value >= 0")
        parse_year_start(self.year_start)
        if not re.match(STAT_PATTERN, str(self.stat)):
            raise ConfigError(f"stat={self.stat!r}: use mean, median, std, min, max, count or "
                              "a percentile such as p10")
        if self.composite not in ("mean", "median", "max_ndvi"):
            raise ConfigError(f"composite={self.composite!r}: use 'mean', 'median' or 'max_ndvi'")
        if self.smoothing not in ("none", "savgol", "whittaker"):
            raise ConfigError(f"smoothing={self.smoothing!r}: use 'none', 'savgol' or 'whittaker'")
        if self.smoothing_window_days <= 0 or self.whittaker_lambda <= 0:
            raise ConfigError("smoothing_window_days and whittaker_lambda must be > 0")
        if not (0 < self.detect_fraction < 1 and 0 < self.amplitude_fraction < 1):
            raise ConfigError("detect_fraction and amplitude_fraction must lie strictly between "
                              f"0 and 1, got {self.detect_fraction} and {self.amplitude_fraction}")
        if self.min_amplitude < 0:
            raise ConfigError(f"min_amplitude={self.min_amplitude}: use a value >= 0")
        object.__setattr__(self, "sensor_offsets", _plain(self.sensor_offsets))

    def record(self) -> dict[str, Any]:
        """Return the options as plain data, for provenance."""
        return asdict(self)
