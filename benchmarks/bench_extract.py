"""Benchmark of the extraction stage against the decode floor, rasterstats and exactextract.

Usage (from the repository root)::

    python benchmarks/bench_extract.py gen            # data under benchmarks/_data/extract (~1 GB)
    python benchmarks/bench_extract.py all --acquisitions 10 --fields 20000 --extra-tiles 2048
    BENCH_EXTRACT_DATA=extract_small python benchmarks/bench_extract.py gen --size 2500 \
        --fields 500 5000 25000                      # the scaled-down grid of the scaling table
    BENCH_EXTRACT_DATA=extract_small python benchmarks/bench_extract.py all --no-peers \
        --base-fields 5000 --fields 500 5000 25000 --acquisitions 10 40 80
    python benchmarks/bench_extract.py scaling        # 2k/20k/100k fields x 10/80 acquisitions
                                                      # x 1/2 workers, floor in the same run
    python benchmarks/bench_extract.py case NAME ...  # one case (used by ``all``), prints RESULT {json}

The data: one Sentinel-2 L2A-like tile of SIZE x SIZE pixels at 10 m (EPSG:32631), band files
B04, B08 (10 m), B11, B12 and SCL (20 m), uint16 DN, tiled 512 x 512, DEFLATE + predictor, as
the simulator and ESA deliver them; fields are a Voronoi partition (inset 4 m) given in
EPSG:4326. Ten distinct acquisitions are written once; runs of 40 and 80 acquisitions link
the same files under other dates (reads still decode every file: each task opens its own
dataset, GDAL's block cache is per handle), so disk space stays ~1 GB.

Every case runs in a fresh process; ``all`` writes benchmarks/results/extract.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "_data" / os.environ.get("BENCH_EXTRACT_DATA", "extract")
RESULTS = ROOT / "results"
N_POOL = 10
BANDS_10 = ("B04", "B08")
BANDS_20 = ("B11", "B12", "SCL")
INDICES = ["NDVI", "NDTI"]
STATS = ["mean", "median", "std"]
#: Cloud cover of the 10 acquisitions of the cloudy case (share of the tile).
CLOUD_FRACTIONS = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.98, 0.99, 1.0)


# --------------------------------------------------------------------------- data
def grid(size: int) -> Any:
    from affine import Affine

    from regenmap.geo.grid import GridSpec

    return GridSpec("EPSG:32631", Affine(10, 0, 499980, 0, -10, 5300040), size, size)


def make_fields(n: int, size: int, seed: int) -> Any:
    import geopandas as gpd
    import shapely

    g = grid(size)
    xmin, ymin, xmax, ymax = g.bounds
    rng = np.random.default_rng(seed)
    pts = shapely.points(rng.uniform(xmin, xmax, n), rng.uniform(ymin, ymax, n))
    cells = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=shapely.box(*g.bounds))
    polys = np.asarray(shapely.get_parts(cells))
    polys = shapely.intersection(polys, shapely.box(*g.bounds))
    polys = shapely.buffer(polys, -4.0, join_style="mitre")
    polys = polys[~shapely.is_empty(polys)]
    gdf = gpd.GeoDataFrame({"field_id": [f"F{i:06d}" for i in range(len(polys))]},
                           geometry=polys, crs=g.crs)
    return gdf.to_crs("EPSG:4326")


def gen(args: argparse.Namespace) -> None:
    import rasterio
    from rasterio import features

    from regenmap.geo.sentinel2 import NODATA, band_filename, reflectance_to_dn

    size = args.size
    DATA.mkdir(parents=True, exist_ok=True)
    g = grid(size)
    for n in args.fields:
        path = DATA / f"fields_{n}.gpkg"
        if not path.exists():
            t = time.time()
            make_fields(n, size, seed=n).to_file(path)
            print(f"fields {n}: {time.time() - t:.1f} s", flush=True)
    paint = make_fields(20000, size, seed=20000).to_crs(g.crs)
    ids = features.rasterize(zip(paint.geometry, range(len(paint)), strict=True), out_shape=g.shape,
                             transform=g.transform, fill=-1, dtype="int32")
    rng = np.random.default_rng(0)
    state = rng.integers(0, 4, len(paint))
    # reflectance of 4 crop states (bare, residue, green, senescent) for B04, B08, B11, B12
    levels = np.array([[0.14, 0.22, 0.30, 0.26], [0.10, 0.18, 0.26, 0.20],
                       [0.04, 0.40, 0.20, 0.10], [0.08, 0.25, 0.28, 0.20]])
    pool = DATA / "pool"
    pool.mkdir(exist_ok=True)
    profile = {"driver": "GTiff", "dtype": "uint16", "nodata": 0, "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "deflate", "predictor": 2,
               "crs": g.crs, "count": 1, "NUM_THREADS": "ALL_CPUS"}
    yy, xx = np.mgrid[0:size, 0:size]
    nodata = xx + yy < size // 4  # orbit-edge triangle
    for k in range(N_POOL):
        when = datetime(2023, 1, 2, 10, 46, 29) + timedelta(days=5 * k)
        if (pool / band_filename("31UFQ", when, "SCL", 20)).exists():
            continue
        t = time.time()
        st = (state + k) % 4
        for b, band in enumerate(("B04", "B08", "B11", "B12")):
            refl = np.where(ids >= 0, levels[st, b][np.maximum(ids, 0)], 0.12).astype(np.float32)
            refl *= 1 + 0.03 * rng.standard_normal(g.shape, dtype=np.float32)
            # sensor noise of 15 DN
            dn = reflectance_to_dn(refl + 0.0015 * rng.standard_normal(g.shape, np.float32))
            dn[nodata] = NODATA
            res = 10 if band in BANDS_10 else 20
            if res == 20:
                dn = dn[::2, ::2]
            h, w = dn.shape
            with rasterio.open(pool / band_filename("31UFQ", when, band, res), "w", width=w,
                               height=h, transform=g.transform @ g.transform.scale(res / 10),
                               **profile) as ds:
                ds.write(dn, 1)
        scl = np.full((size // 2, size // 2), 4, np.uint8)
        cy, cx = rng.integers(0, size // 2, 2)
        r = size // 12
        scl[max(0, cy - r):cy + r, max(0, cx - r):cx + r] = 9  # a cloud
        scl[nodata[::2, ::2]] = 0
        with rasterio.open(pool / band_filename("31UFQ", when, "SCL", 20), "w", width=size // 2,
                           height=size // 2, transform=g.transform @ g.transform.scale(2),
                           **{**profile, "dtype": "uint8"}) as ds:
            ds.write(scl, 1)
        print(f"scene {k}: {time.time() - t:.1f} s", flush=True)
    for n_acq in args.acquisitions:
        folder = DATA / f"scenes_{n_acq}"
        folder.mkdir(exist_ok=True)
        for k in range(n_acq):
            when = datetime(2023, 1, 2, 10, 46, 29) + timedelta(days=5 * (k % N_POOL))
            new = datetime(2020, 1, 1, 10, 46, 29) + timedelta(days=k)
            for band in BANDS_10 + BANDS_20:
                res = 10 if band in BANDS_10 else 20
                link = folder / band_filename("31UFQ", new, band, res)
                if not link.exists():
                    link.symlink_to(pool / band_filename("31UFQ", when, band, res))
    gen_cloudy(g, nodata[::2, ::2], profile)
    gen_warm(g, pool, max(args.fields))
    (DATA / "size.json").write_text(json.dumps({"size": size}))


def gen_warm(g: Any, pool: Path, n_fields: int, edge: int = 256) -> None:
    """Warm-up inputs: one acquisition cropped to ``edge`` px in the lower-right corner.

    That corner holds fields and valid pixels (the upper-left one lies in the orbit-edge
    nodata triangle, where the kernel would never run), so a warm-up there loads every
    kernel a real task uses. Files written before with another corner are replaced.
    """
    import geopandas as gpd
    import rasterio
    import shapely
    from rasterio.windows import Window

    from regenmap.geo.grid import GridSpec
    from regenmap.geo.sentinel2 import band_filename

    warm = DATA / "scenes_warm"
    warm.mkdir(exist_ok=True)
    first = datetime(2023, 1, 2, 10, 46, 29)
    off = g.width - edge
    for band in BANDS_10 + BANDS_20:
        res = 10 if band in BANDS_10 else 20
        src = pool / band_filename("31UFQ", first, band, res)
        n, o = edge * 10 // res, off * 10 // res
        with rasterio.open(src) as ds:
            win = Window(o, o, n, n)
            data = ds.read(1, window=win)
            prof = {**ds.profile, "width": n, "height": n, "blockxsize": 128,
                    "blockysize": 128, "transform": ds.window_transform(win)}
        with rasterio.open(warm / src.name, "w", **prof) as out:
            out.write(data, 1)
    small = GridSpec(g.crs, g.transform * g.transform.translation(off, off), edge, edge)
    f = gpd.read_file(DATA / f"fields_{n_fields}.gpkg").to_crs(g.crs)
    inside = f[f.within(shapely.box(*small.bounds))]
    assert len(inside) > 0, "no field in the warm-up corner"
    inside.to_crs("EPSG:4326").to_file(DATA / "fields_warm.gpkg")


def gen_cloudy(g: Any, nodata20: np.ndarray, profile: dict[str, Any]) -> None:
    """Scenes of the pool's band files with cloud masks covering 0-90 % of the tile.

    Clouds are blobs several km across (thresholded, smoothly upsampled noise), one
    acquisition per fraction in :data:`CLOUD_FRACTIONS`; regenerate after changing them.
    """
    import rasterio
    from scipy import ndimage

    from regenmap.geo.sentinel2 import band_filename

    folder = DATA / "scenes_cloudy"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    n = nodata20.shape[0]
    for k, frac in enumerate(CLOUD_FRACTIONS):
        when = datetime(2023, 1, 2, 10, 46, 29) + timedelta(days=5 * k)
        new = datetime(2021, 1, 1, 10, 46, 29) + timedelta(days=k)
        for band in BANDS_10 + BANDS_20[:-1]:
            res = 10 if band in BANDS_10 else 20
            link = folder / band_filename("31UFQ", new, band, res)
            if not link.exists():
                link.symlink_to(DATA / "pool" / band_filename("31UFQ", when, band, res))
        path = folder / band_filename("31UFQ", new, "SCL", 20)
        noise = ndimage.zoom(rng.standard_normal((12, 12)), n / 12, order=3)[:n, :n]
        cloud = noise >= np.quantile(noise, 1 - frac) if frac > 0 else np.zeros((n, n), bool)
        scl = np.where(cloud, 9, 4).astype(np.uint8)
        scl[nodata20] = 0
        with rasterio.open(path, "w", width=n, height=n,
                           transform=g.transform @ g.transform.scale(2),
                           **{**profile, "dtype": "uint8"}) as ds:
            ds.write(scl, 1)


def scene_files(n_acq: int | str) -> list[list[Path]]:
    folder = DATA / f"scenes_{n_acq}"
    by_date: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        by_date.setdefault(p.name.split("_")[1], []).append(p)
    return list(by_date.values())


# --------------------------------------------------------------------------- cases
def _read_all(files: list[Path]) -> float:
    import rasterio

    t = time.perf_counter()
    with rasterio.Env(GDAL_NUM_THREADS="1"):
        for f in files:
            with rasterio.open(f) as ds:
                ds.read(1)
    return time.perf_counter() - t


def case_floor(workers: int, n_acq: int) -> dict[str, Any]:
    """Raw rasterio read + decode of the same band files, ``workers`` processes x 1 thread."""
    from concurrent.futures import ProcessPoolExecutor

    acqs = scene_files(n_acq)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_read_all, acqs[:workers]))  # warm the page cache and the processes
        t = time.perf_counter()
        list(pool.map(_read_all, acqs))
        wall = time.perf_counter() - t
    return {"wall_s": wall, "per_acq_s": wall / n_acq}


def _worker_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _warm_worker(median: str) -> float:
    """Run one task's work in this process on the warm-up corner: every kernel gets loaded.

    Called on every worker (``client.run``): field index, reads, the fused kernel with
    the same indices and statistics as the timed run, the part table. Returns seconds.
    """
    from regenmap.features import observe as ex
    from regenmap.features.indices import resolve_indices
    from regenmap.geo.fields import read_fields
    from regenmap.pipelines.config import ScenesInput
    from regenmap.pipelines.inputs import build_catalog, sensor_profile

    t = time.perf_counter()
    profile = sensor_profile("sentinel2_l2a")
    acqs, _ = build_catalog(ScenesInput(path=DATA / "scenes_warm", kind="band_files",
                                        sensor="sentinel2_l2a"), profile)
    indices = resolve_indices(INDICES)
    fields = read_fields(DATA / "fields_warm.gpkg", id_column="field_id")
    bands = sorted({b for a in acqs for b in ex.needed_bands(a, indices)})
    grid = acqs[0].grid_for(bands)
    local = fields.geometry.to_crs(grid.crs)
    tf = ex.tile_fields(fields, "warm", np.arange(len(fields)), local)
    tile = ex.build_tile_raster(tf, grid, 0.5)
    spec = ex.ObserveSpec(indices=indices, stats=tuple(STATS), percentiles=(), min_pixels=3,
                          inner_buffer_px=0.5, threads=1, on_error="fail",
                          **_median_options(median))
    res = ex.observe_acquisition(tf, tile, acqs[0], spec)
    assert res.rows is not None and res.rows["n_valid"].sum() > 0, "warm-up saw no valid pixel"
    return time.perf_counter() - t


#: Bin width of the binned median in the benchmark (index units), as the default.
BINNED_PRECISION = 0.002


def _median_options(median: str) -> dict[str, Any]:
    """ObserveSpec options of a median mode: ``exact`` or ``binned``."""
    return {} if median == "exact" else {"quantile_precision": BINNED_PRECISION}


def case_regenmap(workers: int, n_acq: int, n_fields: int, tile_size_px: int,
                  binned: int = 0) -> dict[str, Any]:
    """regenmap extract() on a LocalCluster of ``workers`` processes x 1 thread.

    In the same cluster and run: every worker is warmed on a corner with fields
    (:func:`_warm_worker`), then the floor (raw rasterio read+decode of every
    acquisition's files, one task per acquisition on the same workers) is timed, then
    the extraction. ``binned`` 1 uses the binned median instead of the exact one.
    """
    import shutil

    from distributed import Client, LocalCluster

    from regenmap.pipelines import extract
    from regenmap.pipelines.config import parse_config

    median = "binned" if binned else "exact"
    work = ROOT / "_work" / f"extract_{workers}_{n_acq}_{n_fields}_{tile_size_px}_{median}"
    shutil.rmtree(work, ignore_errors=True)
    opts: dict[str, Any] = {"indices": INDICES, "stats": STATS, "tile_size_px": tile_size_px}
    if binned:
        opts.update(median="binned", median_precision=BINNED_PRECISION)
    load_before = os.getloadavg()[0]
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        warm_s = client.run(_warm_worker, median)  # on every worker
        # the driver's side warms on one small run too
        warm = parse_config({"out_dir": str(work / "warm"),
                             "fields": {"path": str(DATA / "fields_warm.gpkg")},
                             "scenes": {"path": str(DATA / "scenes_warm")},
                             "extract": opts}, base_dir=work)
        extract(warm, client=client)
        files = scene_files(n_acq)
        client.gather(client.map(_read_all, files[:workers], pure=False))  # page cache
        t = time.perf_counter()
        client.gather(client.map(_read_all, files, pure=False))
        floor = time.perf_counter() - t
        cfg = parse_config({"out_dir": str(work / "out"),
                            "fields": {"path": str(DATA / f"fields_{n_fields}.gpkg")},
                            "scenes": {"path": str(DATA / f"scenes_{n_acq}")},
                            "extract": opts}, base_dir=work)
        from distributed import get_task_stream

        with get_task_stream(client) as stream:
            t, t_wall = time.perf_counter(), time.time()
            out = extract(cfg, client=client)
            wall = time.perf_counter() - t
        phases = _phases(stream.data, t_wall, wall)
        # a second run on the same fields and grid (another season): the field-index
        # cache is read instead of built (timed at 10 acquisitions or fewer only)
        wall_cached = float("nan")
        shared = cfg.extract.model_copy(update={"cache_dir": work / "out" / ".regenmap" / "cache"})
        again = (None if n_acq > 10
                 else cfg.model_copy(update={"out_dir": work / "out2", "extract": shared}))
        if again is not None:
            t = time.perf_counter()
            extract(again, client=client)
            wall_cached = time.perf_counter() - t
        peaks = client.run(_worker_peak_mib)
    n_rows = sum(__import__("pyarrow.parquet").parquet.read_metadata(p).num_rows
                 for p in out["observations"].glob("*.parquet"))
    shutil.rmtree(work, ignore_errors=True)
    return {"wall_s": wall, "per_acq_s": wall / n_acq, "floor_s": floor, "x_floor": wall / floor,
            "wall_cached_s": wall_cached, "x_floor_cached": wall_cached / floor, "rows": n_rows,
            "worker_peak_mib": max(peaks.values()), "median": median,
            "warm_s": max(warm_s.values()), "load_before": load_before,
            "load_after": os.getloadavg()[0], "phases": phases}


#: Task key prefixes of the extraction and their phase names in the breakdown.
_PHASE_KEYS = {"tile-fields": "fields file read", "field-raster": "field index",
               "extract": "extraction tasks", "write": "tile writer"}


def _phases(stream: list[dict[str, Any]], t0: float, wall: float) -> dict[str, float]:
    """Where the end-to-end time went, from Dask's task stream of one extract run.

    Per phase (task key prefix): ``<phase> busy`` = summed compute seconds of its tasks,
    ``<phase> span`` = first start to last stop, relative to the run; ``driver before`` =
    from the call to the first task's start, ``driver after`` = from the last task's end
    to the return.
    """
    spans: dict[str, list[float]] = {}
    busy: dict[str, float] = {}
    first, last = float("inf"), 0.0
    for task in stream:
        key = str(task.get("key", ""))
        phase = next((name for prefix, name in _PHASE_KEYS.items()
                      if key.startswith(prefix + "-")), None)
        if phase is None:
            continue
        for part in task.get("startstops", ()):
            if part.get("action") != "compute":
                continue
            a, b = float(part["start"]) - t0, float(part["stop"]) - t0
            busy[phase] = busy.get(phase, 0.0) + (b - a)
            lo, hi = spans.setdefault(phase, [a, b])
            spans[phase] = [min(lo, a), max(hi, b)]
            first, last = min(first, a), max(last, b)
    out = {f"{k} busy": round(v, 3) for k, v in busy.items()}
    out.update({f"{k} span": round(v[1] - v[0], 3) for k, v in spans.items()})
    out.update({f"{k} start": round(v[0], 3) for k, v in spans.items()})
    if busy:
        out["driver before"] = round(first, 3)
        out["driver after"] = round(wall - last, 3)
    return out


def _indices_from_files(files: list[Path]) -> tuple[np.ndarray, np.ndarray, Any]:
    """Read one acquisition and compute masked NDVI, NDTI as float32 on the 10 m grid (numpy)."""
    import rasterio

    bands = {}
    for f in files:
        name = f.name.split("_")[2]
        with rasterio.open(f) as ds:
            a = ds.read(1)
            if name in BANDS_10:
                transform, crs = ds.transform, ds.crs
            bands[name] = a
    up = {k: np.repeat(np.repeat(v, 2, 0), 2, 1) if k in BANDS_20 else v for k, v in bands.items()}
    refl = {k: up[k].astype(np.float32) * 1e-4 - 0.1 for k in ("B04", "B08", "B11", "B12")}
    valid = np.isin(up["SCL"], [2, 4, 5, 6, 7])
    for k in ("B04", "B08", "B11", "B12"):
        valid &= up[k] != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (refl["B08"] - refl["B04"]) / (refl["B08"] + refl["B04"])
        ndti = (refl["B11"] - refl["B12"]) / (refl["B11"] + refl["B12"])
    ndvi[~valid] = np.nan
    ndti[~valid] = np.nan
    return ndvi, ndti, (transform, crs)


def case_rasterstats(n_fields: int) -> dict[str, Any]:
    """rasterstats zonal_stats mean/median/std of NDVI and NDTI, one acquisition."""
    import geopandas as gpd
    from rasterstats import zonal_stats

    t = time.perf_counter()
    files = scene_files(10)[0]
    ndvi, ndti, (transform, crs) = _indices_from_files(files)
    fields = gpd.read_file(DATA / f"fields_{n_fields}.gpkg").to_crs(crs)
    out = {}
    for name, arr in (("ndvi", ndvi), ("ndti", ndti)):
        out[name] = zonal_stats(fields.geometry, arr, affine=transform, nodata=np.nan,
                                stats=["mean", "median", "std"])
    wall = time.perf_counter() - t
    return {"wall_s": wall, "per_acq_s": wall, "rows": len(out["ndvi"])}


def case_exactextract(n_fields: int) -> dict[str, Any]:
    """exactextract mean/median/stdev of NDVI and NDTI arrays, one acquisition."""
    import geopandas as gpd
    from exactextract import exact_extract
    from exactextract.raster import NumPyRasterSource

    t = time.perf_counter()
    files = scene_files(10)[0]
    ndvi, ndti, (transform, crs) = _indices_from_files(files)
    fields = gpd.read_file(DATA / f"fields_{n_fields}.gpkg").to_crs(crs)
    h, w = ndvi.shape
    xmin, ymax = transform.c, transform.f
    ext = (xmin, ymax - 10 * h, xmin + 10 * w, ymax)
    srcs = [NumPyRasterSource(a, *ext, nodata=np.nan, name=n)
            for n, a in (("ndvi", ndvi), ("ndti", ndti))]
    df = exact_extract(srcs, fields, ["mean", "median", "stdev"], output="pandas")
    wall = time.perf_counter() - t
    return {"wall_s": wall, "per_acq_s": wall, "rows": len(df)}


def case_exactextract_files(n_fields: int) -> dict[str, Any]:
    """exactextract as users call it on files: band GeoTIFFs and the fields' GeoPackage.

    exactextract reads the rasters itself (its rasterio-backed source, window by window)
    and the polygons from the file; it cannot evaluate an index on bands of two
    resolutions, so it reduces the 4 reflectance bands (mean, median, stdev), which
    reads the same files the index statistics need. One acquisition, one process.
    """
    import geopandas as gpd
    import rasterio
    from exactextract import exact_extract
    from exactextract.raster import RasterioRasterSource

    t = time.perf_counter()
    files = [f for f in scene_files(10)[0] if f.name.split("_")[2] in ("B04", "B08", "B11", "B12")]
    with rasterio.open(files[0]) as ds:
        crs = ds.crs
    fields = gpd.read_file(DATA / f"fields_{n_fields}.gpkg").to_crs(crs)
    handles = [rasterio.open(f) for f in files]
    try:
        srcs = [RasterioRasterSource(ds, name=f.name.split("_")[2]) for ds, f in
                zip(handles, files, strict=True)]
        df = exact_extract(srcs, fields, ["mean", "median", "stdev"], output="pandas")
    finally:
        for ds in handles:
            ds.close()
    wall = time.perf_counter() - t
    return {"wall_s": wall, "per_acq_s": wall, "rows": len(df)}


def _first_tile(scenes: str, n_fields: int, tile_size_px: int = 5120
                ) -> tuple[list[Any], Any, Any, Any, float]:
    """Catalogue ``scenes_<scenes>``, plan tiles, and build the first tile's field raster.

    Returns the acquisitions, the indices, the tile's fields, its TileRaster and the
    seconds the field raster took (the one-off cost per tile and grid).
    """
    from regenmap.features import observe as ex
    from regenmap.features.indices import resolve_indices
    from regenmap.geo.fields import read_fields
    from regenmap.pipelines.config import ScenesInput
    from regenmap.pipelines.inputs import build_catalog, sensor_profile
    from regenmap.pipelines.tiling import plan_tiles, reference_grid

    profile = sensor_profile("sentinel2_l2a")
    acqs, _ = build_catalog(ScenesInput(path=DATA / f"scenes_{scenes}", kind="band_files",
                                           sensor="sentinel2_l2a"), profile)
    indices = resolve_indices(INDICES)
    fields = read_fields(DATA / f"fields_{n_fields}.gpkg", id_column="field_id")
    bands = sorted({b for a in acqs for b in ex.needed_bands(a, indices)})
    plan = plan_tiles(fields.geometry, reference_grid(acqs, bands), tile_size_px)
    tile_fields = ex.tile_fields(fields, plan.tiles[0].id, plan.tiles[0].rows)
    t = time.perf_counter()
    tile = ex.build_tile_raster(tile_fields, acqs[0].grid_for(bands), 0.5)
    return acqs, indices, tile_fields, tile, time.perf_counter() - t


def case_inprocess(n_fields: int, tile_size_px: int) -> dict[str, Any]:
    """Where one acquisition's time goes, in one process and thread, interleaved.

    For each of the 10 acquisitions: the raw read+decode of its 5 files (the floor),
    then regenmap's reads of the first tile window and its kernel with and without the
    median. One-off per-tile work (field raster, run index) is timed once.
    """
    import shapely  # noqa: F401  (geometry stack loaded before timing)

    from regenmap.features import observe as ex
    from regenmap.features.zonal import BandInput, MaskInput, zonal_stats
    from regenmap.geo.raster_read import read_native

    acqs, indices, tile_fields, tile, one_off = _first_tile("10", n_fields, tile_size_px)
    window = tile.raster.grid
    files = scene_files(10)

    def read(acq: Any) -> tuple[dict[str, Any], Any]:
        out = {}
        for name in ex.needed_bands(acq, indices):
            asset = acq.assets[name]
            data, rows, cols = read_native(asset, window)
            out[name] = BandInput(data, asset.scale, asset.offset, asset.nodata, rows, cols)
        data, rows, cols = read_native(acq.mask, window, fill=-1)
        return out, MaskInput(data, acq.mask_spec.valid_lookup(), rows, cols)

    b, m = read(acqs[0])  # warm-up: kernels loaded, page cache warm
    zonal_stats(tile.raster, b, indices, mask=m, percentiles=[50.0], stats=STATS)
    zonal_stats(tile.raster, b, indices, mask=m, percentiles=[], stats=STATS)
    spec = ex.ObserveSpec(indices=indices, stats=tuple(STATS), percentiles=(), min_pixels=3,
                          inner_buffer_px=0.5, threads=1, on_error="fail")
    ex.observe_acquisition(tile_fields, tile, acqs[0], spec)
    zonal_stats(tile.raster, b, indices, mask=m, percentiles=[50.0], stats=STATS,
                quantile_precision=BINNED_PRECISION)
    times: dict[str, list[float]] = {"floor": [], "read": [], "kernel": [], "kernel_no_q": [],
                                     "kernel_binned": [], "task": []}
    for acq, fs in zip(acqs, files, strict=True):
        times["floor"].append(_read_all(fs))
        t = time.perf_counter()
        ex.observe_acquisition(tile_fields, tile, acq, spec)
        times["task"].append(time.perf_counter() - t)
        t = time.perf_counter()
        b, m = read(acq)
        times["read"].append(time.perf_counter() - t)
        t = time.perf_counter()
        zonal_stats(tile.raster, b, indices, mask=m, percentiles=[50.0], stats=STATS)
        times["kernel"].append(time.perf_counter() - t)
        t = time.perf_counter()
        zonal_stats(tile.raster, b, indices, mask=m, percentiles=[], stats=STATS)
        times["kernel_no_q"].append(time.perf_counter() - t)
        t = time.perf_counter()
        zonal_stats(tile.raster, b, indices, mask=m, percentiles=[50.0], stats=STATS,
                    quantile_precision=BINNED_PRECISION)
        times["kernel_binned"].append(time.perf_counter() - t)
    out: dict[str, Any] = {k: float(np.median(v)) for k, v in times.items()}
    out.update(one_off_s=one_off, window=list(window.shape),
               field_pixels=int(np.sum(tile.raster.n_pixels)))
    return out


def case_cloudy(n_fields: int) -> dict[str, Any]:
    """Per acquisition, clouds covering 0-90 % of the tile: floor vs task with/without skipping.

    One process, one thread. The floor decodes every file in full; the task decodes the
    quality band, then only the band blocks holding an unmasked field pixel.
    """
    import dataclasses

    from regenmap.features import observe as ex

    acqs, indices, tile_fields, tile, _ = _first_tile("cloudy", n_fields)
    on = ex.ObserveSpec(indices=indices, stats=tuple(STATS), percentiles=(), min_pixels=3,
                        inner_buffer_px=0.5, threads=1, on_error="fail")
    off = dataclasses.replace(on, skip_blocks=False)
    files = scene_files("cloudy")
    ex.observe_acquisition(tile_fields, tile, acqs[0], on)  # warm-up
    rows = []
    for acq, fs, frac in zip(acqs, files, CLOUD_FRACTIONS, strict=True):
        floor = _read_all(fs)
        t = time.perf_counter()
        res = ex.observe_acquisition(tile_fields, tile, acq, on)
        t_on = time.perf_counter() - t
        t = time.perf_counter()
        ex.observe_acquisition(tile_fields, tile, acq, off)
        t_off = time.perf_counter() - t
        assert res.rows is not None
        valid = float(res.rows["n_valid"].sum() / max(1, res.rows["n_pixels"].sum()))
        rows.append({"cloud": frac, "valid": valid, "floor": floor, "skip": t_on,
                     "no_skip": t_off, "units_read": res.units_read,
                     "units_skipped": res.units_skipped})
    return {"rows": rows}


def case_selection(n_values: int, field_size: int) -> dict[str, Any]:
    """Lower bound for an exact median: NumPy's selection on values already grouped by field.

    ``np.partition`` (introselect, SIMD in NumPy 2) along the rows of one float32 array
    of ``n_values // field_size`` fields x ``field_size`` values, so the cost of
    selection alone can be set against the floor; regenmap must also group the values
    by field first.
    """
    rng = np.random.default_rng(0)
    # one (fields, field_size) array partitioned along its rows: a single call, so no
    # Python overhead per field
    values = rng.normal(0.5, 0.1, (max(1, n_values // field_size), field_size)).astype(np.float32)
    np.partition(values[:100], field_size // 2, axis=1)
    t = time.perf_counter()
    np.partition(values, field_size // 2, axis=1)
    wall = time.perf_counter() - t
    return {"wall_s": wall, "ns_per_value": wall / values.size * 1e9, "n_values": values.size}


CASES = {"floor": case_floor, "regenmap": case_regenmap, "rasterstats": case_rasterstats,
         "exactextract": case_exactextract, "exactextract_files": case_exactextract_files,
         "inprocess": case_inprocess,
         "cloudy": case_cloudy, "selection": case_selection}


def run_case(name: str, *params: int) -> dict[str, Any]:
    """Run one case in a fresh process; return its result with the process's peak RSS."""
    cmd = [sys.executable, str(Path(__file__)), "case", name, *map(str, params)]
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{name}{params} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    res = json.loads(line[len("RESULT "):])
    res.update(case=name, params=list(params))
    print(json.dumps(res), flush=True)
    return res


def load_avg() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def run_all(args: argparse.Namespace) -> None:
    size = json.loads((DATA / "size.json").read_text())["size"]
    tile, nf = args.tile, args.base_fields
    log: list[dict[str, Any]] = []
    t0 = time.time()
    for _ in range(args.repeat):
        log.append(run_case("floor", 1, 10))
        log.append(run_case("regenmap", 1, 10, nf, tile))
        log.append(run_case("floor", 2, 10))
        log.append(run_case("regenmap", 2, 10, nf, tile))
    log.append(run_case("inprocess", nf, 5120))
    log.append(run_case("cloudy", nf))
    inproc = log[-2]
    # the tile's index values per acquisition (2 indices x valid field pixels), in arrays
    # of its mean field size
    n_values = 2 * int(inproc["field_pixels"] * 0.97)
    log.append(run_case("selection", n_values, max(2, inproc["field_pixels"] // nf)))
    if args.reuse:
        # peer results measured earlier on the same data (they take minutes each)
        log += [json.loads(x) for x in Path(args.reuse).read_text().splitlines() if x.strip()]
    elif args.peers:
        log.append(run_case("rasterstats", nf))
        log.append(run_case("exactextract", nf))
    for extra_tile in args.extra_tiles:
        log.append(run_case("regenmap", 2, 10, nf, extra_tile))
    for n_acq in args.acquisitions:
        if n_acq != 10:
            log.append(run_case("floor", 2, n_acq))
            log.append(run_case("regenmap", 2, n_acq, nf, tile))
    for n in args.fields:
        if n != nf:
            log.append(run_case("regenmap", 2, 10, n, tile))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = DATA.name
    with (RESULTS / f"{name}_runs.jsonl").open("w") as fh:
        for r in log:
            fh.write(json.dumps(r) + "\n")
    report(log, size, tile, nf, time.time() - t0, RESULTS / f"{name}.md")


def report(log: list[dict[str, Any]], size: int, tile: int, nf: int, elapsed: float,
           out: Path) -> None:
    def med(case: str, *params: int, key: str = "per_acq_s") -> float:
        vals = [r[key] for r in log if r["case"] == case and tuple(r["params"]) == params]
        return float(np.median(vals)) if vals else float("nan")

    floor1, floor2 = med("floor", 1, 10), med("floor", 2, 10)
    ours1, ours2 = med("regenmap", 1, 10, nf, tile), med("regenmap", 2, 10, nf, tile)
    rs, ee = med("rasterstats", nf), med("exactextract", nf)
    acqs = sorted({r["params"][1] for r in log if r["case"] == "regenmap"
                   and r["params"][0] == 2 and r["params"][2] == nf and r["params"][3] == tile})
    marg = ""
    if len(acqs) >= 2:
        a0, a1 = acqs[0], acqs[-1]
        w0 = med("regenmap", 2, a0, nf, tile, key="wall_s")
        w1 = med("regenmap", 2, a1, nf, tile, key="wall_s")
        f0 = med("floor", 2, a0, key="wall_s")
        f1 = med("floor", 2, a1, key="wall_s")
        marg = (f"\nMarginal cost per acquisition (difference of the {a0}- and {a1}-acquisition "
                "runs, which cancels the one-off per-run costs: fields, catalog, id rasters, "
                f"status): regenmap {(w1 - w0) / (a1 - a0):.3f} s vs floor "
                f"{(f1 - f0) / (a1 - a0):.3f} s = {((w1 - w0) / (f1 - f0)):.2f}x the floor "
                "(2 workers).\n")
    peak = "worker_peak_mib"
    lines = [
        f"# Extraction benchmark ({DATA.name}; benchmarks/bench_extract.py)", "",
        f"Tile {size} x {size} px (10 m; B04, B08 at 10 m, B11, B12, SCL at 20 m; uint16 "
        f"DEFLATE 512 blocks), {nf} fields (Voronoi partition, EPSG:4326), indices "
        f"{', '.join(INDICES)}, stats {', '.join(STATS)}, tile_size_px {tile}. Machine: "
        f"{os.cpu_count()} cores shared with other engineers' jobs (load average at the end "
        f"{load_avg()}); the run took {elapsed / 60:.1f} min. Each case in its own process; "
        "cases run one after the other, so the load drifts between them.",
        "", f"## Per acquisition, {nf} fields, 10 acquisitions", "",
        "| method | workers x threads | s per acquisition | x floor (same cores) "
        "| peak RSS per worker MiB |",
        "|---|---|---|---|---|",
        f"| raw rasterio read+decode of the same 5 band files (floor) | 1 x 1 | {floor1:.3f} "
        "| 1.00 | |",
        f"| raw rasterio read+decode (floor) | 2 x 1 | {floor2:.3f} | 1.00 | |",
        f"| regenmap extract, end to end / 10 | 1 x 1 | {ours1:.3f} | {ours1 / floor1:.2f} | "
        f"{med('regenmap', 1, 10, nf, tile, key=peak):.0f} |",
        f"| regenmap extract, end to end / 10 | 2 x 1 | {ours2:.3f} | {ours2 / floor2:.2f} | "
        f"{med('regenmap', 2, 10, nf, tile, key=peak):.0f} |"]
    for r in log:
        if r["case"] == "regenmap" and r["params"][3] != tile:
            lines.append(f"| regenmap, tile_size_px {r['params'][3]} | 2 x 1 | {r['per_acq_s']:.3f} "
                         f"| {r['per_acq_s'] / floor2:.2f} | {r[peak]:.0f} |")
    if not np.isnan(rs):
        lines += [
            f"| rasterstats (read + numpy indices + zonal_stats) | 1 x 1 | {rs:.3f} | "
            f"{rs / floor1:.2f} | |",
            f"| exactextract (read + numpy indices + exact_extract) | 1 x 1 | {ee:.3f} | "
            f"{ee / floor1:.2f} | |",
            "", f"regenmap (1 worker) is {rs / ours1:.1f}x faster than rasterstats and "
            f"{ee / ours1:.1f}x faster than exactextract per acquisition on one core."]
    inproc = [r for r in log if r["case"] == "inprocess"]
    if inproc:
        r = inproc[-1]
        fl = r["floor"]
        lines += [
            "", "## Where the time goes (one process, one thread, medians over 10 acquisitions)", "",
            f"One {r['window'][0]} x {r['window'][1]} px window, {r['field_pixels']} field pixels; "
            "each acquisition's raw read+decode (the floor), then regenmap's task on it, then "
            "(for the breakdown) its whole-window reads and kernel, interleaved.", "",
            "| step | s per acquisition | x floor |", "|---|---|---|",
            f"| raw read+decode of the 5 files (floor) | {fl:.3f} | 1.00 |",
            f"| regenmap reads (read_native, 5 files) | {r['read']:.3f} | {r['read'] / fl:.2f} |",
            f"| kernel: NDVI, NDTI mean, std, median | {r['kernel']:.3f} | {r['kernel'] / fl:.2f} |",
            f"| kernel without the median | {r['kernel_no_q']:.3f} | {r['kernel_no_q'] / fl:.2f} |",
            f"| kernel, binned median ({BINNED_PRECISION:g} index units) | "
            f"{r['kernel_binned']:.3f} | {r['kernel_binned'] / fl:.2f} |",
            f"| reads + kernel | {r['read'] + r['kernel']:.3f} | "
            f"{(r['read'] + r['kernel']) / fl:.2f} |",
            f"| reads + kernel without the median | {r['read'] + r['kernel_no_q']:.3f} | "
            f"{(r['read'] + r['kernel_no_q']) / fl:.2f} |",
            f"| the extraction task as run (strips of 2048 rows, table rows built) | "
            f"{r['task']:.3f} | {r['task'] / fl:.2f} |",
            "", f"One-off per tile and grid (field raster + run index): {r['one_off_s']:.2f} s."]
        sel = [x for x in log if x["case"] == "selection"]
        if sel:
            x = sel[-1]
            lines += [
                "", f"Selection alone, as a lower bound for any exact median: np.partition on "
                f"{x['n_values']} float32 values in arrays of {x['params'][1]} (the mean field) "
                f"takes {x['wall_s']:.3f} s ({x['ns_per_value']:.1f} ns a value), "
                f"{x['wall_s'] / fl:.2f}x the floor, before any value is grouped by field."]
    cloudy = [r for r in log if r["case"] == "cloudy"]
    if cloudy:
        rows = cloudy[-1]["rows"]
        lines += [
            "", "## Cloudy acquisitions (one process, one thread)", "",
            "The same band files under quality masks clouding 0-100 % of the tile (blobs "
            "several km across). The floor decodes every file in full; the task decodes the "
            "mask, then only the band blocks holding an unmasked field pixel "
            "(`extract.skip_blocks`, on by default), and skips the kernel on strips with none.",
            "", "| cloud cover | field pixels valid | floor s | task s | task s, skip_blocks off "
            "| task x floor | block units decoded / skipped |", "|---|---|---|---|---|---|---|"]
        for x in rows:
            lines.append(f"| {x['cloud']:.0%} | {x['valid']:.1%} | {x['floor']:.3f} | "
                         f"{x['skip']:.3f} | {x['no_skip']:.3f} | {x['skip'] / x['floor']:.2f} | "
                         f"{x['units_read']} / {x['units_skipped']} |")
        tot = {k: sum(x[k] for x in rows) for k in ("floor", "skip", "no_skip")}
        lines += ["", f"Over these 10 acquisitions: task {tot['skip']:.2f} s with skipping, "
                  f"{tot['no_skip']:.2f} s without, floor {tot['floor']:.2f} s "
                  f"({tot['skip'] / tot['floor']:.2f}x and {tot['no_skip'] / tot['floor']:.2f}x "
                  "the floor)."]
    lines += [marg, "## Scaling (2 workers x 1 thread)", "",
              "| acquisitions | fields | regenmap wall s | s per acquisition "
              "| floor s per acquisition | x floor | peak RSS per worker MiB | rows |",
              "|---|---|---|---|---|---|---|---|"]
    for r in log:
        if r["case"] != "regenmap" or r["params"][0] != 2 or r["params"][3] != tile:
            continue
        _, n_acq, n_f, _ = r["params"]
        fl = med("floor", 2, n_acq)
        lines.append(f"| {n_acq} | {n_f} | {r['wall_s']:.1f} | {r['per_acq_s']:.3f} | {fl:.3f} | "
                     f"{r['per_acq_s'] / fl:.2f} | {r[peak]:.0f} | {r['rows']} |")
    lines += ["", f"1 vs 2 workers (10 acquisitions, {nf} fields): {ours1 * 10:.1f} s vs "
              f"{ours2 * 10:.1f} s ({ours1 / ours2:.2f}x).", ""]
    out.write_text("\n".join(lines))
    print("\n".join(lines))


def run_scaling(args: argparse.Namespace) -> None:
    """End to end against the floor measured in the same run: fields x acquisitions x workers."""
    log: list[dict[str, Any]] = []
    t0 = time.time()
    for rep in range(args.repeat):  # repeats interleaved, so that drifts in load spread evenly
        for workers in args.workers:
            for n_acq in args.acquisitions:
                for n in args.fields:
                    for binned in args.binned:
                        res = run_case("regenmap", workers, n_acq, n, args.tile, binned)
                        log.append({**res, "repeat": rep, "code": args.code})
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{DATA.name}_{args.name}"
    with (RESULTS / f"{name}_runs.jsonl").open("w") as fh:
        for r in log:
            fh.write(json.dumps(r) + "\n")
    lines = [
        f"# Extraction end to end against the decode floor ({DATA.name}; "
        "`bench_extract.py scaling`)", "",
        f"Run {datetime.now():%Y-%m-%d %H:%M}, {(time.time() - t0) / 60:.1f} min, on "
        f"{os.cpu_count()} cores shared with other engineers' jobs. Each row is one process: a "
        "LocalCluster of W workers x 1 thread; every worker is first warmed on a corner with "
        "fields; then the floor (raw rasterio read+decode of every acquisition's 5 band files, "
        "one task per acquisition on the same workers) is timed; then `extract` end to end "
        "(fields read, plan, field index, tasks, tile writer, status tables); then a second "
        "extract into another folder that reads the field-index cache of the first "
        "(another season on the same fields). Load average (1 min) before and after each row.",
        f"Code: {args.code}. Each configuration ran {args.repeat} time(s), interleaved; the "
        "first table gives the median over the repeats, the second every run.", "",
        "| workers | acquisitions | fields | median | runs | x floor (median) | x floor (runs) "
        "| 2nd run x floor (median) | floor s (median) | extract s (median) "
        "| peak RSS per worker MiB (max) | load before, range |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in log:
        groups.setdefault((*r["params"][:3], r["median"]), []).append(r)
    for (w, a, n, med), rs in groups.items():
        def mid(key: str, rs: list[dict[str, Any]] = rs) -> float:
            return float(np.nanmedian([r[key] for r in rs]))

        loads = [r["load_before"] for r in rs]
        lines.append(f"| {w} | {a} | {n} | {med} | {len(rs)} | {mid('x_floor'):.2f} | "
                     + ", ".join(f"{r['x_floor']:.2f}" for r in rs)
                     + f" | {mid('x_floor_cached'):.2f} | {mid('floor_s'):.2f} | {mid('wall_s'):.2f}"
                     f" | {max(r['worker_peak_mib'] for r in rs):.0f} | {min(loads):.1f}-{max(loads):.1f} |")
    lines += [
        "", "| workers | acquisitions | fields | median | floor s | extract s | x floor "
        "| 2nd run s | x floor | peak RSS per worker MiB | rows | load before / after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in log:
        w, a, n = r["params"][:3]
        lines.append(f"| {w} | {a} | {n} | {r['median']} | {r['floor_s']:.2f} | "
                     f"{r['wall_s']:.2f} | {r['x_floor']:.2f} | {r['wall_cached_s']:.2f} | "
                     f"{r['x_floor_cached']:.2f} | {r['worker_peak_mib']:.0f} | {r['rows']} | "
                     f"{r['load_before']:.1f} / {r['load_after']:.1f} |")
    lines += [
        "", "Where each run's time went (Dask task stream of the timed extract; seconds from "
        "the call): driver before the first task (fields, catalogue, plan, tile fields file), "
        "field index task (start, length), extraction tasks (first start to last end; mean "
        "task), tile writer, driver after the last task (status tables).", "",
        "| workers | acquisitions | fields | median | driver before | field index | "
        "extraction tasks (mean task) | tile writer | driver after | total |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for r in log:
        ph = r.get("phases") or {}
        if not ph:
            continue
        w, a, n = r["params"][:3]
        n_tasks = a  # one tile
        lines.append(
            f"| {w} | {a} | {n} | {r['median']} | {ph.get('driver before', float('nan')):.2f} | "
            f"{ph.get('field index start', float('nan')):.2f} + "
            f"{ph.get('field index span', float('nan')):.2f} | "
            f"{ph.get('extraction tasks span', float('nan')):.2f} "
            f"({ph.get('extraction tasks busy', float('nan')) / n_tasks:.2f}) | "
            f"{ph.get('tile writer span', float('nan')):.2f} | "
            f"{ph.get('driver after', float('nan')):.2f} | {r['wall_s']:.2f} |")
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(text)
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--size", type=int, default=5000)
    g.add_argument("--fields", type=int, nargs="+", default=[2000, 20000, 100000])
    g.add_argument("--acquisitions", type=int, nargs="+", default=[10, 40, 80])
    a = sub.add_parser("all")
    a.add_argument("--repeat", type=int, default=1)
    a.add_argument("--tile", type=int, default=2048)
    a.add_argument("--extra-tiles", type=int, nargs="*", default=[])
    a.add_argument("--base-fields", type=int, default=20000)
    a.add_argument("--no-peers", dest="peers", action="store_false")
    a.add_argument("--reuse", help="JSON lines of rasterstats/exactextract results to reuse")
    a.add_argument("--fields", type=int, nargs="+", default=[2000, 20000, 100000])
    a.add_argument("--acquisitions", type=int, nargs="+", default=[10, 40, 80])
    sc = sub.add_parser("scaling")
    sc.add_argument("--tile", type=int, default=5120)
    sc.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    sc.add_argument("--fields", type=int, nargs="+", default=[2000, 20000, 100000])
    sc.add_argument("--acquisitions", type=int, nargs="+", default=[10, 80])
    sc.add_argument("--binned", type=int, nargs="+", default=[0])
    sc.add_argument("--name", default="scaling", help="results file: <data>_<name>.md")
    sc.add_argument("--repeat", type=int, default=1, help="runs of each configuration")
    sc.add_argument("--code", default="this checkout", help="what code ran (for the report)")
    c = sub.add_parser("case")
    c.add_argument("name", choices=sorted(CASES))
    c.add_argument("params", type=int, nargs="*")
    args = ap.parse_args()
    if args.cmd == "gen":
        gen(args)
    elif args.cmd == "all":
        run_all(args)
    elif args.cmd == "scaling":
        run_scaling(args)
    else:
        res = CASES[args.name](*args.params)
        res["process_peak_mib"] = _worker_peak_mib()
        print("RESULT " + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
