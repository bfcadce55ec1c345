"""Options of each pipeline stage, one class per section of the run YAML.

Every option has a default chosen for Sentinel-2-like data; the docstring of
each class documents units. Unknown keys are rejected (see :class:`StrictModel`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from regenmap.errors import ConfigError
from regenmap.features.windows import WindowOptions

if TYPE_CHECKING:
    from regenmap.features.options import FeatureOptions
    from regenmap.models.options import CVOptions, EvaluationOptions, TrainOptions
    from regenmap.models.sampling import DesignOptions
    from regenmap.models.selection import NextOptions

Stat = Literal["mean", "median", "std", "min", "max", "count"]


class StrictModel(BaseModel):
    """A configuration section: rejects unknown keys and is immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ExtractConfig(StrictModel):
    """Options of the extraction stage (scenes + fields -> observations).

    Attributes
    ----------
    indices
        Spectral index names from the catalogue (case-insensitive), e.g. NDVI, NDTI, BSI.
    stats
        Statistics over the valid pixels of a field, per index and acquisition.
    percentiles
        Extra percentiles (0-100) per index, written as ``<index>_p<NN>``.
    inner_buffer_px
        Inner (negative) buffer of each field in pixels of the finest band grid,
        removing mixed edge pixels. 0 disables it.
    min_pixels
        Fields with fewer pixels than this after the buffer get status ``too_small``.
    tile_size_px
        Largest tile edge, in pixels of the finest grid; the grid is cut into the
        fewest equal tiles no larger (256-px aligned), so a grid that fits is not cut.
        Every cut decodes the blocks along it twice (a window is its fields' bounding
        box, so it spills one block into each neighbour); larger tiles hold more
        memory (measured peak per worker: 676-716 MiB for one 5000 x 5000 px tile with
        20k fields, 767-803 MiB with 100k fields; 515 MiB with 4096-px tiles).
    resample
        How coarser bands (e.g. 20 m SWIR) meet the finest grid: ``nearest``
        replicates each coarse pixel, which keeps values unmixed; recorded in outputs.
    on_error
        ``record`` writes a status per field/scene and goes on; ``fail`` stops at the first problem.
    read_threads
        GDAL decode threads per task (``GDAL_NUM_THREADS``); keep 1 when every core runs a worker.
    tiles_in_flight
        Tiles submitted to the cluster at once (bounds memory); twice the workers if omitted.
    skip_blocks
        Leave undecoded the blocks of band files that hold no field pixel, or whose field
        pixels the quality mask all drops (clouds); the statistics are the same either way.
        Turn off only to compare.
    max_implausible_share
        Share (0-1) of acquisitions whose index values are implausible (out of their range:
        a wrong scale or offset) above which the run stops; fewer are recorded as scene
        problems and shown.
    median
        ``exact`` (default): medians and percentiles are exact order statistics.
        ``binned``: they are read from per-field histograms of bins ``median_precision``
        wide, so each lies within ``median_precision`` of the exact value; cheaper when
        tiles hold many fields.
    median_precision
        Bin width of the binned median, in index units (NDVI, NDTI... are
        dimensionless, -1 to 1): the largest error allowed. Unused when ``median`` is
        ``exact``.
    cache_dir
        Folder caching each tile's field index (the fields burnt on the tile's grid),
        keyed by a fingerprint of the fields, the grid and the inner buffer, so that
        another run or season on the same fields and grid reuses it; the run's own
        ``.regenmap/cache`` folder when omitted. Safe to delete.
    """

    indices: list[str] = Field(default_factory=lambda: ["NDVI", "NDTI", "BSI"])
    stats: list[Stat] = Field(default_factory=lambda: list[Stat](["mean", "median", "std"]))
    percentiles: list[float] = Field(default_factory=list)
    inner_buffer_px: float = Field(default=0.5, ge=0)
    min_pixels: int = Field(default=3, ge=1)
    tile_size_px: int = Field(default=5120, ge=16)
    resample: Literal["nearest"] = "nearest"
    on_error: Literal["record", "fail"] = "record"
    read_threads: int = Field(default=1, ge=1)
    tiles_in_flight: int | None = Field(default=None, ge=1)
    skip_blocks: bool = True
    max_implausible_share: float = Field(default=0.5, ge=0, le=1)
    median: Literal["exact", "binned"] = "exact"
    median_precision: float = Field(default=0.002, gt=0)
    cache_dir: Path | None = None

    @field_validator("indices")
    @classmethod
    def _indices_known(cls, value: list[str]) -> list[str]:
        from regenmap.features.indices import resolve_indices

        if not value:
            raise ValueError("give at least one spectral index, e.g. [NDVI]")
        try:
            resolve_indices(value)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return value

    @field_validator("percentiles")
    @classmethod
    def _percentiles_in_range(cls, value: list[float]) -> list[float]:
        bad = [p for p in value if not 0 <= p <= 100]
        if bad:
            raise ValueError(f"percentiles must lie in [0, 100], got {bad}")
        return value


