"""Run configuration: the YAML schema of a regenmap job, validated by pydantic.

Only this package reads YAML. The stage sections (``extract``, ``features``,
``model``, ``outputs``) are in :mod:`regenmap.pipelines.sections`; this module
holds the inputs and the cluster section, assembles them into :class:`RunConfig`
and loads files with messages that name the offending key and file. Options
that a library layer owns are built from the sections by their methods
(``cfg.features.options()``, ``cfg.model.train_options(seed)``...).

Relative paths in a config file are resolved against the folder of that file.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from regenmap.errors import ConfigError
from regenmap.pipelines.sections import (
    ExtractConfig,
    FeaturesConfig,
    ModelConfig,
    OutputsConfig,
    SampleConfig,
    SeasonsConfig,
    StrictModel,
)
from regenmap.provenance import config_hash

#: The shipped YAML files (package data of ``regenmap.configs``).
CONFIGS_DIR = Path(str(resources.files("regenmap.configs")))


class FieldsInput(StrictModel):
    """Where the field polygons are.

    Attributes
    ----------
    path
        Any OGR vector file (GeoPackage, Shapefile, GeoJSON, FlatGeobuf, GeoParquet).
    layer
        Layer name for multi-layer files; the first layer if omitted.
    id_column
        Column holding the unique field identifier (read as string).
    point_pixels
        Accept point geometries (point labels, pixel samples) and read each as the pixel
        it falls in (0) or a square of 2N+1 pixels around it (N); points are refused
        (status ``error``) when omitted. A point of one pixel is ``too_small`` unless
        ``extract.min_pixels`` allows it (set it to 1 for single pixels).
    """

    path: Path
    layer: str | None = None
    id_column: str = "field_id"
    point_pixels: int | None = Field(default=None, ge=0, le=50)


class ScenesInput(StrictModel):
    """Where the satellite scenes are and how to read them.

    Attributes
    ----------
    path
        Folder of band files, a time-stacked GeoTIFF, or a STAC catalog/ItemCollection JSON.
    sensor
        Name of a sensor profile (``configs/sensors/<name>.yaml``) or a path to a profile YAML;
        a list of them for a folder mixing sensors (e.g. Sentinel-2 and Landsat band files).
    kind
        How ``path`` is laid out: ``band_files`` (a folder of per-band or per-date files
        named as the sensor profile says), ``time_stack`` (a GeoTIFF, or a folder of them,
        one file per band or index with one raster band per date) or ``stac`` (a STAC
        catalog or ItemCollection JSON).
    dates
        For ``time_stack``: the dates of the raster bands, used instead of the band
        descriptions: a list without header, one date per line in band order (``dates.txt``;
        ``2023-04-12``, ``20230412``, ``2023102``...), or a CSV with a ``time``/``date``
        column and an optional 1-based ``band`` column. If omitted, band descriptions are
        used, else ``<stack>.csv``/``.txt``, ``dates.csv``/``.txt`` or
        ``timestamps.csv``/``.txt`` beside the stack.
    """

    path: Path
    sensor: str | list[str] = "sentinel2_l2a"
    kind: Literal["band_files", "time_stack", "stac"] = "band_files"
    dates: Path | None = None


class ObservationsInput(StrictModel):
    """The user's own per-field time series, to start from instead of scenes.

    Written as ``observations: series.csv`` or as a mapping with these keys.

    Attributes
    ----------
    path
        CSV or Parquet file (or a folder of them), wide (one column per band or index) or
        long (``field_id``, ``date``, ``variable``, ``value``).
    id_column
        Field id column; ``field_id``, ``field``, ``parcel_id`` or ``id`` if omitted.
    sensor
        Sensor profile whose band names the table uses (``B4``, ``SR_B5``...), when a
        name is read differently by different sensors.
    scale
        Factor applied to every series column (e.g. ``0.0001`` for indices or
        reflectance stored x10000).
    max_implausible_share
        A series whose values are out of their range (an index outside [-1, 1],
        reflectance outside [-0.2, 1.2]) for more than this share (0-1) stops the run;
        smaller shares are shown as warnings.
    """

    path: Path
    id_column: str | None = None
    sensor: str | None = None
    scale: float | None = Field(default=None, gt=0)
    max_implausible_share: float = Field(default=0.5, ge=0, le=1)


class ClusterConfig(StrictModel):
    """Dask cluster to run on.

    Attributes
    ----------
    address
        ``tcp://host:port`` of an existing scheduler; a LocalCluster if omitted.
    n_workers
        Workers of the LocalCluster; the number of cores if omitted.
    threads_per_worker
        Threads per LocalCluster worker.
    memory_limit
        Per-worker memory limit of the LocalCluster, e.g. ``"4GiB"``.
    processes
        LocalCluster workers are processes (true, the default) or threads of this process.
    profile
        Cluster profile: ``local``, ``slurm``, ``pbs`` (``configs/cluster/``) or the path of a
        profile YAML; ignored when ``address`` is set. SLURM and PBS need ``regenmap[cluster]``.
    """

    address: str | None = None
    n_workers: int | None = Field(default=None, ge=1)
    threads_per_worker: int = Field(default=1, ge=1)
    memory_limit: str = "auto"
    processes: bool = True
    profile: str | None = None


class RunConfig(StrictModel):
    """A whole regenmap job.

    Attributes
    ----------
    name
        Short job name, used in outputs and logs.
    out_dir
        Folder receiving every output of the job.
    seed
        Seed for every random choice (model training, spatial blocks, bootstrap).
    fields
        The field polygons (or points); may be omitted when the job starts from
        ``observations`` (its outputs are then tables without geometry).
    scenes
        The satellite scenes to extract from.
    observations
        The user's own per-field time series to start from instead of scenes.
    extract, features, model, outputs, cluster
        Options of each stage.
    seasons
        Which seasons the job describes and maps (a sample is a field in a season).
    sample
        Sampling for reference and training labels (``regenmap sample``, ``regenmap assess``).
    source
        File this configuration was read from (set by :func:`load_config`).
    """

    name: str = "regenmap"
    out_dir: Path = Path("regenmap-out")
    seed: int = 0
    fields: FieldsInput | None = None
    scenes: ScenesInput | None = None
    observations: ObservationsInput | None = None
    extract: ExtractConfig = ExtractConfig()
    features: FeaturesConfig = FeaturesConfig()
    seasons: SeasonsConfig = SeasonsConfig()
    model: ModelConfig = ModelConfig()
    outputs: OutputsConfig = OutputsConfig()
    cluster: ClusterConfig = ClusterConfig()
    # Left out of dumps and so of the hash: sampling changes no stage's output, and
    # changing it must not make `regenmap run` redo the stages (sample.json records it).
    sample: SampleConfig = Field(default=SampleConfig(), exclude=True)
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("observations", mode="before")
    @classmethod
    def _observations_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str | Path) else value

    @model_validator(mode="after")
    def _fields_or_observations(self) -> RunConfig:
        if self.fields is None and self.observations is None:
            raise ValueError("fields: give the field polygons (fields.path), or start from "
                             "your own per-field time series (observations:)")
        if self.fields is None and self.scenes is not None:
            raise ValueError("fields: extracting from scenes needs the field polygons "
                             "(fields.path)")
        return self

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, value: str) -> str:
        if not value or any(c in value for c in "/\\:"):
            raise ValueError("name must be non-empty and contain no path separators")
        return value

    def hash(self) -> str:
        """Return the short hash of the resolved configuration (see :mod:`regenmap.provenance`)."""
        return config_hash(self.model_dump(mode="json"))

    def input_paths(self) -> list[Path]:
        """Every input file or folder the configuration names (fields, scenes, labels...)."""
        found: list[Path | None] = [self.fields.path if self.fields else None,
                                    self.observations.path if self.observations else None,
                                    self.model.labels.path,
                                    self.model.path]
        if self.scenes is not None:
            found += [self.scenes.path, self.scenes.dates]
            sensors = [self.scenes.sensor] if isinstance(self.scenes.sensor, str) \
                else self.scenes.sensor
            found += [Path(s) for s in sensors if s.endswith((".yaml", ".yml"))]
        return [p for p in found if p is not None]

    def run_hash(self) -> str:
        """Return the hash of the configuration and of its inputs' contents.

        Stage markers carry it: an input edited in place invalidates them.
        """
        from regenmap.pipelines.fingerprint import inputs_fingerprint

        return config_hash({"config": self.hash(),
                            "inputs": inputs_fingerprint(self.input_paths(), exclude=self.out_dir)})


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"]) or "<root>"
        if item["type"] == "extra_forbidden":
            parent = _model_at(item["loc"][:-1])
            known = sorted(k for k, f in parent.model_fields.items() if not f.exclude) if parent else []
            close = difflib.get_close_matches(str(item["loc"][-1]), known, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            valid = f" Valid keys here: {', '.join(known)}." if known else ""
            lines.append(f"  - unknown key '{key}'.{hint}{valid}")
        else:
            lines.append(f"  - {key}: {str(item['msg']).removeprefix('Value error, ')}")
    return "\n".join(lines)


def _model_at(loc: tuple[Any, ...]) -> type[StrictModel] | None:
    model: type[StrictModel] = RunConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        nxt = next((c for c in candidates if isinstance(c, type) and issubclass(c, StrictModel)), None)
        if nxt is None:
            return None
        model = nxt
    return model


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make the known path keys of a raw config absolute against ``base``."""
    out = dict(data)

    def fix(value: Any) -> Any:
        if value is None:
            return None
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() or "://" in str(value) else (base / p)

    if "out_dir" in out:
        out["out_dir"] = fix(out["out_dir"])
    for section in ("fields", "scenes"):
        if isinstance(out.get(section), dict) and "path" in out[section]:
            out[section] = {**out[section], "path": fix(out[section]["path"])}
    if isinstance(out.get("scenes"), dict) and out["scenes"].get("dates"):
        out["scenes"] = {**out["scenes"], "dates": fix(out["scenes"]["dates"])}
    obs = out.get("observations")
    if isinstance(obs, dict) and obs.get("path"):
        out["observations"] = {**obs, "path": fix(obs["path"])}
    elif obs is not None and not isinstance(obs, dict):
        out["observations"] = fix(obs)
    if isinstance(out.get("extract"), dict) and out["extract"].get("cache_dir"):
        out["extract"] = {**out["extract"], "cache_dir": fix(out["extract"]["cache_dir"])}
    model = out.get("model")
    if isinstance(model, dict):
        labels = model.get("labels")
        if isinstance(labels, dict) and labels.get("path"):
            model = {**model, "labels": {**labels, "path": fix(labels["path"])}}
        if model.get("path"):
            model = {**model, "path": fix(model["path"])}
        out["model"] = model
    sample = out.get("sample")
    if isinstance(sample, dict):
        out["sample"] = {k: ({**v, "exclude": [fix(p) for p in v["exclude"]]}
                             if isinstance(v, dict) and isinstance(v.get("exclude"), list) else v)
                         for k, v in sample.items()}
    return out


