"""Tile summaries gathered while writing equal the counts read back from the written file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from regenmap.features.plausibility import tally_acquisitions
from regenmap.pipelines.tile_summary import SummaryBuilder, summarise_file

COLS = ["ndvi_mean", "ndti_mean"]


def _table(ids: list[str], acq: str, rng: np.random.Generator) -> pa.Table:
    n = len(ids)
    values = rng.uniform(-1.5, 1.5, (n, 2)).astype(np.float32)  # some out of range
    values[rng.random((n, 2)) < 0.3] = np.nan
    return pa.table({"field_id": ids, "acquisition_id": [acq] * n,
                     "n_pixels": rng.integers(0, 50, n).astype(np.int32),
                     "n_valid": rng.integers(0, 50, n).astype(np.int32),
                     "ndvi_mean": values[:, 0], "ndti_mean": values[:, 1]})


def _read_back(tables: list[pa.Table]) -> tuple[pd.DataFrame, set[str], dict]:
    """The counts as the driver computed them by reading the rows back."""
    df = pa.concat_tables(tables).to_pandas()
    agg = df.groupby("field_id").agg(n_pixels=("n_pixels", "max"), n_valid=("n_valid", "sum"),
                                     n_obs=("n_pixels", "size"))
    finite = np.isfinite(df[COLS].to_numpy(np.float64)).any(axis=1)
    return agg, set(df.loc[finite, "field_id"]), tally_acquisitions(df, "mean")


def test_summary_equals_the_rows_read_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    same = [f"F{i:03d}" for i in range(40)]
    tables = [_table(same, f"A{k}", rng) for k in range(4)]  # one grid: same fields
    tables.append(_table([*same[::3], "G1", "G0"], "B0", rng))  # another grid: others
    tables.append(_table(same, "A9", rng))
    builder = SummaryBuilder(COLS, "mean")
    path = tmp_path / "tile.parquet"
    with pq.ParquetWriter(path, tables[0].schema) as writer:
        for t in tables:
            builder.add(t)
            writer.write_table(t)
    for summary in (builder.result(), summarise_file(str(path), COLS, "mean")):
        agg, with_values, tallies = _read_back(tables)
        frame = summary.status_frame().sort_index()
        pd.testing.assert_frame_equal(frame, agg.astype(np.int64), check_names=False)
        assert set(summary.field_ids[summary.with_value]) == with_values
        assert summary.tallies == tallies


def test_summary_of_one_grid_keeps_the_fields_order() -> None:
    rng = np.random.default_rng(4)
    ids = ["b", "a", "c"]
    builder = SummaryBuilder(COLS, "mean")
    for k in range(3):
        builder.add(_table(ids, f"A{k}", rng))
    summary = builder.result()
    assert summary.field_ids.tolist() == ids and summary.n_obs.tolist() == [3, 3, 3]


def test_an_empty_tile_has_an_empty_summary() -> None:
    summary = SummaryBuilder(COLS, "mean").result()
    assert len(summary.field_ids) == 0 and summary.status_frame().empty and not summary.tallies