class WindowsConfig(StrictModel):
    """Thresholds of the practice windows (``features.windows``).

    The keys, their units and meaning are those of
    :class:`regenmap.features.windows.WindowOptions` (``docs/features.md``).
    """

    #: The class whose docstring documents these keys (for the configuration reference).
    doc_source: ClassVar[type] = WindowOptions

    bare_ndvi: float = 0.3
    bare_bsi: float = 0.0
    green_ndvi: float = 0.4
    soil_ndvi: float = 0.2
    cash_peak_ratio: float = Field(default=0.8, gt=0)
    min_cash_interval_days: float = Field(default=200.0, ge=0)
    max_window_days: float = Field(default=330.0, gt=0)
    early_days: float = Field(default=56.0, gt=0)


class FeaturesConfig(StrictModel):
    """Options of the features stage (observations -> per-field features).

    Every field of :class:`regenmap.features.options.FeatureOptions` is a key here
    (see its documentation for units); ``year`` picks the agricultural year.

    Attributes
    ----------
    step_days
        Step of the regular time grid, in days (5, 10, 16 ...), or ``monthly``.
    min_valid_fraction
        Observations whose valid (cloud-free) share of the field is below this are dropped and counted.
    max_gap_days
        Longest gap, in days, filled by linear interpolation; longer gaps stay NaN.
    year_start
        First day (``MM-DD``) of the agricultural year the features describe.
    year
        Calendar year in which the described agricultural year starts; the year with
        the most observations if omitted.
    stat
        Per-acquisition statistic the series are built from (``<index>_<stat>`` columns):
        mean, median, std, min, max, count or a percentile ``pNN``.
    composite
        How observations falling in one grid step combine: ``mean`` weighted by
        valid_fraction, ``median``, or ``max_ndvi`` (the greenest observation).
    smoothing
        ``none``, ``savgol`` (Savitzky-Golay) or ``whittaker`` smoothing of the grid.
    smoothing_window_days
        Window of the Savitzky-Golay filter, days.
    whittaker_lambda
        Roughness penalty of the Whittaker smoother (larger = smoother).
    sensor_offsets
        Harmonisation between sensors: ``{sensor: {index: offset}}`` added to that
        sensor's index values before compositing (recorded in the output's provenance).
    detect_fraction, amplitude_fraction, min_amplitude
        Phenology: share of the NDVI range that starts a cycle, share of the amplitude
        marking start/end of season, smallest NDVI amplitude of a cycle.
    windows
        Thresholds of the practice windows.
    """

    step_days: int | Literal["monthly"] = Field(default=10)
    min_valid_fraction: float = Field(default=0.6, ge=0, le=1)
    max_gap_days: int = Field(default=45, ge=0)
    year_start: str = Field(default="01-01", pattern=r"^\d\d-\d\d$")
    year: int | None = Field(default=None, ge=1950, le=2200)
    stat: str = Field(default="mean", pattern=r"^(mean|median|std|min|max|count|p\d{1,2})$")
    composite: Literal["mean", "median", "max_ndvi"] = "mean"
    smoothing: Literal["none", "savgol", "whittaker"] = "none"
    smoothing_window_days: float = Field(default=50.0, gt=0)
    whittaker_lambda: float = Field(default=2.0, gt=0)
    sensor_offsets: dict[str, dict[str, float]] = Field(default_factory=dict)
    detect_fraction: float = Field(default=0.4, gt=0, lt=1)
    amplitude_fraction: float = Field(default=0.2, gt=0, lt=1)
    min_amplitude: float = Field(default=0.1, ge=0)
    windows: WindowsConfig = WindowsConfig()

    @field_validator("step_days")
    @classmethod
    def _step_in_range(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 31:
            raise ValueError("step_days must be 1..31 days or 'monthly'")
        return value

    @model_validator(mode="after")
    def _options_valid(self) -> FeaturesConfig:
        try:
            self.options()
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return self

    def options(self) -> FeatureOptions:
        """Return the features layer's options value for these settings."""
        from regenmap.features.options import FeatureOptions
        from regenmap.features.windows import WindowOptions

        data = self.model_dump(exclude={"year", "windows"})
        return FeatureOptions(**data, windows=WindowOptions(**self.windows.model_dump()))


class DatasheetConfig(StrictModel):
    """What the makers of the labels say about them (the datasheet's human parts).

    Each answer is free text; a question left out shows as a gap in the datasheet and a
    warning when the model is evaluated. What can be counted (classes, seasons, groups,
    sizes, dates, the file's SHA-256) is filled in by regenmap.

    Attributes
    ----------
    motivation
        Why the labels were made, by whom, and who paid for it.
    composition
        Which farms, regions and years the fields stand for; all fields or a sample, and
        how it was drawn.
    collection
        How each label was obtained (field visit, farmer declaration, photo-interpretation),
        by whom, when, with what consent.
    labelling
        The definitions that separate the classes and how labels were checked or corrected.
    uses
        What the labels have been used for, and uses to avoid.
    distribution
        Who may receive them, under which licence and data-protection terms.
    maintenance
        Who maintains them, how to report an error, whether they will be updated.
    """

    motivation: str | None = None
    composition: str | None = None
    collection: str | None = None
    labelling: str | None = None
    uses: str | None = None
    distribution: str | None = None
    maintenance: str | None = None


class CardConfig(StrictModel):
    """Who stands behind a model (the model card's accountability lines).

    Attributes
    ----------
    owner
        Organisation or person responsible for the model and its maps.
    licence
        Licence of the model and its outputs (e.g. ``CC-BY-4.0``).
    citation
        How to cite the model or the programme it serves.
    contact
        Where to send questions and reports of wrong labels (an address or a URL).
    sensitive_data
        Anything to add to regenmap's statement on personal data (e.g. the programme's
        data-protection basis).
    """

    owner: str | None = None
    licence: str | None = None
    citation: str | None = None
    contact: str | None = None
    sensitive_data: str | None = None


class LabelsInput(StrictModel):
    """Where the training labels are.

    Attributes
    ----------
    path
        Vector or table file (GeoPackage, Shapefile, GeoJSON, FlatGeobuf, GeoParquet,
        Parquet, CSV) with ``field_id`` and one column per target; the fields file if omitted.
    layer
        Layer of a multi-layer vector file; the fields layer when ``path`` is omitted.
    id_column
        Id column in that file.
    season_column
        Column saying which season each label row describes (a year such as ``2023``, a
        named season such as ``2023-primera``, or ``2023-03-01/2023-09-30``); a column
        named ``season`` is used when this is omitted. Without one, every label describes
        the one season the job maps.
    start_column, end_column
        Columns with each row's own season start and end dates (inclusive), instead of
        a season name (e.g. farmer-reported sowing and harvest dates).
    datasheet
        What the makers of the labels say about them (motivation, collection, licence...),
        written into the training set's datasheet beside the numbers regenmap measures.
    """

    path: Path | None = None
    layer: str | None = None
    id_column: str = "field_id"
    season_column: str | None = None
    start_column: str | None = None
    end_column: str | None = None
    datasheet: DatasheetConfig | None = None

    @model_validator(mode="after")
    def _both_dates(self) -> LabelsInput:
        if (self.start_column is None) != (self.end_column is None):
            raise ValueError("give both start_column and end_column, or neither")
        return self


class NamedSeasonConfig(StrictModel):
    """One named season (``seasons.named.<name>``).

    Attributes
    ----------
    start
        ``MM-DD`` on which it starts each year.
    months
        Its length in whole months.
    """

    start: str = Field(pattern=r"^\d\d-\d\d$")
    months: int = Field(ge=1, le=24)


class SeasonsConfig(StrictModel):
    """Which seasons a job describes and maps (``seasons:``).

    The agricultural year starts on ``features.year_start``: season ``2023`` runs from
    that day of 2023 for twelve months.

    Attributes
    ----------
    named
        Named seasons that recur every year, e.g. ``{primera: {start: "04-01", months: 4},
        postrera: {start: "08-15", months: 4}}`` (two seasons a year, southern or
        equatorial calendars).
    map
        Seasons every field is labelled for (e.g. ``[2023]``); the seasons of the labels
        if omitted, else the agricultural year with the most observations.
    """

    named: dict[str, NamedSeasonConfig] = Field(default_factory=dict)
    map: list[str] = Field(default_factory=list)

    @field_validator("map", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value


class TrainingConfig(StrictModel):
    """The boosting loop (``model.training``).

    Attributes
    ----------
    num_boost_round
        Maximum boosting rounds.
    early_stopping_rounds
        Rounds without improvement of the held-out multi-logloss before stopping; 0 disables.
    class_weight
        ``balanced`` (weights n / (k * n_class)) or ``none``.
    refit
        Refit on all labelled fields with the early-stopped number of rounds:
        true, false or ``auto`` (true below 50,000 labelled fields).
    """

    num_boost_round: int = Field(default=300, ge=1)
    early_stopping_rounds: int = Field(default=20, ge=0)
    class_weight: Literal["balanced", "none"] = "balanced"
    refit: bool | Literal["auto"] = "auto"


class ModelConfig(StrictModel):
    """Options of training, evaluation and prediction.

    Attributes
    ----------
    targets
        Label columns, one model each (e.g. ``tillage``, ``winter_cover``).
    labels
        Where the labels come from.
    classes
        Declared classes per target (e.g. ``tillage: [conventional, reduced, no_till]``);
        labels outside them are an error. Classes are taken from the labels if omitted.
    group_column
        Column of spatial groups (e.g. ``region``) held out together in validation;
        automatic spatial blocks if omitted.
    block_size_m
        Edge of the automatic spatial blocks, in metres, when there is no group column.
    random_folds
        Validate with random folds instead of spatial groups (overstates skill; recorded
        as a warning in the evaluation and the model card).
    n_folds
        Folds of the grouped (spatial) cross-validation.
    target_accuracy
        Accuracy (0-1) the labels given must reach on held-out fields: the decision
        threshold is the lowest confidence that does, chosen on the out-of-fold predictions
        and itself cross-fitted (see docs/models.md); fields below it are ``uncertain``.
    confidence_threshold
        A fixed decision threshold instead of ``target_accuracy`` (must exceed 1/k for a
        target of k classes: 0.5 withholds nothing for two classes).
    ood_threshold
        Ceiling of the out-of-distribution score (importance-weighted share of a field's
        features outside the training range, see docs/models.md) above which a label is
        ``uncertain``; the evaluation lowers it to the score above which held-out fields
        were clearly less accurate, when there is one.
    shift_action
        What a prediction run further from the training data than any held-out region
        of the evaluation gets, in its features or in its mix of predicted classes (the
        run-level checks, :mod:`regenmap.models.shift`): ``withhold`` (every label
        becomes ``uncertain``, naming the shifted features or classes) or ``warn``
        (labels kept, the run flagged in the report and ``drift.json``).
    min_feature_share
        Fields with fewer computable model features than this share get ``no_data``.
    withhold_flags
        Feature-quality flag columns (value > 0 = flagged) that withhold a label as
        ``no_data``; key ``all`` applies to every target, other keys to one target.
    explain
        Write the top contributing features of every label in ``<target>_why``
        (TreeSHAP, about 0.3 ms of CPU per field for a 300-round, 3-class,
        180-feature model; see docs/models.md, Speed).
    calibration
        Probability calibration fitted on the held-out folds: ``none``, ``temperature``
        (one scalar) or ``isotonic``.
    search
        Run a small spatially cross-validated search over ``num_leaves``,
        ``learning_rate`` and ``min_data_in_leaf`` before training.
    n_bootstrap
        Bootstrap resamples of the evaluation's 95 % intervals.
    min_group_count
        Smallest subgroup (region, size class, ...) ranked in the disaggregated evaluation.
    evaluation_factors
        Label or field columns the held-out skill is broken down by, alone and in pairs
        (e.g. ``[crop, soil]``), besides the group column, the field-size class, the season
        and the observation density (``obs_density``), which are always used.
    min_label_share
        Smallest share of the labelled samples that training may use once those that
        prediction would withhold (too small, no data, too few observations in the
        season) are left out; fewer stops the run with the reasons.
    card
        Owner, licence, citation and contact of the model (shown in its card).
    adoption_min_reference
        Labelled fields a group (region) needs for its class areas to be corrected with its
        own held-out errors; a smaller group borrows the errors of its whole season (said in
        the ``errors_from`` column of the adoption table).
    lightgbm
        LightGBM parameters overriding regenmap's defaults (names are checked against
        LightGBM's own list when the configuration is read).
    training
        The boosting loop: ``num_boost_round``, ``early_stopping_rounds``,
        ``class_weight`` (balanced | none) and ``refit`` (true | false | auto).
    path
        An existing model directory to predict with instead of training.
    """

    targets: list[str] = Field(default_factory=lambda: ["tillage", "winter_cover"])
    labels: LabelsInput = LabelsInput()
    classes: dict[str, list[str]] = Field(default_factory=dict)
    group_column: str | None = "region"
    block_size_m: float = Field(default=5000.0, gt=0)
    random_folds: bool = False
    n_folds: int = Field(default=5, ge=2)
    target_accuracy: float = Field(default=0.85, gt=0, le=1)
    confidence_threshold: float | None = Field(default=None, gt=0, le=1)
    ood_threshold: float = Field(default=0.5, ge=0, le=1)
    shift_action: Literal["withhold", "warn"] = "withhold"
    min_feature_share: float = Field(default=0.5, ge=0, le=1)
    withhold_flags: dict[str, list[str]] = Field(
        default_factory=lambda: {"all": ["flag_few_obs"], "tillage": ["flag_no_ndti"]})
    explain: bool = True
    calibration: Literal["none", "temperature", "isotonic"] = "none"
    search: bool = False
    n_bootstrap: int = Field(default=1000, ge=0)
    min_group_count: int = Field(default=20, ge=1)
    min_label_share: float = Field(default=0.5, ge=0, le=1)
    evaluation_factors: list[str] = Field(default_factory=list)
    adoption_min_reference: int = Field(default=20, ge=2)
    card: CardConfig = CardConfig()
    lightgbm: dict[str, float | int | str | bool] = Field(default_factory=dict)
    training: TrainingConfig = TrainingConfig()
    path: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _params_was_split(cls, data: Any) -> Any:
        if isinstance(data, dict) and "params" in data:
            raise ValueError("'params' was split in two: put LightGBM parameters under "
                             "model.lightgbm and num_boost_round, early_stopping_rounds, "
                             "class_weight, refit under model.training")
        return data

    @field_validator("lightgbm")
    @classmethod
    def _lightgbm_known(cls, value: dict[str, Any]) -> dict[str, Any]:
        from regenmap.models.options import check_lightgbm_params

        try:
            check_lightgbm_params(value)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return value

    def train_options(self, seed: int) -> TrainOptions:
        """Return the training options of the models layer for these settings."""
        from regenmap.models.options import TrainOptions

        return TrainOptions(lightgbm=self.lightgbm, seed=seed,
                            min_label_share=self.min_label_share, **self.training.model_dump())

    def cv_options(self, seed: int) -> CVOptions:
        """Return the cross-validation options of the models layer for these settings."""
        from regenmap.models.options import CVOptions

        return CVOptions(n_folds=self.n_folds, random_folds=self.random_folds, seed=seed)

    def evaluation_options(self, seed: int) -> EvaluationOptions:
        """Return the evaluation options of the models layer for these settings."""
        from regenmap.models.options import EvaluationOptions

        return EvaluationOptions(calibration=self.calibration, n_bootstrap=self.n_bootstrap,
                                 confidence_threshold=self.confidence_threshold,
                                 target_accuracy=self.target_accuracy,
                                 min_group_count=self.min_group_count,
                                 ood_ceiling=self.ood_threshold, seed=seed)


class OutputsConfig(StrictModel):
    """Options of the outputs stage (GeoPackage, maps, report).

    Attributes
    ----------
    gpkg
        File name of the GeoPackage, inside the run's ``out_dir``.
    crs
        CRS of the output geometry; the fields' own CRS if omitted.
    passthrough
        Columns of the fields file copied into the output (none by default: owner data may be personal).
    maps
        Write static PNG and interactive HTML maps and the run report.
    geoparquet
        Also write the ``fields`` layer as GeoParquet beside the GeoPackage (same stem, ``.parquet``).
    overwrite
        Replace an existing output file that regenmap did not write (refused by default).
    observations
        Store the per-field time series as the ``observations`` table of the GeoPackage
        (turn off for very large runs; ``n_obs`` and ``valid_fraction`` are written either way).
    """

    gpkg: str = Field(default="practices.gpkg", pattern=r"^[^/\\]+\.gpkg$")
    crs: str | None = None
    passthrough: list[str] = Field(default_factory=list)
    maps: bool = True
    geoparquet: bool = False
    overwrite: bool = False
    observations: bool = True

    @field_validator("crs")
    @classmethod
    def _crs_known(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            CRS.from_user_input(value)
        except CRSError as exc:
            raise ValueError(f"unknown CRS {value!r}; give e.g. EPSG:3035 ({exc})") from exc
        return value


class SampleDesignConfig(StrictModel):
    """A reference sample for accuracy and area (``sample.design``; ``regenmap sample design``).

    Attributes
    ----------
    name
        Name of the sample: its files are in ``out_dir/sampling/<name>/``.
    target
        Target whose map classes are the strata (the first of ``model.targets`` if omitted).
    target_se
        Standard error to reach for the area share of every class (0.02: about
        +/- 4 points at 95 %); ignored when ``n`` is given.
    n
        A fixed number of fields instead of a target standard error.
    allocation
        ``neyman``, ``proportional`` (to the number of fields), ``equal`` or ``olofsson``
        (to mapped area, with ``min_per_stratum`` for small strata).
    min_per_stratum
        Fewest fields per stratum (at least 2).
    by
        Other stratifying factors crossed with the map class: columns of the fields
        file (e.g. ``region``), ``size_class`` (``<2 ha``, ``2-10 ha``...), ``season``.
    expected_accuracy
        Planned user's accuracy of every class; the model's probabilities if omitted.
    unit_column
        Column of the fields file naming each field's administrative unit (village, commune).
    max_per_unit
        At most this many fields from one administrative unit.
    fields_per_cluster
        Fields are grouped for the visits in clusters of about this many, each with a visit order.
    exclude
        Files (CSV, Parquet or vector) whose ``field_id`` column lists fields that cannot be
        drawn (no access, already visited); the sample then describes the other fields.
    exclude_labelled
        Also exclude the fields already labelled (training fields).
    """

    name: str = Field(default="design", pattern=r"^[A-Za-z0-9_.-]+$")
    target: str | None = None
    target_se: float = Field(default=0.02, gt=0, lt=1)
    n: int | None = Field(default=None, ge=1)
    allocation: Literal["neyman", "proportional", "equal", "olofsson"] = "neyman"
    min_per_stratum: int = Field(default=5, ge=2)
    by: list[str] = Field(default_factory=list)
    expected_accuracy: float | None = Field(default=None, gt=0, le=1)
    unit_column: str | None = None
    max_per_unit: int | None = Field(default=None, ge=1)
    fields_per_cluster: int = Field(default=15, ge=1)
    exclude: list[Path] = Field(default_factory=list)
    exclude_labelled: bool = False

    @model_validator(mode="after")
    def _cap_needs_unit(self) -> SampleDesignConfig:
        if self.max_per_unit is not None and not self.unit_column:
            raise ValueError("max_per_unit needs unit_column (the column naming each field's "
                             "administrative unit)")
        return self

    def options(self, seed: int) -> DesignOptions:
        """Return the models layer's design options for these settings."""
        from regenmap.models.sampling import DesignOptions

        return DesignOptions(target_se=self.target_se, n=self.n, allocation=self.allocation,
                             min_per_stratum=self.min_per_stratum,
                             expected_accuracy=self.expected_accuracy,
                             max_per_unit=self.max_per_unit, seed=seed)


class SampleNextConfig(StrictModel):
    """Fields to visit for training (``sample.next``; ``regenmap sample next``).

    Attributes
    ----------
    name
        Name of the sample (``out_dir/sampling/<name>/``).
    budget
        Number of fields to choose.
    uncertainty
        ``margin`` (1 - gap between the two likeliest classes) or ``entropy``.
    w_uncertainty, w_representative, w_novelty
        Weights of uncertainty, typicality in feature space and distance to the
        labelled fields in feature space.
    min_distance_m
        No two chosen fields closer than this, in metres (0: no limit).
    unit_column
        Column of the fields file naming each field's administrative unit.
    max_per_unit
        At most this many chosen fields per administrative unit.
    clusters
        Choose the fields in this many compact areas (travel); anywhere if omitted.
    fields_per_cluster
        Without ``clusters``: visit clusters of about this many fields, each with a visit order.
    exclude
        Files whose ``field_id`` column lists fields that cannot be chosen.
    """

    name: str = Field(default="next", pattern=r"^[A-Za-z0-9_.-]+$")
    budget: int = Field(default=30, ge=1)
    uncertainty: Literal["margin", "entropy"] = "margin"
    w_uncertainty: float = Field(default=1.0, ge=0)
    w_representative: float = Field(default=0.5, ge=0)
    w_novelty: float = Field(default=0.5, ge=0)
    min_distance_m: float = Field(default=0.0, ge=0)
    unit_column: str | None = None
    max_per_unit: int | None = Field(default=None, ge=1)
    clusters: int | None = Field(default=None, ge=1)
    fields_per_cluster: int = Field(default=15, ge=1)
    exclude: list[Path] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> SampleNextConfig:
        if self.max_per_unit is not None and not self.unit_column:
            raise ValueError("max_per_unit needs unit_column (the column naming each field's "
                             "administrative unit)")
        if self.w_uncertainty + self.w_representative + self.w_novelty <= 0:
            raise ValueError("the score weights must not all be 0")
        return self

    def options(self, seed: int) -> NextOptions:
        """Return the models layer's selection options for these settings."""
        from regenmap.models.selection import NextOptions

        return NextOptions(budget=self.budget, uncertainty=self.uncertainty,
                           w_uncertainty=self.w_uncertainty,
                           w_representative=self.w_representative, w_novelty=self.w_novelty,
                           min_distance_m=self.min_distance_m, max_per_unit=self.max_per_unit,
                           clusters=self.clusters, seed=seed)


class SampleConfig(StrictModel):
    """Sampling for reference and training labels (``regenmap sample ...``, ``regenmap assess``).

    Attributes
    ----------
    design
        The reference sample for accuracy and area.
    next
        The fields to visit for training.
    """

    design: SampleDesignConfig = SampleDesignConfig()
    next: SampleNextConfig = SampleNextConfig()
