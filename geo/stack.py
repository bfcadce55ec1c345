"""Acquisitions on one grid -> a labelled ``(time, y, x)`` stack of reflectance, for exploring.

:func:`read_stack` is the scene reader for people (notebooks, checks): it reads
the chosen bands of the chosen acquisitions on one target grid, applies the
same scale, offset, nodata and quality-mask rules as the extraction
(:func:`regenmap.geo.raster_read.to_reflectance`,
:func:`~regenmap.geo.raster_read.usable_pixels`), and returns an
:class:`xarray.Dataset`. The extraction itself never builds such a stack: it
reduces each acquisition strip by strip.

Example
-------
>>> ds = read_stack(acquisitions, tile_grid, ["red", "nir"])          # doctest: +SKIP
>>> ((ds.nir - ds.red) / (ds.nir + ds.red)).mean("time").plot()        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from regenmap.errors import InputError
from regenmap.geo.catalog import Acquisition
from regenmap.geo.grid import GridSpec
from regenmap.geo.raster_read import mask_codes, read_asset, to_reflectance, usable_pixels


def read_stack(acquisitions: Sequence[Acquisition], grid: GridSpec, bands: Sequence[str], *,
               masked: bool = True) -> xr.Dataset:
    """Read bands of several acquisitions on one grid as a labelled stack.

    Parameters
    ----------
    acquisitions
        Acquisitions to read, in the order wanted (usually by time); each must be in
        ``grid``'s CRS.
    grid
        Target grid (a tile window of the acquisitions' grid); coarser bands are
        brought to it by the nearest rule.
    bands
        STAC common names (``red``, ``nir``...); an acquisition lacking one gives NaN.
    masked
        Set pixels that the scene's quality mask drops (clouds, shadows...) to NaN.

    Returns
    -------
    xarray.Dataset
        One float32 variable per band over ``(time, y, x)`` (surface reflectance after
        scale/offset; NaN = nodata or masked), plus ``valid`` (bool, kept by the quality
        mask; all True without a mask). Coordinates ``time`` (datetime64[ns]), ``y``/``x``
        (pixel centres in CRS units), ``acquisition_id`` and ``sensor`` along ``time``;
        ``attrs`` hold ``crs``, ``transform`` (GDAL order) and ``resolution_m``.

    Raises
    ------
    InputError
        If no acquisition is given, or a band is in none of them.
    CRSError
        If an acquisition is in another CRS than ``grid``.
    """
    acqs = list(acquisitions)
    if not acqs:
        raise InputError("no acquisition to read: the selection is empty")
    available = sorted({b for a in acqs for b in a.assets})
    unknown = [b for b in bands if b not in available]
    if unknown:
        raise InputError(f"band(s) {', '.join(unknown)} are in none of the acquisitions; "
                         f"they have {', '.join(available)}")
    shape = (len(acqs), grid.height, grid.width)
    data = {b: np.full(shape, np.nan, dtype=np.float32) for b in bands}
    valid = np.ones(shape, dtype=bool)
    for k, acq in enumerate(acqs):
        for b in bands:
            if b in acq.assets:
                data[b][k] = to_reflectance(read_asset(acq.assets[b], grid), acq.assets[b])
        if masked and acq.mask is not None and acq.mask_spec is not None:
            codes = mask_codes(read_asset(acq.mask, grid))
            valid[k] = usable_pixels(codes, acq.mask_spec.valid_lookup())
            for b in bands:
                data[b][k][~valid[k]] = np.nan
    xs, ys = grid.pixel_centres()
    coords = {"time": pd.to_datetime([a.time for a in acqs]).to_numpy(dtype="datetime64[ns]"),
              "y": ys, "x": xs, "acquisition_id": ("time", [a.id for a in acqs]),
              "sensor": ("time", [a.sensor for a in acqs])}
    variables = {b: xr.DataArray(data[b], dims=("time", "y", "x"),
                                 attrs={"long_name": f"{b} surface reflectance", "units": "1"})
                 for b in bands}
    variables["valid"] = xr.DataArray(valid, dims=("time", "y", "x"),
                                      attrs={"long_name": "kept by the quality mask"})
    return xr.Dataset(variables, coords=coords,
                      attrs={"crs": grid.crs, "transform": tuple(grid.transform.to_gdal()),
                             "resolution_m": grid.resolution})
