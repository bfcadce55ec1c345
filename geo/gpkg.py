"""Atomic GeoPackage writing and reading helpers.

Everything here is schema-agnostic: it knows GeoPackages, not regenmap's
output contract (that lives in :mod:`regenmap.maps.gpkg_contract`).

A GeoPackage is always built under a temporary name in the destination
folder and renamed into place with :func:`os.replace` only once complete, so
an existing file is never left half-overwritten and a crash leaves at most a
stray ``.*.tmp.gpkg`` file (removed on the next clean exit of the same call).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

from regenmap.errors import InputError, OutputError
from regenmap.io import json_text

#: ``PRAGMA application_id`` of a GeoPackage ("GPKG" as a big-endian int32).
GPKG_APPLICATION_ID = 0x47504B47
#: GeoPackage version written. 1.2 is read by every GDAL >= 2.2 and QGIS 3.x
#: and passes older GDAL validators (1.4 files are flagged by GDAL 3.6's).
GPKG_VERSION = "1.2"

_METADATA_EXTENSION = "http://www.geopackage.org/spec120/#extension_metadata"


def is_geopackage(path: str | Path) -> bool:
    """Return whether ``path`` is an SQLite file with the GeoPackage application id."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            header = fh.read(72)
    except OSError:
        return False
    if len(header) < 72 or not header.startswith(b"SQLite format 3\x00"):
        return False
    return int.from_bytes(header[68:72], "big") == GPKG_APPLICATION_ID


@contextlib.contextmanager
def _connect(path: Path, *, readonly: bool) -> Iterator[sqlite3.Connection]:
    uri = f"{path.resolve().as_uri()}?mode={'ro' if readonly else 'rw'}"
    con = sqlite3.connect(uri, uri=True)
    try:
        yield con
        if not readonly:
            con.commit()
    finally:
        con.close()


def list_tables(path: str | Path) -> dict[str, str]:
    """Return ``{table_name: data_type}`` from ``gpkg_contents`` (features, attributes...).

    Raises
    ------
    InputError
        If the file is not a readable GeoPackage.
    """
    p = Path(path)
    if not is_geopackage(p):
        raise InputError("not a GeoPackage (no SQLite header with application_id 'GPKG')",
                         path=p)
    with _connect(p, readonly=True) as con:
        rows = con.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall()
    return {str(name): str(kind) for name, kind in rows}


