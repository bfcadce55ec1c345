"""What the field status table and the value checks need of a tile, gathered while it is written.

The tile writer (:func:`regenmap.pipelines.tile_store.write_tile`) reads every
part of a tile once, to stream it into the tile's file. While it does, a
:class:`SummaryBuilder` keeps per field the largest pixel count, the valid
pixels summed over acquisitions, the number of observations and whether any
index value was computed, and per acquisition the counts of values against
their plausible range. The driver then merges these small summaries instead of
reading every tile's rows back (8 million rows at 100,000 fields and 80
acquisitions). Tiles written by an earlier run have no summary: the driver
reads their files (:func:`summarise_file`), which gives the same summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from regenmap.features.plausibility import Tally, tally, tally_acquisitions
from regenmap.schema import ACQUISITION_ID, FIELD_ID, N_PIXELS, N_VALID


@dataclass
class TileSummary:
    """Per-field and per-acquisition counts of one tile's observations.

    Attributes
    ----------
    field_ids
        (n,) ids of the fields with at least one observation row.
    n_pixels
        (n,) int64 largest ``n_pixels`` of each field over its rows.
    n_valid
        (n,) int64 ``n_valid`` summed over its rows.
    n_obs
        (n,) int64 rows of each field.
    with_value
        (n,) bool: a row of the field has a finite value in one of the checked columns.
    tallies
        (acquisition id, series) -> counts of the checked statistic against its range
        (:func:`regenmap.features.plausibility.tally_acquisitions`).
    """

    field_ids: np.ndarray
    n_pixels: np.ndarray
    n_valid: np.ndarray
    n_obs: np.ndarray
    with_value: np.ndarray
    tallies: dict[tuple[str, str], Tally] = field(default_factory=dict)

    def status_frame(self) -> pd.DataFrame:
        """Return ``n_pixels``, ``n_valid``, ``n_obs`` indexed by field id."""
        return pd.DataFrame({"n_pixels": self.n_pixels, "n_valid": self.n_valid,
                             "n_obs": self.n_obs}, index=pd.Index(self.field_ids))


class SummaryBuilder:
    """Accumulate a :class:`TileSummary` from a tile's tables, one acquisition time at a time.

    Parameters
    ----------
    value_columns
        ``<index>_<stat>`` columns whose finite values mark a field as having values.
    stat
        Statistic whose values are counted against their range.
    """

    def __init__(self, value_columns: list[str], stat: str):
        self.value_columns = list(value_columns)
        self.stat = stat
        self._ids: pa.ChunkedArray | None = None
        self._sums: list[np.ndarray] | None = None
        self._other: list[pd.DataFrame] = []
        self.tallies: dict[tuple[str, str], Tally] = {}

    def add(self, table: pa.Table) -> None:
        """Count the rows of one table of the tile (any fields, any acquisitions)."""
        if table.num_rows == 0:
            return
        cols = [c for c in self.value_columns if c in table.column_names]
        values = (np.column_stack([table.column(c).to_numpy(zero_copy_only=False)
                                   for c in cols]) if cols else np.zeros((table.num_rows, 0)))
        has = np.asarray(np.isfinite(values.astype(np.float64, copy=False)).any(axis=1), bool)
        pix = table.column(N_PIXELS).to_numpy(zero_copy_only=False).astype(np.int64)
        val = table.column(N_VALID).to_numpy(zero_copy_only=False).astype(np.int64)
        acqs = table.column(ACQUISITION_ID)
        if pc.count_distinct(acqs).as_py() == 1:  # one acquisition (the usual part)
            suffix = f"_{self.stat}"
            found = {}
            for j, c in enumerate(cols):
                counts = tally(c[:-len(suffix)], values[:, j]) if c.endswith(suffix) else None
                if counts is not None:
                    found[(str(acqs[0].as_py()), c[:-len(suffix)])] = counts
        else:
            found = tally_acquisitions(pd.DataFrame({
                ACQUISITION_ID: acqs.to_numpy(zero_copy_only=False),
                **{c: values[:, j] for j, c in enumerate(cols)}}), self.stat)
        for key, counts in found.items():
            self.tallies[key] = self.tallies.get(key, Tally()) + counts
        ids = table.column(FIELD_ID)
        if self._ids is None:
            self._ids = ids
            self._sums = [pix, val, np.ones(len(pix), np.int64), has]
        elif self._sums is not None and ids.equals(self._ids):
            # the same fields in the same order (every acquisition on one grid): add up
            sums = self._sums
            np.maximum(sums[0], pix, out=sums[0])
            sums[1] += val
            sums[2] += 1
            sums[3] |= has
        else:
            self._other.append(pd.DataFrame({FIELD_ID: ids.to_numpy(zero_copy_only=False),
                                             "n_pixels": pix, "n_valid": val,
                                             "n_obs": np.ones(len(pix), np.int64),
                                             "with_value": has}))

    def result(self) -> TileSummary:
        """Return the summary of every table added."""
        if self._ids is None or self._sums is None:
            empty = np.zeros(0, np.int64)
            return TileSummary(np.zeros(0, dtype=object), empty, empty, empty,
                               np.zeros(0, bool), dict(self.tallies))
        ids = np.asarray(self._ids.to_numpy(zero_copy_only=False), dtype=object)
        pix, val, obs, has = self._sums
        if not self._other:
            return TileSummary(ids, pix, val, obs, has.astype(bool), dict(self.tallies))
        first = pd.DataFrame({FIELD_ID: ids, "n_pixels": pix, "n_valid": val, "n_obs": obs,
                              "with_value": has})
        agg = pd.concat([first, *self._other]).groupby(FIELD_ID, sort=True).agg(
            n_pixels=("n_pixels", "max"), n_valid=("n_valid", "sum"), n_obs=("n_obs", "sum"),
            with_value=("with_value", "any"))
        return TileSummary(agg.index.to_numpy(dtype=object),
                           agg["n_pixels"].to_numpy(np.int64), agg["n_valid"].to_numpy(np.int64),
                           agg["n_obs"].to_numpy(np.int64), agg["with_value"].to_numpy(bool),
                           dict(self.tallies))


def summarise_file(path: str, value_columns: list[str], stat: str) -> TileSummary:
    """Summarise a written tile file, row group by row group (a tile of an earlier run)."""
    builder = SummaryBuilder(value_columns, stat)
    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    cols = [c for c in (FIELD_ID, ACQUISITION_ID, N_PIXELS, N_VALID, *value_columns)
            if c in names]
    for i in range(pf.num_row_groups):
        builder.add(pf.read_row_group(i, columns=cols))
    return builder.result()
