"""Configuration -> domain objects: sensor profiles, scene catalog, fields and labels.

Every stage (and the notebook view in :mod:`regenmap.pipelines.explore`) reads its
inputs through these functions, so that a job's fields are validated the same
way whether they are extracted, labelled or mapped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from regenmap.errors import ConfigError, FieldError, InputError
from regenmap.features.seasons import NamedSeason, Season, SeasonCalendar
from regenmap.schema import AREA_HA, FIELD_ID, SEASON

if TYPE_CHECKING:
    import geopandas as gpd

    from regenmap.geo.catalog import Acquisition, SceneProblem
    from regenmap.geo.sensors import SensorProfile
    from regenmap.models.options import LabelledFields
    from regenmap.pipelines.config import RunConfig, ScenesInput

log = logging.getLogger(__name__)

log = logging.getLogger(__name__)

#: Group name used when fields are grouped in automatic spatial blocks.
BLOCK_GROUP = "spatial_block"


# --------------------------------------------------------------------------- sensors and scenes
def builtin_sensor_dir() -> Path:
    """Folder of the built-in sensor profiles (``configs/sensors``)."""
    from regenmap.pipelines.config import CONFIGS_DIR

    return CONFIGS_DIR / "sensors"


def sensor_profile(name: str, *, base_dir: Path | None = None) -> SensorProfile:
    """Load a sensor profile by built-in name (``configs/sensors/<name>.yaml``) or YAML path.

    Parameters
    ----------
    name
        Built-in profile name, or the path of a profile YAML.
    base_dir
        Folder relative paths are resolved against (the configuration's).

    Raises
    ------
    ConfigError
        If no such profile exists (listing the built-in ones) or it is invalid.
    """
    from regenmap.geo.sensors import SensorProfile
    from regenmap.pipelines.config import read_yaml

    candidates = [Path(name)]
    if base_dir is not None:
        candidates.insert(0, base_dir / name)
    path = next((p for p in candidates if p.suffix in (".yaml", ".yml") and p.is_file()), None)
    if path is None:
        builtin = builtin_sensor_dir()
        path = builtin / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in builtin.glob("*.yaml"))
            raise ConfigError(f"scenes.sensor: no sensor profile {name!r}; built-in profiles: "
                              f"{', '.join(known)}, or give the path of a profile YAML")
    profile = SensorProfile.from_mapping(read_yaml(path), source=str(path))
    if profile.index_layers:
        from regenmap.features.indices import get_index

        for layer in profile.index_layers:  # a misspelt index layer would never be used
            try:
                get_index(layer.name)
            except ConfigError as err:
                raise ConfigError(f"{path}: index_layers: {err}") from None
    return profile


def sensor_profiles(cfg: RunConfig) -> list[SensorProfile]:
    """Return the sensor profiles a job's scenes are read with (``scenes.sensor``, one or a list)."""
    if cfg.scenes is None:
        raise ConfigError("scenes: this stage needs a 'scenes' section (path, sensor, kind), or "
                          "start from existing observations with 'observations:'")
    base = cfg.source.parent if cfg.source else None
    sensor = cfg.scenes.sensor
    names = [sensor] if isinstance(sensor, str) else list(sensor)
    return [sensor_profile(n, base_dir=base) for n in names]


def build_catalog(scenes: ScenesInput, profiles: SensorProfile | list[SensorProfile]
                  ) -> tuple[list[Acquisition], list[SceneProblem]]:
    """Catalogue the scenes of a run, whatever their layout, for one or several sensors.

    With several profiles each scans the same input; a profile matching nothing is
    recorded as a warning (an error if no profile matches anything).
    """
    from regenmap.geo.catalog import SceneProblem, scan_band_files

    if isinstance(profiles, list):
        if len(profiles) == 1:
            return build_catalog(scenes, profiles[0])
        acquisitions: list[Acquisition] = []
        problems: list[SceneProblem] = []
        for prof in profiles:
            try:
                acqs, probs = build_catalog(scenes, prof)
            except InputError as err:
                problems.append(SceneProblem("", str(scenes.path), f"sensor {prof.name}: {err}",
                                             fatal=False, severity="warning"))
                continue
            acquisitions += acqs
            problems += probs
        if not acquisitions:
            raise InputError("no sensor profile matches any scene: "
                             + "; ".join(p.reason for p in problems), path=scenes.path)
        acquisitions.sort(key=lambda a: (a.time, a.id))
        return acquisitions, problems
    profile = profiles
    if scenes.kind == "band_files":
        return scan_band_files(scenes.path, profile)
    if scenes.kind == "time_stack":
        from regenmap.features.indices import available_indices
        from regenmap.geo.time_stack import scan_time_stacks

        return scan_time_stacks(scenes.path, profile, dates=scenes.dates,
                                index_names=available_indices())
    from regenmap.geo.stac import read_stac

    return read_stac(scenes.path, profile)


def catalog(cfg: RunConfig, profiles: list[SensorProfile] | None = None
            ) -> tuple[list[Acquisition], list[SceneProblem]]:
    """Every acquisition of a job's scenes, and the problems met cataloguing them."""
    if cfg.scenes is None:
        raise ConfigError("scenes: this stage needs a 'scenes' section (path, sensor, kind)")
    return build_catalog(cfg.scenes, profiles if profiles is not None else sensor_profiles(cfg))


# --------------------------------------------------------------------------- fields and labels
def fields_path(cfg: RunConfig) -> Path:
    """Return the job's field file, or stop with the fix when the job has none."""
    if cfg.fields is None:
        raise ConfigError("fields: this step needs the field polygons (fields.path); the job "
                          "has none")
    return Path(cfg.fields.path)


def fields(cfg: RunConfig) -> gpd.GeoDataFrame:
    """Return the job's field polygons, validated (:func:`regenmap.geo.fields.read_fields`)."""
    from regenmap.geo.fields import read_fields

    fields_path(cfg)
    assert cfg.fields is not None
    if not Path(cfg.fields.path).exists() and "://" not in str(cfg.fields.path):
        raise InputError("fields file not found; set fields.path", path=cfg.fields.path)
    try:
        return read_fields(cfg.fields.path, layer=cfg.fields.layer,
                           id_column=cfg.fields.id_column, point_pixels=cfg.fields.point_pixels)
    except FieldError as err:
        raise _with_keys(err, "fields") from None


def check_fields(cfg: RunConfig) -> None:
    """Check the job's field file from its metadata (exists, one layer, not empty), at once.

    Run before any stage, so that a bad field file stops a job before a cluster starts.
    Jobs without a field file (``observations:`` only) have nothing to check.
    """
    from regenmap.geo.fields import check_field_file

    if cfg.fields is None:
        return
    if not Path(cfg.fields.path).exists() and "://" not in str(cfg.fields.path):
        raise InputError("fields file not found; set fields.path", path=cfg.fields.path)
    try:
        check_field_file(cfg.fields.path, cfg.fields.layer)
    except FieldError as err:
        raise _with_keys(err, "fields") from None


#: Option names in the geo layer's messages -> the YAML key under a section.
_OPTION_HINTS = {"Name the id column (id_column).": "Set {section}.id_column.",
                 "Name one of them (layer).": "Set {section}.layer to one of them.",
                 "Name the one to read (layer); none is chosen for you.":
                     "Set {section}.layer to the one to read; none is chosen for you."}


def _with_keys(err: FieldError, section: str) -> FieldError:
    """Return the same error, its option names replaced by the YAML keys of ``section``."""
    message = err.message
    for hint, key in _OPTION_HINTS.items():
        message = message.replace(hint, key.format(section=section))
    return FieldError(message, path=err.path)


@dataclass(frozen=True)
class FieldTable:
    """Labelled samples of a run: labels per field, or per field and season.

    Attributes
    ----------
    table
        The targets (labels), indexed by ``field_id`` or by ``(field_id, season)``.
    per_field
        One row per labelled field: ``area_ha`` when known, the group column.
    group
        Group per field (region, tile or automatic block), indexed by ``field_id``, or None.
    group_name
        Name of the group factor (the group column or ``spatial_block``).
    notes
        How groups were chosen when not as configured.
    source
        File the labels were read from.
    seasons
        The seasons the labels name (name -> window); empty when labels have no season.
    """

    table: pd.DataFrame
    per_field: pd.DataFrame
    group: pd.Series | None
    group_name: str
    notes: tuple[str, ...]
    source: Path
    seasons: dict[str, Season] = field(default_factory=dict)

    def area(self) -> pd.Series | None:
        """Field area in hectares (numeric) per field, or None when unknown."""
        if AREA_HA not in self.per_field.columns:
            return None
        return pd.to_numeric(self.per_field[AREA_HA], errors="coerce")

    def factors(self, features: pd.DataFrame, names: Sequence[str]) -> dict[str, pd.Series]:
        """Return the evaluation factors: the named label or field columns and ``obs_density``.

        ``obs_density`` bins the valid observations of every sample in its season.

        Raises
        ------
        ConfigError
            For a name that is neither a label nor a field column.
        """
        out: dict[str, pd.Series] = {}
        for name in names:
            if name in self.table.columns:
                out[name] = self.table[name]
            elif name in self.per_field.columns:
                out[name] = self.per_field[name]
            else:
                known = sorted({*map(str, self.table.columns), *map(str, self.per_field.columns)})
                raise ConfigError(f"model.evaluation_factors: {name!r} is not a column of the "
                                  f"labels or fields ({', '.join(known[:20])})")
        if "obs_n_valid" in features.columns:
            from regenmap.models.data import sample_index

            n = pd.to_numeric(features["obs_n_valid"], errors="coerce").to_numpy()
            bins = np.select([n < 8, n < 16, n < 31], ["<8 obs", "8-15 obs", "16-30 obs"],
                             ">30 obs")
            out["obs_density"] = pd.Series(bins, index=sample_index(features))
        return out

    def labelled(self, features: pd.DataFrame, target: str, cfg: RunConfig,
                 exclude: pd.Series | None = None) -> LabelledFields:
        """Return the models layer's input for one target of this job.

        When the job declares no classes for ``target`` (``model.classes``), the classes
        found in the labels are listed in a warning, so that a stray one is seen.
        """
        from regenmap.models.options import LabelledFields

        labels = self.table[target]
        classes = cfg.model.classes.get(target)
        if classes is None:
            undeclared_classes(labels, target)
        if not isinstance(labels.index, pd.MultiIndex) and SEASON in features.columns \
                and features[SEASON].nunique() > 1:
            raise ConfigError(
                f"the labels in {self.source} say nothing of seasons, but the job describes "
                f"{features[SEASON].nunique()} seasons "
                f"({', '.join(map(str, features[SEASON].unique()[:4]))}): "
                "add a season column to the labels (model.labels.season_column) or map one "
                "season (seasons.map)")
        return LabelledFields.of(features, labels, target=target,
                                 classes=classes, groups=self.group,
                                 group_name=self.group_name, area_ha=self.area(),
                                 exclude=exclude,
                                 factors=self.factors(features, cfg.model.evaluation_factors))


def undeclared_classes(labels: pd.Series, target: str) -> dict[str, int]:
    """Check and list (in a warning) the classes of a target whose classes are not declared.

    Raises
    ------
    ModelError
        For labels that differ only in spelling (:func:`regenmap.models.data.check_classes`).
    """
    from regenmap.models.data import check_classes, clean_labels

    counts = check_classes(clean_labels(labels, target=target), target=target)
    shown = ", ".join(f"{name} ({n})" for name, n in counts.items())
    log.warning("target '%s': model.classes.%s is not set, so its %d classes come from the "
                "labels: %s. Declare them to have any other label refused.", target, target,
                len(counts), shown)
    return counts


def _read_vector_or_table(path: Path, layer: str | None) -> pd.DataFrame:
    import geopandas as gpd

    from regenmap.geo.fields import choose_layer

    if not path.exists():
        raise InputError("labels file not found; set model.labels.path.", path=path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=True)
        if suffix == ".parquet":
            try:
                return gpd.read_parquet(path)
            except (ValueError, KeyError):
                return pd.read_parquet(path)
        try:
            layer = choose_layer(path, layer)
        except FieldError as err:
            raise _with_keys(err, "model.labels") from None
        return gpd.read_file(path, layer=layer, engine="pyogrio")
    except (OSError, ValueError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"cannot read labels ({err}).", path=path) from None


def _shapefile_names(raw: pd.DataFrame, path: Path, wanted: list[str]) -> pd.DataFrame:
    """Read a Shapefile's cut column names (``winter_cov``) as the names asked for, and say so."""
    from regenmap.geo.fields import DBF_NAME_LIMIT, truncated_columns

    found = truncated_columns(path, raw.columns, wanted)
    for name, column in found.items():
        log.warning("labels: column %r of %s read as %r (Shapefile column names are cut to %d "
                    "characters)", column, path.name, name, DBF_NAME_LIMIT)
    return raw.rename(columns={column: name for name, column in found.items()})


def season_calendar(cfg: RunConfig) -> SeasonCalendar:
    """How the job reads season values (``features.year_start``, ``seasons.named``)."""
    return SeasonCalendar(year_start=cfg.features.year_start,
                          named={k: NamedSeason(v.start, v.months)
                                 for k, v in cfg.seasons.named.items()})


def _raw_labels(cfg: RunConfig, *, targets: bool = True) -> tuple[pd.DataFrame, Path, bool]:
    """Return the labels table as read (``field_id`` as str), its path, if it is the fields."""
    mc = cfg.model
    if mc.labels.path is None and cfg.fields is None:
        raise ConfigError("model.labels.path: give the labels file (the job has no fields file "
                          "to take them from)")
    path = Path(mc.labels.path or cfg.fields.path)  # type: ignore[union-attr]
    from_fields = cfg.fields is not None and (
        mc.labels.path is None or Path(cfg.fields.path).resolve() == path.resolve())
    if from_fields:
        raw: pd.DataFrame = fields(cfg)
        id_col = FIELD_ID
    else:
        raw = _read_vector_or_table(path, mc.labels.layer)
        id_col = mc.labels.id_column
    raw = _shapefile_names(raw, path, [id_col, *mc.targets,
                                       *([mc.group_column] if mc.group_column else [])])
    if id_col not in raw.columns:
        raise InputError(f"labels have no id column '{id_col}' (columns: {list(raw.columns)}). "
                         "Set model.labels.id_column.", path=path)
    missing = [t for t in mc.targets if t not in raw.columns]
    if targets and missing:
        raise InputError(f"labels lack the target column(s) {missing} (columns: "
                         f"{[c for c in raw.columns if c != 'geometry']}). Fix model.targets.",
                         path=path)
    raw = raw.rename(columns={id_col: FIELD_ID})
    raw[FIELD_ID] = raw[FIELD_ID].astype(str)
    return raw, path, from_fields


def _row_seasons(cfg: RunConfig, raw: pd.DataFrame, path: Path
                 ) -> tuple[pd.Series | None, dict[str, Season]]:
    """Return each label row's season name (None without seasons) and the seasons named."""
    lab = cfg.model.labels
    calendar = season_calendar(cfg)
    if lab.start_column is not None and lab.end_column is not None:
        for col in (lab.start_column, lab.end_column):
            if col not in raw.columns:
                raise InputError(f"labels have no column '{col}' (model.labels start/end "
                                 f"column); columns: {list(raw.columns)}", path=path)
        try:
            start = pd.to_datetime(raw[lab.start_column], format="mixed")
            end = pd.to_datetime(raw[lab.end_column], format="mixed")
        except (ValueError, TypeError) as err:
            raise InputError(f"season start/end columns hold values that are not dates: "
                             f"{err}", path=path) from None
        values = [f"{a.date()}/{b.date()}" for a, b in zip(start, end, strict=True)]
    else:
        column = lab.season_column or (SEASON if SEASON in raw.columns else None)
        if column is None:
            return None, {}
        if column not in raw.columns:
            raise InputError(f"labels have no season column '{column}' "
                             f"(model.labels.season_column); columns: {list(raw.columns)}",
                             path=path)
        values = raw[column].tolist()
    seasons: dict[str, Season] = {}
    names = []
    cache: dict[str, Season] = {}
    for i, value in enumerate(values):
        if pd.isna(value) or str(value).strip() == "":
            raise InputError(f"label row {i + 1} (field {raw[FIELD_ID].iloc[i]!r}) has no "
                             "season; give every row its season", path=path)
        key = str(value)
        if key not in cache:
            try:
                cache[key] = calendar.parse(value)
            except ConfigError as err:
                raise InputError(f"label row {i + 1}: {err}", path=path) from None
        season = cache[key]
        seasons.setdefault(season.name, season)
        names.append(season.name)
    return pd.Series(names, index=raw.index, dtype=object), seasons


def labels(cfg: RunConfig) -> FieldTable:
    """Read the labels, their seasons, groups and field sizes of a run.

    Labels come from ``model.labels.path`` (the fields file if omitted). A season
    column (or start and end date columns) makes each row a sample of one field in
    one season. Group and area are taken from the labels file, else from the fields
    file (read and validated by :func:`fields`); without a group column, fields are
    grouped in square blocks of ``model.block_size_m`` on their centroids (in a
    projected CRS). A group and an area are per field: they hold for all its seasons.

    Raises
    ------
    InputError
        If the files cannot be read, a target column is missing, a season value is
        unreadable, or a (field, season) is labelled twice.
    ConfigError
        If there is neither a group column nor geometry to build spatial blocks.
    """
    import geopandas as gpd

    from regenmap.geo.fields import area_ha
    from regenmap.models.folds import spatial_blocks

    mc = cfg.model
    raw, path, from_fields = _raw_labels(cfg)
    row_seasons, seasons = _row_seasons(cfg, raw, path)
    geo = raw if isinstance(raw, gpd.GeoDataFrame) and raw.geometry is not None else None
    if not from_fields and cfg.fields is not None and (
            geo is None or AREA_HA not in raw.columns
            or (mc.group_column and mc.group_column not in raw.columns)):
        polygons = fields(cfg)
        keep = [c for c in polygons.columns if c not in raw.columns or c == FIELD_ID]
        merged = pd.DataFrame(raw.drop(columns="geometry", errors="ignore")).merge(
            polygons[keep], on=FIELD_ID, how="left")
        merged.index = raw.index
        geo = gpd.GeoDataFrame(merged, geometry="geometry", crs=polygons.crs) \
            if "geometry" in merged.columns else None
        raw = merged
    flat = pd.DataFrame(raw.drop(columns="geometry", errors="ignore"))
    if row_seasons is not None:
        flat[SEASON] = row_seasons
        table = flat.set_index([FIELD_ID, SEASON])
    else:
        table = flat.set_index(FIELD_ID)
    if table.index.has_duplicates:
        dup = table.index[table.index.duplicated()].unique()[:5].tolist()
        what = "(field, season) pairs" if row_seasons is not None else "field ids"
        raise InputError(f"labels: duplicate {what} {dup}; each sample is labelled once.",
                         path=path)
    first = ~flat[FIELD_ID].duplicated().to_numpy()
    per_field = flat.loc[first].set_index(FIELD_ID)
    notes: list[str] = []
    projected = None
    if geo is not None and geo.crs is not None and len(geo):
        one = geo.loc[first]
        projected = one.to_crs(one.estimate_utm_crs()) if one.crs.is_geographic else one
        projected = projected.set_index(FIELD_ID)
        if AREA_HA not in per_field.columns:
            per_field[AREA_HA] = pd.Series(area_ha(one.geometry), index=one[FIELD_ID].to_numpy())
    group: pd.Series | None = None
    group_name = mc.group_column or BLOCK_GROUP
    if mc.group_column and mc.group_column in per_field.columns:
        group = per_field[mc.group_column].astype(str)
    elif projected is not None:
        if mc.group_column:
            notes.append(f"group column '{mc.group_column}' not in the labels: automatic "
                         f"{mc.block_size_m:g} m spatial blocks used instead")
        c = projected.geometry.centroid
        group = pd.Series(spatial_blocks(c.x.to_numpy(), c.y.to_numpy(),
                                         block_size_m=mc.block_size_m), index=projected.index)
        group_name = BLOCK_GROUP
    elif not mc.random_folds:
        raise ConfigError(
            f"model.group_column: {mc.group_column!r} is not a column of {path} and the labels "
            "have no geometry for automatic spatial blocks. Name a group column (region, tile) "
            "or give a labels file with field polygons."
        )
    return FieldTable(table=table, per_field=per_field, group=group, group_name=group_name,
                      notes=tuple(notes), source=path, seasons=seasons)


@dataclass(frozen=True)
class SeasonPlan:
    """Which (field, season) samples the features stage describes.

    Attributes
    ----------
    seasons
        Every season described, by name (window).
    mapped
        Seasons every field is labelled for, oldest first; the last is shown in the
        GeoPackage's ``fields`` layer.
    labelled
        ``field_id``, ``season`` of the labelled samples (described even when their season
        is not mapped), or None without seasons in the labels.
    """

    seasons: dict[str, Season]
    mapped: tuple[str, ...]
    labelled: pd.DataFrame | None

    def samples(self, field_ids: Sequence[str]) -> pd.DataFrame:
        """Return the (field, season) pairs to describe: mapped seasons and labelled pairs."""
        ids = pd.unique(pd.Index([str(f) for f in field_ids]))
        mapped = pd.DataFrame({FIELD_ID: np.repeat(ids, len(self.mapped)),
                               SEASON: np.tile(np.asarray(self.mapped, dtype=object), len(ids))})
        parts = [mapped] if self.labelled is None else [mapped, self.labelled]
        return pd.concat(parts, ignore_index=True).drop_duplicates(ignore_index=True)


def season_plan(cfg: RunConfig) -> SeasonPlan | None:
    """Return the seasons of a job: those of the labels and ``seasons.map``.

    Returns None when neither names a season: the job then describes the one
    agricultural year with the most observations (``features.year`` to choose it).
    """
    calendar = season_calendar(cfg)
    mapped = [calendar.parse(v) for v in cfg.seasons.map]
    labelled: pd.DataFrame | None = None
    label_seasons: dict[str, Season] = {}
    in_fields = cfg.fields is not None and Path(cfg.fields.path).exists()
    if (in_fields and cfg.model.path is None) or cfg.model.labels.path is not None:
        raw, path, _ = _raw_labels(cfg, targets=False)
        row_seasons, label_seasons = _row_seasons(cfg, raw, path)
        if row_seasons is not None:
            labelled = pd.DataFrame({FIELD_ID: raw[FIELD_ID].to_numpy(),
                                     SEASON: row_seasons.to_numpy()})
    if not mapped and labelled is None:
        return None
    if not mapped:
        mapped = list(label_seasons.values())
    seasons = {**label_seasons, **{s.name: s for s in mapped}}
    order = tuple(s.name for s in sorted({s.name: s for s in mapped}.values(),
                                         key=lambda s: (s.start, s.end)))
    return SeasonPlan(seasons=seasons, mapped=order, labelled=labelled)


def band_aliases(cfg: RunConfig | None = None) -> dict[str, str]:
    """Band names of users' tables -> STAC common names, from the sensor profiles.

    Every built-in profile contributes its native names and aliases (``B04``,
    ``SR_B5``...); a name two profiles read differently (``B5``: Sentinel-2 red edge,
    not Landsat NIR) is left out unless the job's own profile (``scenes.sensor``)
    names it, which then wins.
    """
    from regenmap.geo.sensors import SensorProfile
    from regenmap.pipelines.config import read_yaml

    seen: dict[str, set[str]] = {}
    for path in sorted(builtin_sensor_dir().glob("*.yaml")):
        profile = SensorProfile.from_mapping(read_yaml(path), source=str(path))
        for band in profile.bands:
            for name in (band.native, *band.aliases):
                seen.setdefault(name.lower(), set()).add(band.common_name)
    out = {name: next(iter(commons)) for name, commons in seen.items() if len(commons) == 1}
    if cfg is not None and cfg.scenes is not None:
        for profile in sensor_profiles(cfg):
            for band in profile.bands:
                for name in (band.native, *band.aliases):
                    out[name.lower()] = band.common_name
    return out


# --------------------------------------------------------------------------- users' own series
def _read_user_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t")
    except (OSError, ValueError, pa.ArrowException) as err:
        raise InputError(f"cannot read the observations table: {err}", path=path) from None
    raise InputError(f"unsupported observations file type {suffix!r}: use CSV or Parquet",
                     path=path)


def check_plausible(table: pd.DataFrame, stat: str, max_share: float, path: Path) -> None:
    """Warn about implausible series of a user's table; stop when one is mostly implausible.

    The problems are kept in ``table.attrs["plausibility"]`` (for provenance).

    Raises
    ------
    InputError
        Naming each series whose out-of-range share exceeds ``max_share``, and the fix.
    """
    from regenmap.features.plausibility import check_table

    problems = check_table(table, stat)
    table.attrs["plausibility"] = [p.text() for p in problems]
    fatal = [p for p in problems if p.share > max_share]
    for p in problems:
        if p not in fatal:
            log.warning("%s: %s", path, p.text())
    if fatal:
        raise InputError("implausible values: " + "; ".join(p.text() for p in fatal)
                         + ". Fix the table, or set observations.scale (and "
                         "observations.max_implausible_share to accept them).", path=path)


def user_observations(cfg: RunConfig) -> tuple[pd.DataFrame, list[str]]:
    """Read a job's own per-field time series (``observations:``) as an observations table.

    Returns
    -------
    table, inputs
        The normalised table (:func:`regenmap.features.user_series.normalise_observations`)
        and the files it came from.

    Raises
    ------
    InputError
        If the file or folder is missing or unreadable, or has no usable column.
    """
    from regenmap.features.user_series import normalise_observations
    from regenmap.pipelines.layout import RunLayout, read_observations

    if cfg.observations is None:
        raise ConfigError("observations: this job has no 'observations' section")
    path = Path(cfg.observations.path)
    if path.is_dir():
        layout = RunLayout(path.parent) if path.name == "observations" else None
        files = sorted(path.glob("*.parquet"))
        if layout is not None and layout.tile_files():
            raw, used = read_observations(layout), [str(f) for f in layout.tile_files()]
        elif files:
            raw = pd.concat([_read_user_table(f) for f in files], ignore_index=True)
            used = [str(f) for f in files]
        else:
            raise InputError("no Parquet file in the observations folder", path=path)
    elif path.is_file():
        raw, used = _read_user_table(path), [str(path)]
    else:
        raise InputError("observations file not found (config key `observations`)", path=path)
    spec = cfg.observations
    id_column = spec.id_column or (cfg.fields.id_column if cfg.fields else None)
    aliases = band_aliases(cfg)
    if spec.sensor is not None:  # the table's own sensor decides names read differently
        own = sensor_profile(spec.sensor, base_dir=cfg.source.parent if cfg.source else None)
        aliases |= {n.lower(): b.common_name for b in own.bands for n in (b.native, *b.aliases)}
    table = normalise_observations(raw, stat=cfg.features.stat, id_column=id_column,
                                   band_aliases=aliases, scale=spec.scale, source=str(path))
    check_plausible(table, cfg.features.stat, spec.max_implausible_share, path)
    if table.attrs.get("unused_columns"):
        log.warning("%s: column(s) not used as series: %s (not numbers, or describing a row "
                    "rather than the surface: ids, years, areas, names)", path,
                    ", ".join(map(str, table.attrs["unused_columns"])))
    return table, used