def read_sql(path: str | Path, query: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    """Run a read-only SQL query on a GeoPackage and return the rows as a DataFrame."""
    with _connect(Path(path), readonly=True) as con:
        cur = con.execute(query, tuple(params))
        cols = [d[0] for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=cols)


def write_chunks(path: str | Path, chunks: Iterable[pd.DataFrame], *, layer: str,
                 geometry_type: str | None = None, promote_to_multi: bool = False,
                 description: str | None = None, fid: str | None = None) -> int:
    """Write DataFrames (or GeoDataFrames) as one layer, appending chunk by chunk.

    Memory stays bounded by one chunk: GDAL appends each to the file.
    The first chunk creates the layer (and the file, as GeoPackage
    :data:`GPKG_VERSION`, if it does not exist); it may have zero rows, in which
    case its dtypes and ``geometry_type`` still give a typed layer.

    Parameters
    ----------
    path
        GeoPackage to write into (typically the temporary path of :func:`atomic_path`).
    chunks
        Frames with identical columns and dtypes. Plain DataFrames make an
        aspatial (``attributes``) table.
    layer
        Layer (table) name.
    geometry_type
        OGR geometry type name, e.g. ``"MultiPolygon"``; required for empty spatial layers.
    promote_to_multi
        Write polygons as multipolygons so the layer has one geometry type.
    description
        Stored in ``gpkg_contents.description``.
    fid
        Name of the integer primary key column (GDAL's default ``fid`` if omitted).

    Returns
    -------
    int
        Number of rows written.
    """
    p = Path(path)
    n = 0
    first = True
    for chunk in chunks:
        if not first and chunk.empty:
            continue
        layer_options: dict[str, str] = {}
        if first:
            if description:
                layer_options["DESCRIPTION"] = description
            if fid:
                layer_options["FID"] = fid
        kwargs: dict[str, Any] = {}
        if isinstance(chunk, gpd.GeoDataFrame):
            kwargs["geometry_type"] = geometry_type
            kwargs["promote_to_multi"] = promote_to_multi
        pyogrio.write_dataframe(
            chunk, p, layer=layer, driver="GPKG", append=not first,
            dataset_options={"VERSION": GPKG_VERSION} if first and not p.exists() else None,
            layer_options=layer_options or None, **kwargs)
        n += len(chunk)
        first = False
    if first:
        raise OutputError(f"no data frame given for layer {layer!r} of {p}")
    return n


@dataclass(frozen=True)
class LayerStyle:
    """One row of the QGIS ``layer_styles`` table.

    Attributes
    ----------
    table
        Layer (table) name the style applies to.
    geometry_column
        Its geometry column; QGIS matches on ``(table, geometry_column)``.
    name
        Style name shown in QGIS's style manager.
    qml
        The QGIS style document.
    default
        Whether QGIS applies it when the layer is opened (``useAsDefault``).
    description
        Free text.
    """

    table: str
    geometry_column: str
    name: str
    qml: str
    default: bool = False
    description: str = ""


def write_layer_styles(path: str | Path, styles: Sequence[LayerStyle]) -> None:
    """Store QGIS styles in the GeoPackage's ``layer_styles`` table.

    The table has QGIS's own layout and is registered in ``gpkg_contents`` by
    GDAL, so QGIS (no plugin needed) lists and applies the styles: the one with
    ``default=True`` is applied when the layer is opened.

    Parameters
    ----------
    path
        GeoPackage holding the styled layers.
    styles
        Style rows; at most one default per ``(table, geometry_column)``.
    """
    if not styles:
        return
    frame = pd.DataFrame({
        "f_table_catalog": pd.Series([""] * len(styles), dtype=object),
        "f_table_schema": pd.Series([""] * len(styles), dtype=object),
        "f_table_name": [s.table for s in styles],
        "f_geometry_column": [s.geometry_column for s in styles],
        "styleName": [s.name for s in styles],
        "styleQML": [s.qml for s in styles],
        "styleSLD": pd.Series([""] * len(styles), dtype=object),
        "useAsDefault": pd.Series([s.default for s in styles], dtype=bool),
        "description": [s.description for s in styles],
        "owner": pd.Series(["regenmap"] * len(styles), dtype=object),
        "ui": pd.Series([None] * len(styles), dtype=object),
        # tz-aware so GDAL writes the 'Z' the GeoPackage DATETIME format requires
        "update_time": pd.Series([pd.Timestamp.now("UTC")] * len(styles)),
    })
    write_chunks(path, [frame], layer="layer_styles", fid="id",
                 description="QGIS layer styles (written by regenmap)")


def add_metadata(path: str | Path, document: Mapping[str, Any], *, standard_uri: str,
                 tables: Sequence[str] = (), scope: str = "dataset") -> None:
    """Attach a JSON metadata document via the GeoPackage metadata extension.

    Writes one ``gpkg_metadata`` row (``mime_type`` ``application/json``)
    referenced from ``gpkg_metadata_reference`` for the whole GeoPackage and
    for each table in ``tables``, and registers the extension in
    ``gpkg_extensions`` (creating the tables if GDAL has not).

    Parameters
    ----------
    path
        GeoPackage to modify in place (use it on the temporary file).
    document
        JSON-serialisable metadata.
    standard_uri
        ``md_standard_uri``: identifies the metadata's schema.
    tables
        Tables the document also describes (``reference_scope='table'``).
    scope
        ``md_scope`` code, e.g. ``dataset``.
    """
    text = json_text(document, indent=None, sort_keys=True)
    with _connect(Path(path), readonly=False) as con:
        con.executescript("""
            CREATE TABLE IF NOT EXISTS gpkg_metadata (
              id INTEGER CONSTRAINT m_pk PRIMARY KEY ASC NOT NULL,
              md_scope TEXT NOT NULL DEFAULT 'dataset',
              md_standard_uri TEXT NOT NULL,
              mime_type TEXT NOT NULL DEFAULT 'text/xml',
              metadata TEXT NOT NULL DEFAULT '');
            CREATE TABLE IF NOT EXISTS gpkg_metadata_reference (
              reference_scope TEXT NOT NULL,
              table_name TEXT,
              column_name TEXT,
              row_id_value INTEGER,
              timestamp DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
              md_file_id INTEGER NOT NULL,
              md_parent_id INTEGER,
              CONSTRAINT crmr_mfi_fk FOREIGN KEY (md_file_id) REFERENCES gpkg_metadata(id),
              CONSTRAINT crmr_mpi_fk FOREIGN KEY (md_parent_id) REFERENCES gpkg_metadata(id));
            CREATE TABLE IF NOT EXISTS gpkg_extensions (
              table_name TEXT,
              column_name TEXT,
              extension_name TEXT NOT NULL,
              definition TEXT NOT NULL,
              scope TEXT NOT NULL,
              CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name));
        """)
        for table in ("gpkg_metadata", "gpkg_metadata_reference"):
            con.execute("INSERT OR IGNORE INTO gpkg_extensions VALUES (?, NULL, 'gpkg_metadata', ?, "
                        "'read-write')", (table, _METADATA_EXTENSION))
        cur = con.execute("INSERT INTO gpkg_metadata (md_scope, md_standard_uri, mime_type, "
                          "metadata) VALUES (?, ?, 'application/json', ?)",
                          (scope, standard_uri, text))
        md_id = cur.lastrowid
        con.execute("INSERT INTO gpkg_metadata_reference (reference_scope, md_file_id) "
                    "VALUES ('geopackage', ?)", (md_id,))
        for table in tables:
            con.execute("INSERT INTO gpkg_metadata_reference (reference_scope, table_name, "
                        "md_file_id) VALUES ('table', ?, ?)", (table, md_id))


def read_metadata(path: str | Path, *, standard_uri: str) -> list[dict[str, Any]]:
    """Return the JSON documents stored by :func:`add_metadata` under ``standard_uri``."""
    p = Path(path)
    if "gpkg_metadata" not in _sqlite_tables(p):
        return []
    rows = read_sql(p, "SELECT metadata FROM gpkg_metadata WHERE md_standard_uri = ? "
                       "AND mime_type = 'application/json' ORDER BY id", (standard_uri,))
    return [json.loads(t) for t in rows["metadata"]]


def _sqlite_tables(path: Path) -> set[str]:
    with _connect(path, readonly=True) as con:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def layer_columns(path: str | Path, layer: str) -> dict[str, str]:
    """Return ``{column: declared SQLite type}`` of a table, e.g. ``{'area_ha': 'REAL'}``."""
    with _connect(Path(path), readonly=True) as con:
        rows = con.execute(f'PRAGMA table_info("{layer}")').fetchall()
    return {str(r[1]): str(r[2]).upper() for r in rows}


def geometry_column(path: str | Path, layer: str) -> tuple[str, str] | None:
    """Return ``(column_name, geometry_type_name)`` of a features layer, or None."""
    df = read_sql(path, "SELECT column_name, geometry_type_name FROM gpkg_geometry_columns "
                        "WHERE table_name = ?", (layer,))
    if df.empty:
        return None
    return str(df.iloc[0, 0]), str(df.iloc[0, 1])


def read_layer(path: str | Path, layer: str, **kwargs: Any) -> pd.DataFrame:
    """Read one layer with pyogrio (a GeoDataFrame for spatial layers).

    Extra keyword arguments go to :func:`pyogrio.read_dataframe` (``columns``,
    ``where``, ``skip_features``, ``max_features``...).
    """
    return pyogrio.read_dataframe(Path(path), layer=layer, **kwargs)


def add_enum_constraints(path: str | Path, table: str,
                         enums: Mapping[str, Sequence[str]], *,
                         descriptions: Mapping[str, str] | None = None) -> None:
    """Declare the allowed values of text columns (GeoPackage schema extension).

    Writes ``gpkg_data_columns`` and ``gpkg_data_column_constraints`` rows of type
    ``enum`` and registers the ``gpkg_schema`` extension, so GDAL (as coded field
    domains) and the apps built on it know each column's choices.

    Parameters
    ----------
    path
        GeoPackage to modify in place (use it on the temporary file).
    table
        Table holding the columns.
    enums
        ``{column: [allowed value, ...]}``; the constraint is named ``<table>_<column>``.
    descriptions
        ``{column: description}`` stored with the column.
    """
    ext = "http://www.geopackage.org/spec120/#extension_schema"
    with _connect(Path(path), readonly=False) as con:
        con.executescript("""
            CREATE TABLE IF NOT EXISTS gpkg_data_columns (
              table_name TEXT NOT NULL, column_name TEXT NOT NULL, name TEXT, title TEXT,
              description TEXT, mime_type TEXT, constraint_name TEXT,
              CONSTRAINT pk_gdc PRIMARY KEY (table_name, column_name),
              CONSTRAINT gdc_tn UNIQUE (table_name, name));
            CREATE TABLE IF NOT EXISTS gpkg_data_column_constraints (
              constraint_name TEXT NOT NULL, constraint_type TEXT NOT NULL, value TEXT,
              min NUMERIC, min_is_inclusive BOOLEAN, max NUMERIC, max_is_inclusive BOOLEAN,
              description TEXT,
              CONSTRAINT gdcc_ntv UNIQUE (constraint_name, constraint_type, value));
            CREATE TABLE IF NOT EXISTS gpkg_extensions (
              table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL,
              definition TEXT NOT NULL, scope TEXT NOT NULL,
              CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name));
        """)
        for t in ("gpkg_data_columns", "gpkg_data_column_constraints"):
            con.execute("INSERT OR IGNORE INTO gpkg_extensions VALUES (?, NULL, 'gpkg_schema', "
                        "?, 'read-write')", (t, ext))
        for column, values in enums.items():
            name = f"{table}_{column}"
            for v in values:
                con.execute("INSERT OR IGNORE INTO gpkg_data_column_constraints (constraint_name, "
                            "constraint_type, value) VALUES (?, 'enum', ?)", (name, str(v)))
            con.execute("INSERT OR REPLACE INTO gpkg_data_columns (table_name, column_name, "
                        "name, description, constraint_name) VALUES (?, ?, ?, ?, ?)",
                        (table, column, column, (descriptions or {}).get(column), name))


def drop_table(path: str | Path, table: str) -> None:
    """Remove a table and its GeoPackage registrations, if it exists (in place).

    Use it on a temporary copy (:func:`regenmap.io.atomic_path`) before writing the table again.
    """
    with _connect(Path(path), readonly=False) as con:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if table not in names:
            return
        con.execute(f'DROP TABLE "{table}"')
        for meta in ("gpkg_contents", "gpkg_geometry_columns", "gpkg_ogr_contents",
                     "gpkg_extensions", "gpkg_data_columns"):
            if meta in names:
                column = "table_name"
                con.execute(f'DELETE FROM "{meta}" WHERE {column} = ?', (table,))
