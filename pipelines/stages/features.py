"""Stage ``features``: observations -> ``features.parquet`` (one row per field).

Starts from the extraction's observations, or from the user's own per-field
time series (``observations:``), runs
:func:`regenmap.features.build.build_features` with the job's
:class:`~regenmap.features.options.FeatureOptions`, leaves out the features of
indices no observation carries, and writes the table atomically with its
provenance in the Parquet metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from regenmap.features.build import build_features, drop_absent_indices
from regenmap.io import write_parquet_atomic
from regenmap.pipelines import inputs
from regenmap.pipelines.config import as_config
from regenmap.pipelines.layout import RunLayout, read_observations
from regenmap.provenance import stamp
from regenmap.schema import FEATURES_SCHEMA, FIELD_ID

if TYPE_CHECKING:
    from distributed import Client

    from regenmap.pipelines.config import RunConfig
    from regenmap.pipelines.log import Progress


def features(config: RunConfig | str | Path, *, client: Client | None = None,
             progress: Progress | None = None) -> dict[str, Path]:
    """Compute per-field features and write ``out_dir/features.parquet``.

    Parameters
    ----------
    config
        A :class:`~regenmap.pipelines.config.RunConfig` or the path of a YAML file.
    client, progress
        Accepted for the stages' one signature; features are computed in this process.

    Returns
    -------
    dict
        ``features``: the written Parquet file, one row per (field, season): ``field_id``,
        ``season``, then float32 feature columns (``docs/features.md``); provenance (schema,
        config hash, versions, inputs, feature options, the seasons' windows and the
        mapped seasons, oldest first) under the ``regenmap`` metadata key.
    """
    cfg = as_config(config)
    layout = RunLayout.of(cfg)
    if cfg.observations is not None:
        table, used = inputs.user_observations(cfg)
    else:
        table, used = read_observations(layout), [str(p) for p in layout.tile_files()]
    opts = cfg.features.options()
    plan = inputs.season_plan(cfg)
    if plan is None:
        frame = build_features(table, opts, year=cfg.features.year)
        mapped = sorted(frame.attrs["features"]["seasons"])
    else:
        samples = plan.samples(table[FIELD_ID].astype(str).unique().tolist())
        frame = build_features(table, opts, seasons=list(plan.seasons.values()), samples=samples)
        mapped = list(plan.mapped)
    frame, absent = drop_absent_indices(frame, table, stat=opts.stat)
    record: dict[str, Any] = stamp(schema=FEATURES_SCHEMA, config=cfg.model_dump(mode="json"),
                                   inputs=used)
    record["features"] = frame.attrs.get("features", {})
    record["mapped_seasons"] = mapped
    record["plausibility"] = table.attrs.get("plausibility", [])
    record["absent_indices"] = absent
    record["n_fields"] = len(frame)
    frame.attrs = {}
    return {"features": write_parquet_atomic(frame, layout.features, meta=record)}
