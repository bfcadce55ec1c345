"""``simulate_region``: write a seeded farming landscape and its Sentinel-2 L2A-like year.

Outputs in ``out_dir``:

* ``fields.gpkg`` (layer ``fields``): field_id, region, crop, tillage, winter_cover,
  area_ha, geometry (EPSG:32631).
* ``scenes/<tile>_<YYYYMMDD>T<HHMMSS>_<band>_<res>m.tif``: B02, B03, B04, B08 at 10 m,
  B11, B12, SCL at 20 m; uint16, tiled 256x256, DEFLATE, nodata 0.
* ``field_truth.parquet``: the hidden calendar of every field (harvest, tillage and
  cover-crop days...), for checking what a model learnt.
* ``simulation.json``: seed, size, parameters, class counts, provenance.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
import shapely
from affine import Affine
from numpy.typing import NDArray

from regenmap.errors import ConfigError, OutputError
from regenmap.geo.sentinel2 import (
    BOA_ADD_OFFSET,
    BOA_QUANTIFICATION_VALUE,
    NODATA,
    band_filename,
    band_resolution,
)
from regenmap.geo.simulate.landscape import Landscape, build_landscape
from regenmap.geo.simulate.noise import SmoothNoise
from regenmap.geo.simulate.params import (
    BANDS_10M,
    BANDS_20M,
    BLOCK,
    CRS,
    DEFAULT_N_DATES,
    ENDMEMBERS,
    FIRST_FIELD_LABEL,
    LABEL_GRASS,
    LABEL_HEDGE,
    LABEL_ROAD,
    LABEL_TRACK,
    LABEL_WATER,
    ORIGIN_X,
    ORIGIN_Y,
    SIZES,
    SPECTRA_DRY,
    SPECTRA_WET,
    STAC_NAMES,
    TILE_ID,
    YEAR,
    SizeSpec,
)
from regenmap.geo.simulate.phenology import abundance_table, field_fractions, moisture_index
from regenmap.geo.simulate.practices import TARGETS, Labels, assign_labels, assign_regions
from regenmap.geo.simulate.raster import (
    ChunkMix,
    Texture,
    chunk_mix,
    mix_abundances,
    pixel_cover,
    render_chunk,
)
from regenmap.geo.simulate.sky import Sky, draw_sky
from regenmap.io import atomic_path, write_json_atomic, write_parquet_atomic
from regenmap.provenance import stamp

SIMULATION_SCHEMA = "regenmap.simulation/1"
_STREAMS = ("landscape", "labels", "phenology", "texture", "sky", "noise")
#: Sensing times (UTC) of the two relative orbits that image the tile, alternating.
_SENSING_TIMES = ("104629", "105031")
_N_THREADS = 2


@dataclass(frozen=True)
class SimulatedRegion:
    """Where a simulated region was written and what it holds.

    Attributes
    ----------
    out_dir
        The output folder.
    fields_path
        ``out_dir / "fields.gpkg"``, layer ``fields``.
    scenes_dir
        ``out_dir / "scenes"``: one GeoTIFF per acquisition and band.
    crs
        CRS of fields and scenes, e.g. ``"EPSG:32631"``.
    n_fields
        Number of fields.
    n_acquisitions
        Number of acquisition dates.
    targets
        Practice targets and their classes.
    """

    out_dir: Path
    fields_path: Path
    scenes_dir: Path
    crs: str
    n_fields: int
    n_acquisitions: int
    targets: dict[str, list[str]]


def acquisition_days(n_dates: int) -> NDArray[np.float64]:
    """Days of year of ``n_dates`` acquisitions spread evenly over the year (every 5 days for 73)."""
    return 3.0 + np.floor(np.arange(n_dates) * 365.0 / n_dates)


def _write_fields(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """Write the fields layer atomically with fixed GeoPackage timestamps."""
    with atomic_path(path) as tmp:
        old = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": f"{YEAR}-01-01T00:00:00Z"})
        try:
            pyogrio.write_dataframe(gdf, tmp, layer="fields", driver="GPKG",
                                    promote_to_multi=True, geometry_type="MultiPolygon")
        finally:
            pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": old})


def _scene_profile(width: int, height: int, transform: Affine) -> dict[str, Any]:
    return {"driver": "GTiff", "dtype": "uint16", "count": 1, "width": width, "height": height,
            "crs": CRS, "transform": transform, "nodata": NODATA, "tiled": True,
            "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate", "predictor": 2,
            "zlevel": 1}


def _chunk_rows(spec: SizeSpec) -> list[slice]:
    h = spec.height_px
    return [slice(r0, min(h, r0 + spec.chunk_rows)) for r0 in range(0, h, spec.chunk_rows)]


def _texture_grid(texture: Texture, transform: Affine, spec: SizeSpec) -> NDArray[np.float16]:
    """Within-field multipliers of the whole grid, (3, rows, cols) float16 (2 B a value)."""
    xs = np.asarray(transform.c + (np.arange(spec.width_px) + 0.5) * transform.a, dtype=np.float64)
    tex = np.empty((3, spec.height_px, spec.width_px), dtype=np.float16)
    for rows in _chunk_rows(spec):
        ys = np.asarray(transform.f + (np.arange(rows.start, rows.stop) + 0.5) * transform.e,
                        dtype=np.float64)
        tex[:, rows] = texture.multipliers(xs, ys)
    return tex


def _write_acquisition(scenes_dir: Path, when: str, spec: SizeSpec, transform: Affine,
                       mixes: list[ChunkMix], texture: NDArray[np.float16],
                       abundance: NDArray[np.float32], sky: Sky, noise_seed: list[int]) -> None:
    """Render one acquisition chunk by chunk into its seven band files (each written atomically)."""
    w, h = spec.width_px, spec.height_px
    bands = (*BANDS_10M, *BANDS_20M, "SCL")
    t20 = transform @ Affine.scale(2.0)
    files = {}
    # each band file is closed, then renamed into place, when the block ends without error
    with ExitStack() as stack:
        for b in bands:
            tmp = stack.enter_context(atomic_path(scenes_dir / band_filename(TILE_ID, when, b)))
            is10 = band_resolution(b) == 10
            prof = _scene_profile(w if is10 else w // 2, h if is10 else h // 2,
                                  transform if is10 else t20)
            files[b] = stack.enter_context(rasterio.open(tmp, "w", **prof))
        xs = np.asarray(transform.c + (np.arange(w) + 0.5) * transform.a, dtype=np.float64)
        for k, rows in enumerate(_chunk_rows(spec)):
            ys = np.asarray(transform.f + (np.arange(rows.start, rows.stop) + 0.5) * transform.e,
                            dtype=np.float64)
            rng = np.random.default_rng([*noise_seed, k])
            ab = mix_abundances(mixes[k], abundance)
            out = render_chunk(ab, texture[:, rows], sky, xs, ys, rng)
            for b, arr in out.items():
                is10 = band_resolution(b) == 10
                row = rows.start if is10 else rows.start // 2
                win = rasterio.windows.Window(0, row, arr.shape[1], arr.shape[0])
                files[b].write(arr, 1, window=win)
        for b, ds in files.items():
            ds.set_band_description(1, b)
            tags = {"BAND": b, "TILE_ID": TILE_ID, "SENSING_TIME": when,
                    "SIMULATED": "regenmap.geo.simulate"}
            if b != "SCL":
                tags.update(STAC_NAME=STAC_NAMES[b], BOA_ADD_OFFSET=str(BOA_ADD_OFFSET),
                            BOA_QUANTIFICATION_VALUE=str(BOA_QUANTIFICATION_VALUE))
            ds.update_tags(**tags)


def _calcareous_share(rng: np.random.Generator, cx: NDArray[np.float64],
                      cy: NDArray[np.float64], bounds: tuple[float, float, float, float]
                      ) -> NDArray[np.float64]:
    """Share of calcareous soil per field: a smooth (2 km) soil map plus field noise."""
    xmin, ymin, xmax, ymax = bounds
    soils = SmoothNoise.create(rng, x0=xmin, y0=ymax, width_m=xmax - xmin, height_m=ymax - ymin,
                               scale_m=2000.0, octaves=2)
    step = 50.0
    xs = np.arange(xmin, xmax + step, step)
    ys = np.arange(ymax, ymin - step, -step)
    grid = soils.on_grid(xs, ys)
    col = np.clip(np.rint((cx - xmin) / step).astype(int), 0, xs.size - 1)
    row = np.clip(np.rint((ymax - cy) / step).astype(int), 0, ys.size - 1)
    share = 0.35 + 0.25 * grid[row, col] + rng.normal(0.0, 0.1, cx.size)
    return np.asarray(np.clip(share, 0.0, 1.0), dtype=np.float64)


def _label_layers(land: Landscape, fields: NDArray[np.object_]
                  ) -> list[tuple[list[Any], list[int]]]:
    """Drawing order of the land-cover labels: surroundings first, fields last."""
    return [
        (list(land.hedges), [LABEL_HEDGE] * land.hedges.size),
        (list(land.ponds), [LABEL_WATER] * land.ponds.size),
        (list(land.tracks), [LABEL_TRACK] * land.tracks.size),
        (list(land.roads), [LABEL_ROAD] * land.roads.size),
        (list(fields), list(range(FIRST_FIELD_LABEL, FIRST_FIELD_LABEL + fields.size))),
    ]


def simulate_region(out_dir: str | Path, *,
                    size: Literal["small", "medium", "large"] = "small", seed: int = 0,
                    n_dates: int | None = None, years: int = 1) -> SimulatedRegion:
    """Write a seeded simulated farming region: field polygons and a year of S2 L2A scenes.

    Parameters
    ----------
    out_dir
        Folder to write into (created if missing). Existing files of the same names
        are replaced.
    size
        ``small`` (~300 fields, 3.84 km square, seconds), ``medium`` (~2,000 fields,
        12.8 km) or ``large`` (~20,000 fields, 51.2 km, 5120x5120 px; benchmark).
        ``tiny`` (~60 fields) exists for tests.
    seed
        Same seed and size give identical polygons and byte-identical rasters.
    n_dates
        Number of acquisitions spread evenly over the year; default 73 (every 5 days).
    years
        Consecutive years simulated (from 2023) on the same fields. The first year is the
        same whatever ``years`` is; each later year draws its own crops, weather and
        clouds, and practices that most farms keep from one year to the next. With more
        than one year, ``labels.csv`` holds every field's labels per year (``season``).

    Returns
    -------
    SimulatedRegion
        Paths and counts of what was written.

    Raises
    ------
    ConfigError
        Unknown size or n_dates < 1.
    OutputError
        The output folder cannot be created.
    """
    if size not in SIZES:
        raise ConfigError(f"simulate_region: unknown size {size!r}; use one of "
                          f"{', '.join(k for k in SIZES if k != 'tiny')}")
    n = DEFAULT_N_DATES if n_dates is None else int(n_dates)
    if n < 1 or n > 365:
        raise ConfigError(f"simulate_region: n_dates={n_dates!r} must be between 1 and 365")
    if not 1 <= int(years) <= 10:
        raise ConfigError(f"simulate_region: years={years!r} must be between 1 and 10")
    spec = SIZES[size]
    out = Path(out_dir)
    scenes_dir = out / "scenes"
    try:
        scenes_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({exc}); choose a writable path",
                          path=out) from exc
    streams = dict(zip(_STREAMS, np.random.SeedSequence(seed).spawn(len(_STREAMS)),
                       strict=True))
    rngs = {k: np.random.default_rng(v) for k, v in streams.items()}

    width_m, height_m = spec.width_px * 10.0, spec.height_px * 10.0
    bounds = (ORIGIN_X, ORIGIN_Y - height_m, ORIGIN_X + width_m, ORIGIN_Y)
    transform = Affine(10.0, 0.0, ORIGIN_X, 0.0, -10.0, ORIGIN_Y)

    land = build_landscape(rngs["landscape"], bounds=bounds, target_fields=spec.target_fields,
                           block_m=spec.block_m)
    cent = shapely.centroid(land.fields)
    cx, cy = shapely.get_x(cent), shapely.get_y(cent)
    order = np.lexsort((np.round(cx, 3), -np.round(cy, 3)))  # north to south, then west-east
    fields = land.fields[order]
    cx, cy = cx[order], cy[order]
    n_fields = fields.size
    region = assign_regions(cx, cy, bounds, spec.n_regions_x, spec.n_regions_y)
    labels = assign_labels(rngs["labels"], region)
    field_ids = np.asarray([f"F{i + 1:05d}" for i in range(n_fields)])

    doy = acquisition_days(n)
    frac, season = field_fractions(rngs["phenology"], doy, labels.crop, labels.tillage,
                                   labels.winter_cover)
    soil_brightness = rngs["phenology"].uniform(0.85, 1.15, n_fields)
    calcareous = _calcareous_share(rngs["phenology"], cx, cy, bounds)
    abundance = abundance_table(frac, doy, soil_brightness, calcareous)
    wetness = moisture_index(rngs["phenology"], doy)

    area_ha = shapely.area(fields) / 10_000.0
    gdf = gpd.GeoDataFrame({"field_id": field_ids, "region": labels.region, "crop": labels.crop,
                            "tillage": labels.tillage, "winter_cover": labels.winter_cover,
                            "area_ha": area_ha.astype(np.float64)},
                           geometry=gpd.GeoSeries(fields, crs=CRS), crs=CRS)
    fields_path = out / "fields.gpkg"
    _write_fields(gdf, fields_path)
    summary = _summary(gdf)
    del gdf
    truth = pd.DataFrame({"field_id": field_ids, **season.as_columns(),
                          "soil_brightness": soil_brightness, "calcareous_share": calcareous})
    write_parquet_atomic(truth, out / "field_truth.parquet")

    label_dtype = np.uint16 if FIRST_FIELD_LABEL + n_fields < 65535 else np.int32
    cover = pixel_cover(_label_layers(land, fields), transform=transform, width=spec.width_px,
                        height=spec.height_px, supersample=spec.supersample, fill=LABEL_GRASS,
                        chunk_rows=spec.chunk_rows, dtype=label_dtype)
    del land, fields  # geometries are not needed any more: keep the large size's memory low
    mixes = [chunk_mix(cover, rows) for rows in _chunk_rows(spec)]
    del cover
    tex_rng = rngs["texture"]
    texture = Texture(*(SmoothNoise.create(tex_rng, x0=bounds[0], y0=bounds[3], width_m=width_m,
                                           height_m=height_m, scale_m=250.0, octaves=3)
                        for _ in range(3)))

    tex = _texture_grid(texture, transform, spec)
    render = _Renderer(scenes_dir, spec, transform, mixes, tex, bounds)
    acquisitions = render.year(YEAR, doy, abundance, wetness, streams["sky"].spawn(n),
                               streams["noise"].spawn(n))
    yearly = [(str(YEAR), labels, season)]
    for k in range(1, int(years)):
        year_streams = dict(zip(_YEAR_STREAMS, np.random.SeedSequence([seed, k]).spawn(
            len(_YEAR_STREAMS)), strict=True))
        rng_labels = np.random.default_rng(year_streams["labels"])
        rng_phen = np.random.default_rng(year_streams["phenology"])
        next_labels = _next_year_labels(rng_labels, labels, region)
        frac_k, season_k = field_fractions(rng_phen, doy, next_labels.crop, next_labels.tillage,
                                           next_labels.winter_cover)
        abundance_k = abundance_table(frac_k, doy, soil_brightness, calcareous)
        wetness_k = moisture_index(rng_phen, doy)
        acquisitions += render.year(YEAR + k, doy, abundance_k, wetness_k,
                                    year_streams["sky"].spawn(n), year_streams["noise"].spawn(n))
        yearly.append((str(YEAR + k), next_labels, season_k))
    if int(years) > 1:
        _write_yearly(out, field_ids, yearly, soil_brightness, calcareous)

    meta = _metadata(seed=seed, size=size, spec=spec, n_dates=n, summary=summary,
                     acquisitions=acquisitions)
    if int(years) > 1:
        meta["years"] = [int(y) for y, _, _ in yearly]
    write_json_atomic(out / "simulation.json", meta)
    return SimulatedRegion(out_dir=out, fields_path=fields_path, scenes_dir=scenes_dir, crs=CRS,
                           n_fields=n_fields, n_acquisitions=n * int(years),
                           targets={k: list(v) for k, v in TARGETS.items()})


#: Random streams drawn again for every year after the first (the landscape stays).
_YEAR_STREAMS = ("labels", "phenology", "sky", "noise")
#: Share of fields keeping last year's tillage and winter-cover practice.
PRACTICE_PERSISTENCE = 0.7


def _next_year_labels(rng: np.random.Generator, last: Labels, region: NDArray[np.str_]
                      ) -> Labels:
    """Next year's crops and practices: new draws, most farms keeping their practices."""
    fresh = assign_labels(rng, region)
    keep = rng.random(region.size) < PRACTICE_PERSISTENCE
    return Labels(region=region, crop=fresh.crop,
                  tillage=np.where(keep, last.tillage, fresh.tillage),
                  winter_cover=np.where(keep, last.winter_cover, fresh.winter_cover))


