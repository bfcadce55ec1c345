"""What a run writes, and where: the output folder of a run as one value, and its readers.

::

    out_dir/
      observations/tile=<id>.parquet        extract: per-field statistics per acquisition
      observations/_parts/tile=<id>/...      extract: parts of unfinished tiles
      fields_status.parquet                  extract: one status per field
      scenes_status.parquet                  extract: one row per scene problem
      features.parquet                       features
      model/<target>/                        train: booster.txt, metadata.json, reference.json,
                                             cv_predictions.parquet, cv.json,
                                             year_transfer.json, model card
      evaluation/<target>.json, *.png        evaluate (+ summary.json; the model card in
      evaluation/<target>/                     evaluation/<target>/ when model.path is given)
      predictions.parquet, drift.json        predict
      practices.gpkg, maps/, report.html     predict
      sampling/<name>/                       sample design|next: <name>.gpkg, <name>.csv,
                                             sample.parquet, sample.json; assess:
                                             assessment.json, assessment.html
      sampling/labels.parquet                sample import: collected labels and provenance
      .regenmap/<stage>.done.json, lock      run: checkpoints and the lock
      .regenmap/tile_fields/tile=<id>.parquet extract: a tile's fields for the workers (while it runs)
      .regenmap/cache/field_index/*.npz      extract: field indexes by fingerprint (or under
                                             extract.cache_dir)

Every stage takes its paths from :class:`RunLayout`; nothing else spells these names.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from regenmap.errors import InputError
from regenmap.schema import FIELD_ID, TIME

if TYPE_CHECKING:
    from regenmap.pipelines.config import RunConfig

#: Folder (under the observations folder) of the per-acquisition parts of unfinished tiles.
PARTS_DIR = "_parts"
#: Folder of a run's checkpoints and lock.
STATE_DIR = ".regenmap"


@dataclass(frozen=True)
class RunLayout:
    """The files of one run.

    Attributes
    ----------
    out_dir
        The run's output folder.
    model_path
        An existing model folder (``model.path``) to predict with, or None when the
        run trains its own models under ``out_dir/model``.
    gpkg_name
        File name of the results GeoPackage.
    cache_dir
        Cache folder shared between runs (``extract.cache_dir``), or None for the run's
        own (under its state folder).
    """

    out_dir: Path
    model_path: Path | None = None
    gpkg_name: str = "practices.gpkg"
    cache_dir: Path | None = None

    @classmethod
    def of(cls, cfg: RunConfig) -> RunLayout:
        """Return the layout of a run configuration."""
        return cls(Path(cfg.out_dir), None if cfg.model.path is None else Path(cfg.model.path),
                   cfg.outputs.gpkg,
                   None if cfg.extract.cache_dir is None else Path(cfg.extract.cache_dir))

    # ---------------------------------------------------------------- extract
    @property
    def observations_dir(self) -> Path:
        """Folder of the observations, one Parquet file per tile."""
        return self.out_dir / "observations"

    @property
    def parts_dir(self) -> Path:
        """Folder of the per-acquisition parts of unfinished tiles."""
        return self.observations_dir / PARTS_DIR

    def tile_file(self, tile_id: str) -> Path:
        """File of one tile's observations."""
        return self.observations_dir / f"tile={tile_id}.parquet"

    def tile_files(self) -> list[Path]:
        """Every tile file written so far, sorted by name."""
        folder = self.observations_dir
        return sorted(folder.glob("tile=*.parquet")) if folder.is_dir() else []

    def part_file(self, tile_id: str, acquisition_id: str) -> Path:
        """Part file of one tile and acquisition (a readable, collision-free name)."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", acquisition_id)[:80]
        digest = hashlib.sha256(acquisition_id.encode()).hexdigest()[:8]
        return self.parts_dir / f"tile={tile_id}" / f"{safe}-{digest}.parquet"

    def tile_fields_file(self, tile_id: str) -> Path:
        """Return the file shipping a tile's fields (ids, geometries in the grid's CRS) to workers."""
        return self.state_dir / "tile_fields" / f"tile={tile_id}.parquet"

    @property
    def field_index_dir(self) -> Path:
        """Cache of the tiles' field indexes (keyed by fingerprint; safe to delete)."""
        base = self.cache_dir if self.cache_dir is not None else self.state_dir / "cache"
        return base / "field_index"

    @property
    def fields_status(self) -> Path:
        """One status per field (ok, too_small, no_data, error) and why."""
        return self.out_dir / "fields_status.parquet"

    @property
    def scenes_status(self) -> Path:
        """One row per scene problem met."""
        return self.out_dir / "scenes_status.parquet"

    # ---------------------------------------------------------------- features
    @property
    def features(self) -> Path:
        """The features table."""
        return self.out_dir / "features.parquet"

    # ---------------------------------------------------------------- models
    @property
    def models_dir(self) -> Path:
        """Folder of the models ``train`` writes, one sub-folder per target."""
        return self.out_dir / "model"

    def trained_model_dir(self, target: str) -> Path:
        """Where ``train`` writes the model of ``target``."""
        return self.models_dir / target

    def model_dir(self, target: str) -> Path:
        """Return the model of ``target`` that ``evaluate`` and ``predict`` use.

        With ``model_path``: its sub-folder named after the target if there is one, else
        ``model_path`` itself (a single model's folder); else the run's trained model.
        """
        if self.model_path is None:
            return self.trained_model_dir(target)
        return self.model_path / target if (self.model_path / target).is_dir() else self.model_path

    def cv_predictions(self, target: str, *, trained: bool = False) -> Path:
        """Out-of-fold predictions beside the model in use (or the one ``train`` writes)."""
        base = self.trained_model_dir(target) if trained else self.model_dir(target)
        return base / "cv_predictions.parquet"

    def cv_meta(self, target: str, *, trained: bool = False) -> Path:
        """Return the description of the cross-validation beside the model (see :meth:`cv_predictions`)."""
        base = self.trained_model_dir(target) if trained else self.model_dir(target)
        return base / "cv.json"

    def year_transfer(self, target: str, *, trained: bool = False) -> Path:
        """Leave-one-year-out skill beside the model (JSON; see :meth:`cv_predictions`)."""
        base = self.trained_model_dir(target) if trained else self.model_dir(target)
        return base / "year_transfer.json"

    @property
    def evaluation_dir(self) -> Path:
        """Folder of the held-out evaluation (JSON and plots)."""
        return self.out_dir / "evaluation"

    def evaluation_file(self, target: str) -> Path:
        """Return the full held-out evaluation report of ``target``."""
        return self.evaluation_dir / f"{target}.json"

    def evaluation_groups(self, target: str) -> Path:
        """Every subgroup's held-out metrics of ``target`` (CSV, one row per subgroup)."""
        return self.evaluation_dir / f"{target}_groups.csv"

    @property
    def evaluation_summary(self) -> Path:
        """Headline held-out metrics of every target."""
        return self.evaluation_dir / "summary.json"

    def card_dir(self, target: str) -> Path:
        """Folder of the model card of ``target``.

        Beside the model when the run trained it; in ``evaluation/<target>/`` when the model
        is an input given by ``model_path`` (inputs are never written to).
        """
        if self.model_path is None:
            return self.trained_model_dir(target)
        return self.evaluation_dir / target

    def model_card(self, target: str) -> Path:
        """Return the HTML model card of ``target``."""
        return self.card_dir(target) / "model_card.html"

    # ---------------------------------------------------------------- predict
    @property
    def predictions(self) -> Path:
        """Labels, probabilities, statuses and reasons per field (Parquet)."""
        return self.out_dir / "predictions.parquet"

    @property
    def adoption(self) -> Path:
        """Error-adjusted class areas with intervals per target, season and group (CSV)."""
        return self.out_dir / "adoption_areas.csv"

    @property
    def drift(self) -> Path:
        """Drift of the features against the training data (JSON)."""
        return self.out_dir / "drift.json"

    @property
    def gpkg(self) -> Path:
        """The results GeoPackage."""
        return self.out_dir / self.gpkg_name

    @property
    def maps_dir(self) -> Path:
        """Static and interactive maps."""
        return self.out_dir / "maps"

    @property
    def report(self) -> Path:
        """The run report (HTML)."""
        return self.out_dir / "report.html"

    # ---------------------------------------------------------------- sampling
    @property
    def sampling_dir(self) -> Path:
        """Samples of fields to visit, and the labels collected from them."""
        return self.out_dir / "sampling"

    def sample_dir(self, name: str) -> Path:
        """Folder of one sample (``regenmap sample design|next``)."""
        return self.sampling_dir / name

    def sample_gpkg(self, name: str) -> Path:
        """Field-team GeoPackage of a sample (fields, empty form, styles)."""
        return self.sample_dir(name) / f"{name}.gpkg"

    def sample_csv(self, name: str) -> Path:
        """Field-team CSV of a sample (centroids and the empty form)."""
        return self.sample_dir(name) / f"{name}.csv"

    def sample_table(self, name: str) -> Path:
        """Return the drawn fields with their strata and inclusion probabilities (Parquet)."""
        return self.sample_dir(name) / "sample.parquet"

    def sample_info(self, name: str) -> Path:
        """How a sample was made: options, strata, expected errors (JSON)."""
        return self.sample_dir(name) / "sample.json"

    def assessment(self, name: str) -> Path:
        """Design-based accuracy and area from a sample's labels (JSON)."""
        return self.sample_dir(name) / "assessment.json"

    def assessment_report(self, name: str) -> Path:
        """Return the assessment as an HTML page."""
        return self.sample_dir(name) / "assessment.html"

    @property
    def collected_labels(self) -> Path:
        """Labels imported from the field teams, with their provenance (Parquet)."""
        return self.sampling_dir / "labels.parquet"

    # ---------------------------------------------------------------- run state
    @property
    def state_dir(self) -> Path:
        """Checkpoints and the lock."""
        return self.out_dir / STATE_DIR

    def stage_marker(self, stage: str) -> Path:
        """Checkpoint of a finished stage."""
        return self.state_dir / f"{stage}.done.json"

    @property
    def lock(self) -> Path:
        """The run lock (holds the owner's pid; ``lock.host`` its host)."""
        return self.state_dir / "lock"

    def written_folders(self) -> list[Path]:
        """Every existing folder a run writes files into (never the inputs' folders)."""
        nested = [*sorted(self.parts_dir.glob("tile=*")), *sorted(self.models_dir.glob("*")),
                  *sorted(self.evaluation_dir.glob("*"))]
        folders = [self.out_dir, self.state_dir, self.observations_dir, self.parts_dir,
                   self.models_dir, self.evaluation_dir, self.maps_dir, *nested]
        return [f for f in folders if f.is_dir()]


