"""regenmap: map regenerative farming practices per field from satellite time series.

The distribution is one namespace whose layers live in sibling folders of the
repository and are installed as sub-packages:

- :mod:`regenmap.geo` -- where pixels and polygons come from and go to;
- :mod:`regenmap.features` -- pixels to per-field numbers;
- :mod:`regenmap.models` -- numbers to labels, scores and explanations;
- :mod:`regenmap.maps` -- what people look at;
- :mod:`regenmap.pipelines` -- configuration, Dask, stages and the CLI.

Importing :mod:`regenmap` points numba's on-disk cache outside the installed
package (:func:`regenmap.cachedir.use_numba_cache_dir`).
"""

from regenmap._version import __version__
from regenmap.cachedir import use_numba_cache_dir
from regenmap.errors import RegenmapError

use_numba_cache_dir()

__all__ = ["RegenmapError", "__version__"]
