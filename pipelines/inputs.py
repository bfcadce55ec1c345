"""Configuration -> domain objects: sensor profiles, scene catalog, fields and labels.

Every stage (and the notebook view in :mod:`regenmap.pipelines.explore`) reads its
inputs through these functions, so that a job's fields are validated the same
way whether they are extracted, labelled or mapped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from regenmap.errors import ConfigError, FieldError, InputError
from regenmap.schema import AREA_HA, FIELD_ID

if TYPE_CHECKING:
    import geopandas as gpd

    from regenmap.geo.catalog import Acquisition, SceneProblem
    from regenmap.geo.sensors import SensorProfile
    from regenmap.models.options import LabelledFields
    from regenmap.pipelines.config import RunConfig, ScenesInput

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
    return SensorProfile.from_mapping(read_yaml(path), source=str(path))


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
def fields(cfg: RunConfig) -> gpd.GeoDataFrame:
    """Return the job's field polygons, validated (:func:`regenmap.geo.fields.read_fields`)."""
    from regenmap.geo.fields import read_fields

    if not Path(cfg.fields.path).exists() and "://" not in str(cfg.fields.path):
        raise InputError("fields file not found; set fields.path", path=cfg.fields.path)
    try:
        return read_fields(cfg.fields.path, layer=cfg.fields.layer,
                           id_column=cfg.fields.id_column)
    except FieldError as err:
        raise _with_keys(err, "fields") from None


def check_fields(cfg: RunConfig) -> None:
    """Check the job's field file from its metadata (exists, one layer, not empty), at once.

    Run before any stage, so that a bad field file stops a job before a cluster starts.
    """
    from regenmap.geo.fields import check_field_file

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
    """Labelled fields of a run, indexed by ``field_id``.

    Attributes
    ----------
    table
        Columns: the targets (labels), ``area_ha`` when known, the group column.
    group
        Group per field (region, tile or automatic block), or None.
    group_name
        Name of the group factor (the group column or ``spatial_block``).
    notes
        How groups were chosen when not as configured.
    source
        File the labels were read from.
    """

    table: pd.DataFrame
    group: pd.Series | None
    group_name: str
    notes: tuple[str, ...]
    source: Path

    def area(self) -> pd.Series | None:
        """Field area in hectares (numeric), or None when unknown."""
        if AREA_HA not in self.table.columns:
            return None
        return pd.to_numeric(self.table[AREA_HA], errors="coerce")

    def labelled(self, features: pd.DataFrame, target: str, cfg: RunConfig) -> LabelledFields:
        """Return the models layer's input for one target of this job.

        When the job declares no classes for ``target`` (``model.classes``), the classes
        found in the labels are listed in a warning, so that a stray one is seen.
        """
        from regenmap.models.options import LabelledFields

        classes = cfg.model.classes.get(target)
        if classes is None:
            undeclared_classes(self.table[target], target)
        return LabelledFields.of(features, self.table[target], target=target,
                                 classes=classes, groups=self.group,
                                 group_name=self.group_name, area_ha=self.area())


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


def labels(cfg: RunConfig) -> FieldTable:
    """Read the labels, groups and field sizes of a run.

    Labels come from ``model.labels.path`` (the fields file if omitted). Group and
    area are taken from the labels file, else from the fields file (read and
    validated by :func:`fields`); without a group column, fields are grouped in
    square blocks of ``model.block_size_m`` on their centroids (in a projected CRS).

    Raises
    ------
    InputError
        If the files cannot be read or a target column is missing.
    ConfigError
        If there is neither a group column nor geometry to build spatial blocks.
    """
    import geopandas as gpd

    from regenmap.geo.fields import area_ha
    from regenmap.models.folds import spatial_blocks

    mc = cfg.model
    path = Path(mc.labels.path or cfg.fields.path)
    from_fields = mc.labels.path is None or Path(cfg.fields.path).resolve() == path.resolve()
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
    if missing:
        raise InputError(f"labels lack the target column(s) {missing} (columns: "
                         f"{[c for c in raw.columns if c != 'geometry']}). Fix model.targets.",
                         path=path)
    raw = raw.rename(columns={id_col: FIELD_ID})
    raw[FIELD_ID] = raw[FIELD_ID].astype(str)
    geo = raw if isinstance(raw, gpd.GeoDataFrame) and raw.geometry is not None else None
    if not from_fields and (geo is None or AREA_HA not in raw.columns
                            or (mc.group_column and mc.group_column not in raw.columns)):
        polygons = fields(cfg)
        keep = [c for c in polygons.columns if c not in raw.columns or c == FIELD_ID]
        merged = pd.DataFrame(raw.drop(columns="geometry", errors="ignore")).merge(
            polygons[keep], on=FIELD_ID, how="left")
        geo = gpd.GeoDataFrame(merged, geometry="geometry", crs=polygons.crs) \
            if "geometry" in merged.columns else None
        raw = merged
    table = pd.DataFrame(raw.drop(columns="geometry", errors="ignore")).set_index(FIELD_ID)
    if table.index.has_duplicates:
        dup = table.index[table.index.duplicated()].unique()[:5].tolist()
        raise InputError(f"labels: duplicate field ids {dup}.", path=path)
    notes: list[str] = []
    projected = None
    if geo is not None and geo.crs is not None and len(geo):
        projected = geo.to_crs(geo.estimate_utm_crs()) if geo.crs.is_geographic else geo
        projected = projected.set_index(FIELD_ID)
    if AREA_HA not in table.columns and geo is not None and geo.crs is not None:
        table[AREA_HA] = pd.Series(area_ha(geo.geometry), index=geo[FIELD_ID].to_numpy())
    group: pd.Series | None = None
    group_name = mc.group_column or BLOCK_GROUP
    if mc.group_column and mc.group_column in table.columns:
        group = table[mc.group_column].astype(str)
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
    return FieldTable(table=table, group=group, group_name=group_name, notes=tuple(notes),
                      source=path)


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
    path = Path(cfg.observations)
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
    table = normalise_observations(raw, stat=cfg.features.stat, id_column=cfg.fields.id_column,
                                   band_aliases=band_aliases(cfg), source=str(path))
    return table, used
