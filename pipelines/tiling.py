"""Tile plan: every field is owned by exactly one tile.

Tiles are squares on the reference grid (the finest grid of the most frequent
acquisition grid), laid on that grid's pixel lattice in its CRS: the grid is cut
into the fewest equal tiles no larger than ``tile_size_px`` (edges rounded up to
256 px, a common GeoTIFF block size), so a grid that fits in one tile is not cut
at all (every cut costs the blocks along it decoded twice: a read window reaches
past its tile) and no thin remainder tiles are left. A field belongs to the tile
containing its representative point (:func:`shapely.point_on_surface`, always
inside the polygon), so no field is
counted twice and none is cut at a seam: a tile's read window is the bounding
box of its own fields, which may reach past the tile square.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from regenmap.geo.catalog import Acquisition
from regenmap.geo.grid import GridSpec


@dataclass(frozen=True)
class Tile:
    """One tile of the plan.

    Attributes
    ----------
    id
        Stable name, ``r<row>_c<col>`` on the reference lattice (may be negative).
    rows
        (n,) int64 positions of the tile's fields in the fields table.
    """

    id: str
    rows: np.ndarray


@dataclass(frozen=True)
class TilePlan:
    """The tiles of a run and the lattice they were laid on.

    Attributes
    ----------
    crs
        CRS of the lattice.
    origin
        (x, y) of the lattice's upper-left corner, in ``crs`` units.
    size
        Tile edge in ``crs`` units.
    tiles
        Tiles with at least one field, sorted by id.
    """

    crs: str
    origin: tuple[float, float]
    size: float
    tiles: tuple[Tile, ...]


def reference_grid(acquisitions: list[Acquisition], bands: list[str]) -> GridSpec:
    """Return the most frequent finest grid among acquisitions (ties: the first seen)."""
    grids = [a.grid_for(bands) for a in acquisitions]
    counts = Counter(grids)
    return max(grids, key=lambda g: counts[g])


def tile_edge_px(grid: GridSpec, tile_size_px: int) -> int:
    """Edge of the plan's tiles in pixels of ``grid``.

    The fewest tiles of at most ``tile_size_px`` that cover the grid's larger side,
    made equal, with the edge rounded up to a multiple of 256 px when tiles are at
    least 1024 px (never above ``tile_size_px``).
    """
    extent = max(grid.width, grid.height, 1)
    n = -(-extent // tile_size_px)
    edge = -(-extent // n)
    if tile_size_px >= 1024:
        edge = -(-edge // 256) * 256
    return int(min(edge, tile_size_px))


def plan_tiles(geoms: gpd.GeoSeries, grid: GridSpec, tile_size_px: int) -> TilePlan:
    """Assign every field to exactly one tile of ``grid``'s lattice.

    Parameters
    ----------
    geoms
        Field geometries (any CRS; reprojected to ``grid.crs`` for the assignment only).
        Empty geometries go to tile ``r0_c0``.
    grid
        Reference grid; its pixel size and origin define the lattice.
    tile_size_px
        Largest tile edge in pixels of ``grid`` (see :func:`tile_edge_px`).

    Returns
    -------
    TilePlan
    """
    size = tile_edge_px(grid, tile_size_px) * grid.resolution
    x0, y0 = grid.transform.c, grid.transform.f
    local = geoms.to_crs(grid.crs) if geoms.crs is not None else geoms
    arr = local.to_numpy()
    usable = ~(shapely.is_missing(arr) | shapely.is_empty(arr))
    xs = np.full(len(arr), x0, dtype=np.float64)
    ys = np.full(len(arr), y0, dtype=np.float64)
    pts = shapely.point_on_surface(arr[usable])
    xs[usable] = shapely.get_x(pts)
    ys[usable] = shapely.get_y(pts)
    cols = np.floor((xs - x0) / size).astype(np.int64)
    rows = np.floor((y0 - ys) / size).astype(np.int64)
    keys = rows * (1 << 32) + cols
    order = np.argsort(keys, kind="stable")
    uniq, starts = np.unique(keys[order], return_index=True)
    bounds = [*starts.tolist(), len(order)]
    tiles = []
    for k in range(len(uniq)):
        members = order[bounds[k]:bounds[k + 1]]
        r, c = int(rows[members[0]]), int(cols[members[0]])
        tiles.append(Tile(id=f"r{r}_c{c}", rows=np.sort(members)))
    tiles.sort(key=lambda t: t.id)
    return TilePlan(crs=grid.crs, origin=(x0, y0), size=size, tiles=tuple(tiles))


def plan_job(acquisitions: list[Acquisition], geoms: gpd.GeoSeries, bands: list[str],
             tile_size_px: int) -> tuple[GridSpec, TilePlan]:
    """Return the reference grid of a job's acquisitions and its tile plan.

    Parameters
    ----------
    acquisitions
        The job's acquisitions.
    geoms
        Field geometries.
    bands
        Bands the extraction reads (their finest grid defines the reference grid).
    tile_size_px
        Largest tile edge, pixels.
    """
    grid = reference_grid(acquisitions, bands)
    return grid, plan_tiles(geoms, grid, tile_size_px)


def tile_window(grid: GridSpec, geoms: gpd.GeoSeries) -> GridSpec:
    """Return the window of ``grid`` covering some fields (a tile's read window)."""
    local = geoms.to_crs(grid.crs) if geoms.crs is not None else geoms
    xmin, ymin, xmax, ymax = (float(v) for v in local.total_bounds)
    return grid.window_grid(grid.window_of_bounds((xmin, ymin, xmax, ymax)))
