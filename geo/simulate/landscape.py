"""Field polygons, roads, tracks, hedges and ponds of the simulated landscape.

Construction (all in metres, EPSG:32631):

1. A jittered grid of main roads (asphalt, 6-8 m) and farm tracks (gravel, 4 m),
   bent by a smooth displacement field, cuts the area into blocks.
2. Each block is partitioned into fields by a Voronoi tessellation of seeds drawn in
   a block-specific rotated and stretched frame (fields within a block share an
   orientation and are elongated, as in open-field landscapes), after one Lloyd
   relaxation step. The mean field area varies log-normally between blocks.
3. Some neighbouring cells are merged (non-convex fields); internal boundaries are
   bent by the same displacement field so shared edges stay shared.
4. Fields are shrunk by half the width of what separates them: a 2-4 m grass margin,
   or a 6-8 m hedgerow (drawn as trees) on some fields' boundaries.
5. A few large fields get a hole (a copse or a pond); a few are crossed by a gravel
   track and become two-part MultiPolygons; fields below 0.5 ha become grassland and
   fields above 80 ha are split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from regenmap.geo.simulate.noise import warp_coords

MIN_FIELD_HA = 0.5
MAX_FIELD_HA = 80.0
_M2_PER_HA = 10_000.0


@dataclass(frozen=True)
class Landscape:
    """Vector layout of the simulated area.

    Attributes
    ----------
    fields
        Field geometries (Polygon or MultiPolygon), not yet in id order.
    roads
        Asphalt road surfaces (polygons).
    tracks
        Gravel track surfaces (polygons).
    hedges
        Hedgerows and copses (polygons).
    ponds
        Water surfaces (polygons).
    """

    fields: NDArray[np.object_]
    roads: NDArray[np.object_]
    tracks: NDArray[np.object_]
    hedges: NDArray[np.object_]
    ponds: NDArray[np.object_]


def _polyline(rng: np.random.Generator, start: NDArray[np.float64], end: NDArray[np.float64],
              wobble_m: float) -> BaseGeometry:
    """Return a line from ``start`` to ``end`` with a few randomly displaced inner vertices."""
    t = np.linspace(0.0, 1.0, 7)[:, None]
    pts = start[None, :] * (1 - t) + end[None, :] * t
    direction = (end - start) / np.linalg.norm(end - start)
    normal = np.array([-direction[1], direction[0]])
    offsets = np.asarray(rng.normal(0.0, wobble_m, t.shape[0]))
    return shapely.LineString(pts + offsets[:, None] * normal[None, :])


def _road_network(rng: np.random.Generator, bounds: tuple[float, float, float, float],
                  block_m: float) -> tuple[list[BaseGeometry], list[BaseGeometry]]:
    """Return (asphalt road surfaces, gravel track surfaces) crossing the whole area."""
    xmin, ymin, xmax, ymax = bounds
    roads: list[BaseGeometry] = []
    tracks: list[BaseGeometry] = []
    for axis in (0, 1):
        lo, hi = (xmin, xmax) if axis == 0 else (ymin, ymax)
        olo, ohi = (ymin, ymax) if axis == 0 else (xmin, xmax)
        pos = lo + block_m * rng.uniform(0.5, 0.9)
        while pos < hi - 0.3 * block_m:
            a = np.array([pos + rng.normal(0, 0.1 * block_m), olo - 50.0])
            b = np.array([pos + rng.normal(0, 0.1 * block_m), ohi + 50.0])
            if axis == 1:
                a, b = a[::-1].copy(), b[::-1].copy()
            line = _polyline(rng, a, b, 0.04 * block_m)
            if rng.random() < 0.6:
                roads.append(line.buffer(rng.uniform(3.0, 4.0), quad_segs=2))
            else:
                tracks.append(line.buffer(2.0, quad_segs=2))
            pos += block_m * rng.uniform(0.7, 1.3)
    return roads, tracks


def _block_cells(rng: np.random.Generator, block: BaseGeometry, mean_area_m2: float
                 ) -> list[BaseGeometry]:
    """Partition one block into Voronoi cells elongated along a random direction."""
    n = round(block.area / mean_area_m2)
    if n <= 1:
        return [block]
    theta = rng.uniform(0, np.pi)
    stretch = rng.uniform(1.0, 2.5)
    c, s = np.cos(theta), np.sin(theta)
    cx, cy = block.centroid.x, block.centroid.y
    # forward: rotate by -theta around the centroid, squeeze the long axis by `stretch`
    fwd = [c / stretch, s / stretch, -s, c,
           -(c * cx + s * cy) / stretch, s * cx - c * cy]
    inv = [c * stretch, -s, s * stretch, c, cx, cy]
    local = shapely.affinity.affine_transform(block, fwd)
    minx, miny, maxx, maxy = local.bounds
    pts = np.empty((0, 2))
    while pts.shape[0] < n:
        cand = rng.uniform([minx, miny], [maxx, maxy], (4 * n, 2))
        inside = shapely.contains_xy(local, cand[:, 0], cand[:, 1])
        pts = np.vstack([pts, cand[inside]])
    pts = pts[:n]
    for _ in range(2):  # Lloyd relaxation: fewer slivers
        cells = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=local.envelope,
                                         ordered=True)
        parts = shapely.intersection(np.asarray(shapely.get_parts(cells)), local)
        parts = parts[~shapely.is_empty(parts)]
        pts = shapely.get_coordinates(shapely.centroid(parts))
    return list(shapely.affinity.affine_transform(g, inv) for g in parts)


def _merge_neighbours(rng: np.random.Generator, cells: list[BaseGeometry], p_merge: float,
                      max_area_m2: float) -> list[BaseGeometry]:
    """Merge some pairs of touching cells into single, often non-convex, fields."""
    if len(cells) < 2:
        return cells
    arr = np.asarray(cells, dtype=object)
    tree = shapely.STRtree(arr)
    left, right = tree.query(arr, predicate="intersects")
    keep = left < right
    pairs = np.stack([left[keep], right[keep]], axis=1)
    pairs = pairs[rng.permutation(pairs.shape[0])]
    used = np.zeros(arr.size, dtype=bool)
    merged: list[BaseGeometry] = []
    for i, j in pairs:
        if used[i] or used[j] or rng.random() >= p_merge:
            continue
        union = shapely.union(arr[i], arr[j]).buffer(0.01).buffer(-0.01)
        if union.area > max_area_m2 or union.geom_type != "Polygon":
            continue
        used[i] = used[j] = True
        merged.append(union)
    return merged + [g for g, u in zip(arr, used, strict=True) if not u]


def _warp_geoms(geoms: NDArray[np.object_], seed_rng: np.random.Generator, amplitude_m: float
                ) -> NDArray[np.object_]:
    """Bend all geometries by one shared smooth displacement field."""
    state = seed_rng.integers(0, 2**63)

    def fn(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        return warp_coords(xy, np.random.default_rng(state), amplitude_m=amplitude_m,
                           wavelength_m=(400.0, 1500.0))

    dense = shapely.segmentize(geoms, 25.0)
    return np.asarray(shapely.transform(dense, fn))


def _split_large(rng: np.random.Generator, geom: BaseGeometry) -> list[BaseGeometry]:
    """Cut a field larger than MAX_FIELD_HA across its long axis until all parts fit."""
    if geom.area <= MAX_FIELD_HA * _M2_PER_HA:
        return [geom]
    rect = geom.minimum_rotated_rectangle
    xy = np.asarray(rect.exterior.coords)[:4]
    e1, e2 = xy[1] - xy[0], xy[2] - xy[1]
    axis = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
    normal = np.array([-axis[1], axis[0]]) / np.hypot(*axis)
    c = np.asarray(geom.centroid.coords[0]) + axis * rng.uniform(-0.1, 0.1)
    half = 2.0 * np.hypot(*axis)
    cut = shapely.LineString([c - normal * half, c + normal * half]).buffer(2.0, quad_segs=1)
    pieces = shapely.get_parts(geom.difference(cut))
    out: list[BaseGeometry] = []
    for p in pieces:
        out.extend(_split_large(rng, p))
    return out


def _add_hole(rng: np.random.Generator, field: BaseGeometry
              ) -> tuple[BaseGeometry, BaseGeometry | None]:
    """Put a copse or pond inside a field; return (field with hole, hole surface)."""
    radius = rng.uniform(15.0, 35.0)
    inner = field.buffer(-(radius + 15.0))
    if inner.is_empty:
        return field, None
    centre = inner.representative_point()
    blob = centre.buffer(radius, quad_segs=4)
    blob = shapely.affinity.scale(blob, rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4))
    if not field.buffer(-5.0).contains(blob):
        return field, None
    return field.difference(blob.buffer(3.0, quad_segs=2)), blob


def _cut_by_track(rng: np.random.Generator, field: BaseGeometry
                  ) -> tuple[BaseGeometry, BaseGeometry | None]:
    """Cross a field by a straight gravel track; return (two-part field, track surface)."""
    c = np.asarray(field.representative_point().coords[0])
    ang = rng.uniform(0, np.pi)
    d = np.array([np.cos(ang), np.sin(ang)]) * 2000.0
    track = shapely.LineString([c - d, c + d]).buffer(2.0, quad_segs=1).intersection(field)
    cut = field.difference(track.buffer(0.5, quad_segs=1))
    parts = shapely.get_parts(cut)
    if len(parts) != 2 or min(p.area for p in parts) < 0.25 * _M2_PER_HA:
        return field, None
    return shapely.multipolygons(parts), track


def build_landscape(rng: np.random.Generator, *, bounds: tuple[float, float, float, float],
                    target_fields: int, block_m: float) -> Landscape:
    """Draw the vector layout of the area.

    Parameters
    ----------
    rng
        Source of all randomness (deterministic for a seed).
    bounds
        (xmin, ymin, xmax, ymax) of the area in metres.
    target_fields
        Approximate number of fields wanted.
    block_m
        Typical spacing between roads and tracks (metres).

    Returns
    -------
    Landscape
        Fields and the surfaces between them.
    """
    area_box = shapely.box(*bounds)
    roads, tracks = _road_network(rng, bounds, block_m)
    roads = list(_warp_geoms(np.asarray(roads, dtype=object), rng, 12.0))
    tracks = list(_warp_geoms(np.asarray(tracks, dtype=object), rng, 12.0))
    network = shapely.union_all(roads + tracks)
    blocks = [b for b in shapely.get_parts(area_box.difference(network.buffer(1.5)))
              if b.area > MIN_FIELD_HA * _M2_PER_HA]
    # log-normal mean field area per block, scaled so the cell count meets the target
    # (merging and the minimum size then remove ~10 %)
    areas = np.asarray([b.area for b in blocks])
    spread = np.exp(rng.normal(0.0, 0.8, areas.size))
    block_means = spread * float(np.sum(areas / spread)) / (target_fields * 1.1)
    cells: list[BaseGeometry] = []
    owner: list[int] = []
    for k, block in enumerate(blocks):
        part = _block_cells(rng, block, float(block_means[k]))
        part = _merge_neighbours(rng, part, 0.1, 0.75 * MAX_FIELD_HA * _M2_PER_HA)
        cells.extend(part)
        owner.extend([k] * len(part))
    cell_arr = _warp_geoms(np.asarray(cells, dtype=object), rng, 8.0)
    block_arr = np.asarray(blocks, dtype=object)[np.asarray(owner)]
    cell_arr = shapely.make_valid(shapely.intersection(cell_arr, block_arr))

    # separators: hedge on the boundary of ~30 % of cells, grass margins elsewhere
    has_hedge = rng.random(cell_arr.size) < 0.3
    shrink = np.where(has_hedge, rng.uniform(3.0, 4.0, cell_arr.size),
                      rng.uniform(1.0, 2.0, cell_arr.size))
    hedges = list(shapely.buffer(shapely.boundary(cell_arr[has_hedge]),
                                 rng.uniform(2.5, 3.5, int(has_hedge.sum())), quad_segs=2))
    shrunk = shapely.buffer(cell_arr, -shrink, quad_segs=2)

    fields: list[BaseGeometry] = []
    ponds: list[BaseGeometry] = []
    for g in shrunk:
        for p in shapely.get_parts(g):
            if p.geom_type != "Polygon" or p.area < MIN_FIELD_HA * _M2_PER_HA:
                continue
            fields.extend(_split_large(rng, p))
    fields = [f for f in fields if f.area >= MIN_FIELD_HA * _M2_PER_HA]

    for i in range(len(fields)):
        roll = rng.random()
        if roll < 0.04 and fields[i].area > 4 * _M2_PER_HA:
            fields[i], hole = _add_hole(rng, fields[i])
            if hole is not None:
                (ponds if rng.random() < 0.35 else hedges).append(hole)
        elif roll < 0.09 and fields[i].area > 3 * _M2_PER_HA:
            fields[i], track = _cut_by_track(rng, fields[i])
            if track is not None:
                tracks.append(track)
    # drop the vertices segmentize and buffers added on near-straight edges; 0.5 m is far
    # below the 2-8 m gaps between fields, so no overlaps appear
    out = _simplify(np.asarray(fields, dtype=object))
    area_ha = shapely.area(out) / _M2_PER_HA
    out = out[(area_ha >= MIN_FIELD_HA) & (area_ha <= MAX_FIELD_HA)]
    return Landscape(fields=out, roads=_simplify(np.asarray(roads, dtype=object)),
                     tracks=_simplify(np.asarray(tracks, dtype=object)),
                     hedges=_simplify(np.asarray(hedges, dtype=object)),
                     ponds=np.asarray(ponds, dtype=object))


def _simplify(geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    return np.asarray(shapely.simplify(geoms, 0.5, preserve_topology=True), dtype=object)