def _write_yearly(out: Path, field_ids: NDArray[np.str_], yearly: list[tuple[str, Labels, Any]],
                  soil_brightness: NDArray[np.float64], calcareous: NDArray[np.float64]) -> None:
    """Write ``labels.csv`` (labels per field and year) and the truth of every year."""
    rows = [pd.DataFrame({"field_id": field_ids, "season": year, "region": lab.region,
                          "crop": lab.crop, "tillage": lab.tillage,
                          "winter_cover": lab.winter_cover}) for year, lab, _ in yearly]
    table = pd.concat(rows, ignore_index=True)
    with atomic_path(out / "labels.csv") as tmp:
        table.to_csv(tmp, index=False)
    truth = pd.concat([pd.DataFrame({"field_id": field_ids, "season": year,
                                     **season.as_columns(), "soil_brightness": soil_brightness,
                                     "calcareous_share": calcareous})
                       for year, _, season in yearly], ignore_index=True)
    write_parquet_atomic(truth, out / "field_truth_by_year.parquet")


@dataclass(frozen=True)
class _Renderer:
    """Renders the acquisitions of one year into band files (the landscape is fixed)."""

    scenes_dir: Path
    spec: SizeSpec
    transform: Affine
    mixes: list[ChunkMix]
    tex: NDArray[np.float16]
    bounds: tuple[float, float, float, float]

    def year(self, year: int, doy: NDArray[np.float64], abundance: NDArray[np.float32],
             wetness: NDArray[np.float64], sky_seeds: list[np.random.SeedSequence],
             noise_seeds: list[np.random.SeedSequence]) -> list[dict[str, Any]]:
        """Write every acquisition of ``year``; return their descriptions."""

        def acquire(i: int) -> dict[str, Any]:
            day = date(year, 1, 1) + timedelta(days=int(doy[i]) - 1)
            when = f"{day:%Y%m%d}T{_SENSING_TIMES[i % 2]}"
            sky = draw_sky(np.random.default_rng(sky_seeds[i]), doy=float(doy[i]),
                           wetness=float(wetness[i]), bounds=self.bounds)
            noise_seed = [int(x) for x in noise_seeds[i].generate_state(2)]
            _write_acquisition(self.scenes_dir, when, self.spec, self.transform, self.mixes,
                               self.tex, abundance[i], sky, noise_seed)
            return {"datetime": when, "doy": int(doy[i]),
                    "cloud_cover": round(sky.cloud_cover, 3), "cirrus": sky.cirrus is not None,
                    "swath_edge": sky.swath_edge is not None,
                    "wetness": round(float(wetness[i]), 3)}

        # acquisitions are independent (own seeds): threads overlap numpy and GDAL compression
        with ThreadPoolExecutor(max_workers=_N_THREADS) as pool:
            return list(pool.map(acquire, range(len(doy))))