# -------------------------------------------------------------------- readers
def read_observations(layout: RunLayout, field_ids: Sequence[str] | None = None, *,
                      columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read the observations of a run (every tile), optionally some fields and columns only.

    Tiles are concatenated in Arrow and converted once, freeing each column as it is
    converted, so the peak stays near one copy of the table.

    Parameters
    ----------
    layout
        The run.
    field_ids
        Only these fields (filtered while reading), or all.
    columns
        Only these columns, or all.

    Returns
    -------
    pandas.DataFrame
        Columns as in ``docs/architecture.md``; rows by tile, then time, then field.

    Raises
    ------
    InputError
        If there is no observation yet, or a tile file cannot be read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = layout.tile_files()
    if not files:
        raise InputError("no observations yet: run `regenmap extract` first, or set "
                         "`observations:` in the config to your own per-field time series",
                         path=layout.observations_dir)
    filters = [(FIELD_ID, "in", [str(f) for f in field_ids])] if field_ids is not None else None
    tables = []
    for f in files:
        try:
            tables.append(pq.read_table(f, columns=list(columns) if columns else None,
                                        filters=filters))
        except (OSError, pa.ArrowException) as err:
            raise InputError(f"cannot read the observations table: {err}", path=f) from None
    try:
        combined = pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as err:
        raise InputError(f"the observation files do not share one schema: {err}",
                         path=layout.observations_dir) from None
    del tables
    return combined.to_pandas(self_destruct=True, split_blocks=True, ignore_metadata=True)


def read_field_series(layout: RunLayout, field_ids: Sequence[str]) -> pd.DataFrame:
    """Observations of some fields, sorted by field then time (see :func:`read_observations`)."""
    table = read_observations(layout, field_ids)
    return table.sort_values([FIELD_ID, TIME], kind="stable").reset_index(drop=True)


def _read_table(path: Path, what: str, stage: str) -> pd.DataFrame:
    import pyarrow as pa

    if not path.is_file():
        raise InputError(f"{what} not found; run `regenmap {stage} <config>` first", path=path)
    try:
        return pd.read_parquet(path)
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"cannot read the {what} ({err}); run `regenmap {stage}` again",
                         path=path) from None


def read_features(layout: RunLayout) -> pd.DataFrame:
    """Read the features table (``field_id`` then float32 feature columns)."""
    return _read_table(layout.features, "features table", "features")


def read_fields_status(layout: RunLayout) -> pd.DataFrame | None:
    """Read the extraction's field statuses, or None when the run started from observations."""
    path = layout.fields_status
    return _read_table(path, "fields status table", "extract") if path.is_file() else None


def read_predictions(layout: RunLayout) -> pd.DataFrame:
    """Read the predictions table."""
    return _read_table(layout.predictions, "predictions table", "predict")
