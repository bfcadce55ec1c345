"""From pixels to per-field numbers: indices, zonal statistics, time series features.

Public names are imported on first use::

    import regenmap.features as rf
    table = rf.build_features(observations, rf.FeatureOptions(step_days=5))
    rf.feature_dictionary()          # every column, its unit and meaning
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regenmap._lazy import lazy_getattr

if TYPE_CHECKING:
    from regenmap.features.build import build_features
    from regenmap.features.dictionary import feature_dictionary
    from regenmap.features.indices import resolve_indices
    from regenmap.features.observe import ObserveSpec, build_tile_raster, observe_acquisition, tile_fields
    from regenmap.features.options import FeatureOptions
    from regenmap.features.timegrid import regularize
    from regenmap.features.user_series import normalise_observations
    from regenmap.features.windows import WindowOptions
    from regenmap.features.zonal import ZonalPass, zonal_stats

_EXPORTS = {
    "resolve_indices": "regenmap.features.indices",
    "zonal_stats": "regenmap.features.zonal",
    "ZonalPass": "regenmap.features.zonal",
    "ObserveSpec": "regenmap.features.observe",
    "observe_acquisition": "regenmap.features.observe",
    "tile_fields": "regenmap.features.observe",
    "build_tile_raster": "regenmap.features.observe",
    "regularize": "regenmap.features.timegrid",
    "build_features": "regenmap.features.build",
    "feature_dictionary": "regenmap.features.dictionary",
    "FeatureOptions": "regenmap.features.options",
    "WindowOptions": "regenmap.features.windows",
    "normalise_observations": "regenmap.features.user_series",
}

__all__ = [
    "FeatureOptions", "ObserveSpec", "WindowOptions", "ZonalPass", "build_features",
    "build_tile_raster", "feature_dictionary", "normalise_observations", "observe_acquisition",
    "regularize", "resolve_indices", "tile_fields", "zonal_stats",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS)
