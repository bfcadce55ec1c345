"""A notebook-friendly view of a job: scenes, fields' time series, features, models, results.

Every function takes the job's configuration (a :class:`RunConfig`, the path of
its YAML file, or the :class:`~regenmap.pipelines.job.RunResult` of
``regenmap.pipelines.demo.demo``) and returns an xarray object, a (Geo)DataFrame
or an object with an HTML representation, so that Jupyter shows it well::

    from regenmap.pipelines import explore
    cfg = explore.load("demo-out/demo.yaml")
    explore.scene_stack(cfg, tile="r0_c0", time=slice("2023-03", "2023-05"))
    explore.field_series(cfg, "F000012").ndvi_mean.plot()
    explore.results(cfg).explore(column="tillage")

Nothing here writes: these functions read what the stages wrote (or the scenes).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from regenmap.errors import ConfigError, InputError
from regenmap.pipelines import inputs
from regenmap.pipelines.config import RunConfig, load_config
from regenmap.pipelines.layout import RunLayout, read_features, read_observations
from regenmap.schema import FIELD_ID, TIME

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

    from regenmap.geo.catalog import Acquisition
    from regenmap.geo.grid import GridSpec
    from regenmap.pipelines.tiling import TilePlan

#: Bands shown by default in :func:`scene_stack` (those the scenes have).
DEFAULT_BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")

TimeSelection = slice | str | Sequence[str] | None


def load(config: Any) -> RunConfig:
    """Return the :class:`RunConfig` of a YAML path, a RunConfig or a run's result.

    Raises
    ------
    ConfigError
        If ``config`` is none of these.
    """
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, str | Path):
        return load_config(Path(config))
    inner = getattr(config, "config", None)
    if isinstance(inner, RunConfig):
        return inner
    raise ConfigError(f"expected a RunConfig, a YAML path or a run result, got "
                      f"{type(config).__name__}")


# --------------------------------------------------------------------------- scenes
def catalog(config: Any) -> pd.DataFrame:
    """List the job's acquisitions: one row per acquisition.

    Returns
    -------
    pandas.DataFrame
        Columns ``acquisition_id``, ``time`` (datetime64[ns]), ``sensor``, ``tile``,
        ``bands`` (comma-separated common names), ``crs``; sorted by time.
    """
    acqs = _acquisitions(load(config))
    return pd.DataFrame({
        "acquisition_id": [a.id for a in acqs],
        TIME: pd.to_datetime([a.time for a in acqs]),
        "sensor": [a.sensor for a in acqs],
        "tile": [a.tile for a in acqs],
        "bands": [",".join(sorted(a.assets)) for a in acqs],
        "crs": [a.crs for a in acqs],
    })


def _acquisitions(cfg: RunConfig) -> list[Acquisition]:
    if cfg.scenes is None:
        raise ConfigError("scenes: this job has no 'scenes' section, so there are no scenes "
                          "to explore (it starts from observations)")
    acqs, _ = inputs.catalog(cfg)
    return sorted(acqs, key=lambda a: (a.time, a.id))


def _plan(cfg: RunConfig, acqs: list[Acquisition], fields: gpd.GeoDataFrame
          ) -> tuple[GridSpec, TilePlan]:
    from regenmap.features.indices import resolve_indices
    from regenmap.features.observe import needed_bands
    from regenmap.pipelines.tiling import plan_job

    indices = resolve_indices(cfg.extract.indices)
    bands = sorted({b for a in acqs for b in needed_bands(a, indices)})
    return plan_job(acqs, fields.geometry, bands, cfg.extract.tile_size_px)


def tiles(config: Any) -> gpd.GeoDataFrame:
    """Show the job's tile plan: one row per tile, its number of fields and its window.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``tile_id``, ``n_fields``, ``width_px``, ``height_px``; geometry is the tile
        window (the bounding box of its fields on the reference grid) in the grid's CRS.
    """
    import geopandas as gpd
    import shapely

    from regenmap.pipelines.tiling import tile_window

    cfg = load(config)
    acqs = _acquisitions(cfg)
    fields = inputs.fields(cfg)
    grid, plan = _plan(cfg, acqs, fields)
    rows = []
    for tile in plan.tiles:
        window = tile_window(grid, fields.geometry.iloc[tile.rows])
        rows.append({"tile_id": tile.id, "n_fields": len(tile.rows), "width_px": window.width,
                     "height_px": window.height, "geometry": shapely.box(*window.bounds)})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=grid.crs)


def _select_times(acqs: list[Acquisition], time: TimeSelection) -> list[Acquisition]:
    if time is None:
        return acqs
    stamps = pd.DatetimeIndex([pd.Timestamp(a.time) for a in acqs])
    series = pd.Series(np.arange(len(acqs)), index=stamps)
    if isinstance(time, slice | str):
        picked = series.loc[time]
        positions = [int(v) for v in np.atleast_1d(np.asarray(picked))]
    else:
        wanted = pd.DatetimeIndex(pd.to_datetime(list(time)))
        positions = [int(i) for i in np.flatnonzero(stamps.normalize().isin(wanted.normalize())
                                                    | stamps.isin(wanted))]
    if not positions:
        raise InputError(f"time={time!r} selects no acquisition; the scenes span "
                         f"{stamps.min():%Y-%m-%d} to {stamps.max():%Y-%m-%d}")
    return [acqs[i] for i in positions]


def scene_stack(config: Any, tile: str | None = None, *, bands: Sequence[str] | None = None,
                time: TimeSelection = None, masked: bool = True) -> xr.Dataset:
    """Read scenes as a labelled stack: one variable per band over ``(time, y, x)``.

    Parameters
    ----------
    config
        The job.
    tile
        A tile id of the plan (see :func:`tiles`): read only that tile's window; the whole
        reference grid if None (mind the memory on big scenes: choose a tile and times).
    bands
        STAC common names (``red``, ``nir``...); those of :data:`DEFAULT_BANDS` the scenes
        have if None.
    time
        Acquisitions to read: a ``slice("2023-03", "2023-05")``, a date string, a list of
        dates, or all if None.
    masked
        Set pixels flagged by the scene's quality mask (clouds, shadows...) to NaN.

    Returns
    -------
    xarray.Dataset
        float32 surface reflectance (after scale/offset; NaN = nodata or masked) per band,
        dims ``(time, y, x)``; coordinates ``time`` (datetime64[ns]), ``x``/``y`` (pixel
        centres, CRS units), ``acquisition_id``; plus ``valid`` (bool, not masked).
        ``attrs`` holds ``crs`` and ``transform`` (GDAL order).

    Raises
    ------
    InputError
        Unknown tile or band, or a time selection matching no acquisition.
    """
    from regenmap.geo.stack import read_stack
    from regenmap.pipelines.tiling import tile_window

    cfg = load(config)
    acqs = _acquisitions(cfg)
    fields = inputs.fields(cfg)
    grid, plan = _plan(cfg, acqs, fields)
    if tile is not None:
        found = [t for t in plan.tiles if t.id == tile]
        if not found:
            raise InputError(f"no tile {tile!r} in the plan; tiles: "
                             f"{', '.join(t.id for t in plan.tiles[:20])}")
        grid = tile_window(grid, fields.geometry.iloc[found[0].rows])
    chosen = _select_times([a for a in acqs if grid.same_crs(a.grid_for(list(a.assets)))], time)
    available = sorted({b for a in chosen for b in a.assets})
    names = list(bands) if bands is not None else [b for b in DEFAULT_BANDS if b in available]
    stack = read_stack(chosen, grid, names, masked=masked)
    stack.attrs["tile"] = tile or ""
    return stack


def fields(config: Any) -> gpd.GeoDataFrame:
    """Return the job's field polygons as read by the extraction (``field_id``, ``area_ha``...)."""
    return inputs.fields(load(config))