def parse_config(data: dict[str, Any], *, base_dir: Path, source: str = "<config>") -> RunConfig:
    """Validate a configuration given as plain data.

    Parameters
    ----------
    data
        Parsed YAML mapping.
    base_dir
        Folder that relative paths are resolved against.
    source
        Name used in error messages (usually the file path).

    Raises
    ------
    ConfigError
        Naming every unknown key (with the closest valid names) and bad value.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys to values")
    try:
        cfg = RunConfig.model_validate(_resolve_paths(data, base_dir))
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None
    return cfg


def load_config(path: str | Path, **overrides: Any) -> RunConfig:
    """Read and validate a YAML run configuration.

    Parameters
    ----------
    path
        YAML file.
    **overrides
        Top-level keys replacing those of the file (e.g. ``out_dir=...``).

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML, or has unknown keys or bad values.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: configuration file not found. Pass the path of a YAML file, "
                          "e.g. `regenmap run configs/demo.yaml`.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys to values")
    data.update({k: v for k, v in overrides.items() if v is not None})
    cfg = parse_config(data, base_dir=p.resolve().parent, source=str(p))
    return cfg.model_copy(update={"source": p.resolve()})


def as_config(config: RunConfig | str | Path) -> RunConfig:
    """Return ``config`` itself, or the configuration read from the YAML file it names."""
    return config if isinstance(config, RunConfig) else load_config(config)


def builtin_config_path(name: str) -> Path:
    """Return the path of a YAML file shipped in ``regenmap.configs`` (e.g. ``demo.yaml``)."""
    path = CONFIGS_DIR / name
    if not path.is_file():
        raise ConfigError(f"no built-in configuration named {name!r} in {path.parent}")
    return path


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping (for sensor and cluster profiles), with a clear error."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data