def _counts(s: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in s.value_counts().sort_index().items()}


def _summary(gdf: gpd.GeoDataFrame) -> dict[str, Any]:
    """Field and class counts, overall and per region, for simulation.json."""
    by_region = {r: {"n_fields": len(g), "tillage": _counts(g["tillage"]),
                     "winter_cover": _counts(g["winter_cover"])}
                 for r, g in gdf.groupby("region", sort=True)}
    return {"n_fields": len(gdf),
            "class_counts": {"tillage": _counts(gdf["tillage"]),
                             "winter_cover": _counts(gdf["winter_cover"]),
                             "crop": _counts(gdf["crop"]), "by_region": by_region},
            "area_ha": {"min": float(gdf["area_ha"].min()), "max": float(gdf["area_ha"].max()),
                        "median": float(gdf["area_ha"].median()),
                        "total": float(gdf["area_ha"].sum())}}


def _metadata(*, seed: int, size: str, spec: SizeSpec, n_dates: int, summary: dict[str, Any],
              acquisitions: list[dict[str, Any]]) -> dict[str, Any]:
    params = {"tile_id": TILE_ID, "crs": CRS, "origin": [ORIGIN_X, ORIGIN_Y],
              "resolution_m": 10.0, "width_px": spec.width_px, "height_px": spec.height_px,
              "n_dates": n_dates, "year": YEAR, "supersample": spec.supersample,
              "endmembers": {name: {"dry": SPECTRA_DRY[i].round(4).tolist(),
                                    "wet": SPECTRA_WET[i].round(4).tolist()}
                             for i, name in enumerate(ENDMEMBERS)},
              "band_order": ["B02", "B03", "B04", "B08", "B11", "B12"],
              "dn": "round((reflectance + 0.1) * 10000), 0 = nodata"}
    return {"seed": seed, "size": size, "n_fields": summary["n_fields"],
            "n_acquisitions": n_dates, "crs": CRS,
            "targets": {k: list(v) for k, v in TARGETS.items()}, "parameters": params,
            "class_counts": summary["class_counts"], "area_ha": summary["area_ha"],
            "acquisitions": acquisitions,
            "provenance": stamp(schema=SIMULATION_SCHEMA,
                                config={"seed": seed, "size": size, "n_dates": n_dates})}