# --------------------------------------------------------------------------- tables
def observations(config: Any, field_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Read the observations table (all tiles), optionally only some fields.

    Returns
    -------
    pandas.DataFrame
        Columns as in ``docs/architecture.md``; sorted by ``field_id`` then ``time``.
    """
    table = read_observations(RunLayout.of(load(config)), field_ids)
    return table.sort_values([FIELD_ID, TIME], kind="stable").reset_index(drop=True)


def features(config: Any) -> pd.DataFrame:
    """Read the features table (``field_id`` then float32 feature columns)."""
    return read_features(RunLayout.of(load(config)))


def field_series(config: Any, field_id: str) -> xr.Dataset:
    """Return one field's time series: every acquisition, plus the regular grid the features use.

    Parameters
    ----------
    config
        The job (its observations must exist).
    field_id
        The field.

    Returns
    -------
    xarray.Dataset
        Dims ``time`` (acquisitions) with the observation columns (``ndvi_mean``,
        ``valid_fraction``, ``n_valid``...; float32, NaN when nothing valid), and
        ``grid_time`` (the regular composite grid of ``features.step_days``) with one
        variable per index (``ndvi``, ``ndti``..., gap-filled as the features see them)
        and ``n_obs_<index>``. ``attrs`` holds ``field_id`` and the grid options.

    Raises
    ------
    InputError
        If the field has no observation.
    """
    import xarray as xr

    from regenmap.features.timegrid import regularize, to_xarray

    cfg = load(config)
    obs = observations(cfg, [field_id])
    if obs.empty:
        raise InputError(f"field_id {field_id!r} has no observation (unknown id, or outside "
                         "every scene; see fields_status.parquet)")
    grid = regularize(obs, cfg.features.options())
    regular = to_xarray(grid).sel(field=str(field_id)).drop_vars("field")
    regular = regular.rename({TIME: "grid_time"})
    per_acq = obs.drop(columns=[FIELD_ID]).set_index(TIME)
    ds = xr.Dataset.from_dataframe(per_acq)
    merged = xr.merge([ds, regular], combine_attrs="drop")
    merged.attrs = {"field_id": str(field_id), **regular.attrs}
    return merged


def results(config: Any) -> gpd.GeoDataFrame:
    """Read the results GeoPackage's ``fields`` layer (one row per field, styled columns).

    ``attrs["targets"]`` holds ``{target: [class, ...]}``.
    """
    from regenmap.maps import read_results

    path = RunLayout.of(load(config)).gpkg
    if not path.is_file():
        raise InputError("no results yet: run `regenmap predict` (or run) first", path=path)
    return read_results(path)


def result_map(config: Any, target: str | None = None, *, height_px: int = 600,
               tiles: str | None = None) -> Any:
    """Draw an interactive map of one target's classes (works offline, with a legend).

    Parameters
    ----------
    config
        The job.
    target
        Target to colour by; the first one if None.
    height_px
        Height of the map in the notebook.
    tiles
        Background tiles (a ``{z}/{x}/{y}`` URL or ``"OpenStreetMap"``, fetched by the
        browser); none by default, so the map works offline.

    Returns
    -------
    object
        Shown inline by Jupyter (see :func:`regenmap.maps.interactive.result_map`).
    """
    from regenmap.maps.interactive import result_map as draw

    frame = results(config)
    return draw(frame, frame.attrs.get("targets", {}), target, height_px=height_px, tiles=tiles)


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class HTMLDocument:
    """A self-contained HTML file (a model card, the run report) shown inline by Jupyter.

    Attributes
    ----------
    path
        The HTML file.
    height_px
        Height of the inline frame.
    """

    path: Path
    height_px: int = 600

    @property
    def text(self) -> str:
        """The HTML source."""
        return self.path.read_text(encoding="utf-8")

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.text, quote=True)}" '
                f'style="width:100%;height:{self.height_px}px;border:1px solid #ccc"></iframe>')


def _model_dir(cfg: RunConfig, target: str) -> Path:
    path = RunLayout.of(cfg).model_dir(target)
    if not (path / "metadata.json").is_file():
        raise InputError(f"no trained model for target {target!r}: run `regenmap train` first "
                         f"(targets: {', '.join(cfg.model.targets)})", path=path)
    return path


def model_card(config: Any, target: str) -> HTMLDocument:
    """Return a target's model card (shown inline in Jupyter; ``.text`` is the HTML)."""
    cfg = load(config)
    _model_dir(cfg, target)
    return HTMLDocument(RunLayout.of(cfg).model_card(target))


def report(config: Any) -> HTMLDocument:
    """Return the run report (shown inline in Jupyter)."""
    path = RunLayout.of(load(config)).report
    if not path.is_file():
        raise InputError("no run report yet: run `regenmap predict` (or run) first", path=path)
    return HTMLDocument(path, height_px=800)


def explain(config: Any, field_ids: Sequence[str], target: str, *, top: int = 8
            ) -> pd.DataFrame:
    """Why the model labels these fields as it does: the features that pushed each one most.

    Parameters
    ----------
    config
        The job (features and model must exist).
    field_ids
        Fields to explain.
    target
        Target whose model to explain.
    top
        Features listed per field, by absolute contribution.

    Returns
    -------
    pandas.DataFrame
        One row per (field, feature), as :func:`regenmap.models.explain.top_contributions`.

    Raises
    ------
    InputError
        If a field is not in the features table.
    """
    from regenmap.models.artifact import load_model
    from regenmap.models.explain import top_contributions

    cfg = load(config)
    table = features(cfg).set_index(FIELD_ID)
    ids = [str(f) for f in field_ids]
    missing = [f for f in ids if f not in table.index]
    if missing:
        raise InputError(f"field_id(s) {', '.join(missing[:5])} are not in the features table")
    model = load_model(_model_dir(cfg, target))
    values = table.loc[ids, list(model.feature_names)].to_numpy(dtype=np.float32)
    return top_contributions(model, values, ids, top=top)
