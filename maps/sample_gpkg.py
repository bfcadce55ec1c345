"""Field-team files of a sample: a styled GeoPackage with an empty form, and a CSV.

Layers of ``<name>.gpkg`` (schema :data:`SAMPLE_SCHEMA`):

``sample`` (features, MultiPolygon)
    One row per field to visit: ``field_id`` (and ``season`` when the run has seasons),
    ``sample`` (its name, so a returned form finds its sample), ``cluster`` and
    ``visit_order`` (the stop in that cluster), ``stratum`` (a code, ``S01``...: the
    team does not see the map class, so labels stay blind to it) and ``inclusion_prob``
    (design samples), ``rank`` and ``reason`` (training samples), ``lon``/``lat`` (WGS
    84 centroid), ``area_ha``; then the form, empty: one column per target (its classes
    as a drop-down), ``outcome`` (labelled, no access, refused, not found),
    ``observer``, ``visit_date`` (``YYYY-MM-DD``), ``method`` and ``notes``.
``strata`` (attributes)
    ``code``, ``stratum`` (name), ``map_class``, ``n_fields``, ``n_eligible`` (not
    excluded), ``area_ha``, ``n_sample`` (fields drawn), ...
``sample_info`` (attributes)
    ``section``, ``key``, ``value``: how the sample was made (JSON for non-strings).
``layer_styles``
    ``visits`` (default: by cluster, labelled ``cluster-stop``), ``progress`` (to visit
    / visited) and, for designs, ``strata``. The default style carries the form (drop-
    downs, a calendar for the date, the design columns read-only), which QGIS and the
    mobile apps built on QGIS (QField, Mergin Maps) show when a field is edited. The
    choices are also declared as GeoPackage enum constraints for other GDAL-based apps.

The CSV has the same rows and attribute columns (no geometry; centroids as
``lon``/``lat`` and ``x``/``y`` in the layer's CRS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from regenmap.errors import InputError, OutputError
from regenmap.geo import gpkg
from regenmap.io import atomic_path, check_writable_dir, json_text, write_text_atomic
from regenmap.maps.styles import (
    TOL_BRIGHT,
    TOL_MUTED,
    categorized_style_qml,
    class_colours,
    class_label,
    form_qml,
)
from regenmap.schema import FIELD_ID, SEASON

SAMPLE_SCHEMA: Final = "regenmap.sample/1"
SAMPLE_LAYER: Final = "sample"
STRATA_TABLE: Final = "strata"
INFO_TABLE: Final = "sample_info"
METADATA_URI: Final = "urn:regenmap:sample"

#: Form columns besides the targets, filled by the field team.
OUTCOME, OBSERVER, VISIT_DATE, METHOD, NOTES = ("outcome", "observer", "visit_date", "method",
                                                "notes")
FORM_COLUMNS: Final = (OUTCOME, OBSERVER, VISIT_DATE, METHOD, NOTES)
#: Outcome of a visit; only ``labelled`` rows are imported as labels.
OUTCOMES: Final = ("labelled", "no access", "refused", "not found")
#: How a label was collected.
METHODS: Final = ("field visit", "farmer interview", "photo", "remote")
#: Columns describing the sample (read-only in the form).
PLAN_COLUMNS: Final = ("sample", "cluster", "visit_order", "stratum", "inclusion_prob", "rank",
                       "reason", "lon", "lat", "area_ha")


def _colours(n: int) -> list[str]:
    palette = list(TOL_BRIGHT + TOL_MUTED)
    return [palette[i % len(palette)] for i in range(n)]


def _quote(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def _styles(table: str, geom: str, frame: pd.DataFrame, targets: Mapping[str, Sequence[str]],
            strata: pd.DataFrame | None) -> list[gpkg.LayerStyle]:
    value_maps = {t: [(class_label(c), c) for c in cs] for t, cs in targets.items()}
    value_maps[OUTCOME] = [(o, o) for o in OUTCOMES]
    value_maps[METHOD] = [(m, m) for m in METHODS]
    keys = [FIELD_ID, *([SEASON] if SEASON in frame.columns else [])]
    locked = [c for c in (*keys, *PLAN_COLUMNS) if c in frame.columns]
    aliases = {**{t: f"{t.replace('_', ' ')} (observed)" for t in targets},
               OUTCOME: "outcome of the visit", VISIT_DATE: "date (YYYY-MM-DD)",
               METHOD: "how the label was collected"}
    form = form_qml(value_maps, dates=[VISIT_DATE], read_only=locked, aliases=aliases)
    label = "coalesce(\"cluster\", '') || '-' || coalesce(\"visit_order\", '')"
    clusters = sorted(int(c) for c in pd.unique(frame["cluster"].dropna()))
    by_cluster = categorized_style_qml(
        _quote("cluster"),
        [(str(c), f"cluster {c}", col) for c, col in zip(clusters, _colours(len(clusters)),
                                                          strict=True)],
        other_label="other", label_expression=label, label_max_scale=250_000, form=form)
    first = next(iter(targets))
    done = (f"CASE WHEN {_quote(OUTCOME)} IS NOT NULL OR {_quote(first)} IS NOT NULL "
            "THEN 'visited' ELSE 'to visit' END")
    progress = categorized_style_qml(
        done, [("to visit", "to visit", "#EE7733"), ("visited", "visited", "#228833")],
        other_label=None, label_expression=label, label_max_scale=250_000, form=form)
    styles = [gpkg.LayerStyle(table, geom, "visits", by_cluster, default=True,
                              description="fields by cluster, labelled cluster-stop; with the form"),
              gpkg.LayerStyle(table, geom, "progress", progress,
                              description="to visit (orange) / visited (green)")]
    if strata is not None and len(strata):
        mapped = [str(c) for c in strata["map_class"]]
        classes = [c for c in dict.fromkeys(mapped) if c != "withheld"]
        colours = class_colours(classes)
        cats = [(str(code), f"{code}: {name}", colours.get(m, "#BBBBBB"))
                for code, name, m in zip(strata["code"], strata["stratum"], mapped, strict=True)]
        styles.append(gpkg.LayerStyle(table, geom, "strata", categorized_style_qml(
            _quote("stratum"), cats, other_label="other", label_expression=label,
            label_max_scale=250_000, form=form),
            description="fields by design stratum (map class colours; withheld grey)"))
    return styles


def _info_rows(info: Mapping[str, Any]) -> pd.DataFrame:
    rows = [("schema", "sample_schema", SAMPLE_SCHEMA)]
    for section, value in info.items():
        if isinstance(value, Mapping):
            rows += [(str(section), str(k), v if isinstance(v, str) else json_text(v, indent=None))
                     for k, v in value.items()]
        else:
            rows.append(("sample", str(section),
                         value if isinstance(value, str) else json_text(value, indent=None)))
    return pd.DataFrame(rows, columns=["section", "key", "value"]).astype(object)


def form_frame(sample: gpd.GeoDataFrame, targets: Mapping[str, Sequence[str]]
               ) -> gpd.GeoDataFrame:
    """Return the ``sample`` layer: plan columns, WGS 84 centroids and the empty form.

    Parameters
    ----------
    sample
        Fields to visit, with ``field_id`` (and ``season``), ``cluster``,
        ``visit_order`` and any of :data:`PLAN_COLUMNS`; polygons with a CRS.
    targets
        ``{target: [class, ...]}``: one form column per target.
    """
    if sample.crs is None:
        raise OutputError("the sample's fields have no CRS; set it before writing the form")
    keys = [FIELD_ID, *([SEASON] if SEASON in sample.columns else [])]
    plan = [c for c in PLAN_COLUMNS if c in sample.columns and c not in ("lon", "lat")]
    pts = sample.geometry.representative_point()
    wgs = gpd.GeoSeries(pts, crs=sample.crs).to_crs(4326)
    cols: dict[str, Any] = {k: sample[k].astype(str).to_numpy(dtype=object) for k in keys}
    for c in plan:
        cols[c] = sample[c].to_numpy()
    cols["lon"] = np.round(wgs.x.to_numpy(), 6)
    cols["lat"] = np.round(wgs.y.to_numpy(), 6)
    for t in targets:
        cols[t] = np.full(len(sample), None, dtype=object)
    for c in FORM_COLUMNS:
        cols[c] = np.full(len(sample), None, dtype=object)
    out = gpd.GeoDataFrame(cols, geometry=shapely.force_2d(sample.geometry.to_numpy()),
                           crs=sample.crs)
    out.index = pd.RangeIndex(len(out))
    return out


def write_sample(gpkg_path: str | Path, csv_path: str | Path, sample: gpd.GeoDataFrame, *,
                 targets: Mapping[str, Sequence[str]], info: Mapping[str, Any],
                 strata: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """Write the field-team GeoPackage and CSV of a sample (both atomically).

    Parameters
    ----------
    gpkg_path, csv_path
        Destinations (``.gpkg``, ``.csv``).
    sample
        See :func:`form_frame`; ``stratum`` holds the stratum codes of ``strata``.
    targets
        ``{target: [class, ...]}`` of the form.
    info
        How the sample was made (JSON-able), stored in ``sample_info`` and the metadata.
    strata
        Design strata with ``code``, ``stratum``, ``map_class``, ``N``, ``N_eligible``,
        ``area_ha``, ``n`` (None for training samples).

    Returns
    -------
    tuple of Path
        The GeoPackage and the CSV.
    """
    out, csv = Path(gpkg_path), Path(csv_path)
    check_writable_dir(out.parent)
    if out.suffix.lower() != ".gpkg":
        raise OutputError(f"{out}: the sample GeoPackage must end in .gpkg")
    layer = form_frame(sample, targets)
    with atomic_path(out) as tmp:
        gpkg.write_chunks(tmp, [layer], layer=SAMPLE_LAYER, geometry_type="MultiPolygon",
                          promote_to_multi=True,
                          description=f"fields to visit, with an empty form ({SAMPLE_SCHEMA})")
        tables = [SAMPLE_LAYER, INFO_TABLE]
        gpkg.write_chunks(tmp, [_info_rows(info)], layer=INFO_TABLE,
                          description=f"how the sample was made ({SAMPLE_SCHEMA})")
        if strata is not None:
            # SQLite column names ignore case: N and n become n_fields and n_sample.
            table = pd.DataFrame(strata).reset_index(drop=True).rename(
                columns={"N": "n_fields", "N_eligible": "n_eligible", "n": "n_sample"})
            gpkg.write_chunks(tmp, [table],
                              layer=STRATA_TABLE, description="design strata")
            tables.append(STRATA_TABLE)
        geom = gpkg.geometry_column(tmp, SAMPLE_LAYER)
        gpkg.write_layer_styles(tmp, _styles(SAMPLE_LAYER, geom[0] if geom else "geom", layer,
                                             targets, strata))
        enums = {t: list(cs) for t, cs in targets.items()}
        enums[OUTCOME], enums[METHOD] = list(OUTCOMES), list(METHODS)
        gpkg.add_enum_constraints(tmp, SAMPLE_LAYER, enums)
        gpkg.add_metadata(tmp, {"schema": SAMPLE_SCHEMA, **dict(info)},
                          standard_uri=METADATA_URI, tables=tables)
    table = pd.DataFrame(layer.drop(columns=layer.geometry.name))
    pts = layer.geometry.representative_point()
    at = list(table.columns).index("lat") + 1
    table.insert(at, "x", np.round(pts.x.to_numpy(), 2))
    table.insert(at + 1, "y", np.round(pts.y.to_numpy(), 2))
    write_text_atomic(csv, table.to_csv(index=False))
    return out, csv


def read_collected(path: str | Path) -> pd.DataFrame:
    """Read a returned form: the CSV, or the ``sample`` layer of the GeoPackage.

    Returns
    -------
    pandas.DataFrame
        Attribute columns as text (NULL and empty cells are missing); no geometry.

    Raises
    ------
    InputError
        Missing file, unknown format, or a GeoPackage without a ``sample`` layer.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("collected labels file not found", path=p)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        try:
            frame = pd.read_csv(p, dtype=str, keep_default_na=True)
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read the CSV ({err})", path=p) from None
    elif suffix == ".gpkg":
        if SAMPLE_LAYER not in gpkg.list_tables(p):
            raise InputError(f"no {SAMPLE_LAYER!r} layer: this is not a sample GeoPackage "
                             "written by `regenmap sample`", path=p)
        raw = gpkg.read_layer(p, SAMPLE_LAYER, read_geometry=False)
        frame = pd.DataFrame(raw).astype(object).where(pd.notna(raw), None)
        frame = frame.apply(lambda s: s.map(lambda v: None if v is None else str(v)))
    else:
        raise InputError(f"unsupported file type {suffix!r}: give the returned CSV or GeoPackage",
                         path=p)
    return frame.replace({"": None})


__all__ = ["FORM_COLUMNS", "METHODS", "OUTCOMES", "SAMPLE_LAYER", "SAMPLE_SCHEMA",
           "form_frame", "read_collected", "write_sample"]
