"""Tile files streamed from per-acquisition parts: order, row groups, reuse, clean-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from regenmap.geo.catalog import SceneProblem
from regenmap.pipelines.layout import RunLayout
from regenmap.pipelines.tile_store import (
    file_meta,
    reuse_part,
    tile_is_done,
    write_part,
    write_tile,
)

SCHEMA = pa.schema([pa.field("field_id", pa.string()), pa.field("time", pa.timestamp("ns")),
                    pa.field("acquisition_id", pa.string()), pa.field("ndvi_mean", pa.float32())])


def LAYOUT(observations: Path) -> RunLayout:
    """The layout of the run whose observations folder is ``observations``."""
    return RunLayout(observations.parent)


T1, T2 = np.datetime64("2023-04-10T10:46:29", "ns"), np.datetime64("2023-04-20T10:46:29", "ns")


def rows(ids: list[str], when: np.datetime64, acq: str) -> pd.DataFrame:
    return pd.DataFrame({"field_id": ids, "time": [when] * len(ids), "acquisition_id": acq,
                         "ndvi_mean": np.arange(len(ids), dtype=np.float32)})


def test_parts_stream_into_one_sorted_tile_file_and_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "observations"
    # two acquisitions at the same time (two sensors), one earlier, one with a problem
    late_a = write_part(LAYOUT(out).part_file("0_0", "S2A/late"), rows(["d", "b"], T2, "S2A/late"),
                        SCHEMA, T2, "key", [], (3, 1))
    late_b = write_part(LAYOUT(out).part_file("0_0", "L9 late"), rows(["c", "a"], T2, "L9 late"),
                        SCHEMA, T2, "key", [], (2, 0))
    early = write_part(LAYOUT(out).part_file("0_0", "early"), rows(["z", "y"], T1, "early"), SCHEMA, T1,
                       "key", [], (1, 1))
    problem = SceneProblem("broken", "/x/B04.tif", "tile 0_0: cannot read", fatal=False)
    failed = write_part(LAYOUT(out).part_file("0_0", "broken"), None, SCHEMA, T1, "key", [problem],
                        (0, 0))
    assert len({late_a.path, late_b.path, early.path, failed.path}) == 4
    path = LAYOUT(out).tile_file("0_0")
    got = write_tile(path, [late_a, late_b, early, failed], SCHEMA, {"run_key": "key"})
    assert got == [problem]
    table = pq.read_table(path)
    assert table.column("field_id").to_pylist() == ["y", "z", "a", "b", "c", "d"]
    assert pq.ParquetFile(path).num_row_groups == 2  # one per acquisition time
    meta = file_meta(path)
    assert meta["block_units"] == {"read": 6, "skipped": 2}
    assert meta["scene_problems"][0]["acquisition_id"] == "broken"
    assert tile_is_done(path, "key") and not tile_is_done(path, "other")
    assert not (out / "_parts" / "tile=0_0").exists()
    assert pd.read_parquet(out).shape[0] == 6  # dataset discovery skips _parts


def test_parts_are_reused_only_from_the_same_run_and_without_problems(tmp_path: Path) -> None:
    out = tmp_path / "observations"
    ok = LAYOUT(out).part_file("1_0", "a")
    write_part(ok, rows(["f"], T1, "a"), SCHEMA, T1, "key", [], (4, 5))
    again = reuse_part(ok, "key")
    assert again is not None and (again.n_rows, again.units_read, again.units_skipped) == (1, 4, 5)
    assert again.time == T1
    assert reuse_part(ok, "another run") is None
    bad = LAYOUT(out).part_file("1_0", "b")
    write_part(bad, None, SCHEMA, T1, "key", [SceneProblem("b", "", "unreadable")], (0, 0))
    assert reuse_part(bad, "key") is None
    assert reuse_part(LAYOUT(out).part_file("1_0", "missing"), "key") is None


def test_a_tile_without_rows_is_an_empty_typed_file(tmp_path: Path) -> None:
    path = LAYOUT(tmp_path).tile_file("2_2")
    write_tile(path, [], SCHEMA, {"run_key": "k"})
    table = pq.read_table(path)
    assert table.num_rows == 0 and table.schema.field("time").type == pa.timestamp("ns")


def test_writing_a_finished_tile_again_leaves_it_as_it_is(tmp_path: Path) -> None:
    """Dask may run the writer again after its parts were removed (a lost worker)."""
    out = tmp_path / "observations"
    problem = SceneProblem("x", "", "unreadable", fatal=False)
    parts = [write_part(LAYOUT(out).part_file("3_1", "a"), rows(["b", "a"], T1, "a"), SCHEMA, T1, "key",
                        [problem], (1, 0))]
    path = LAYOUT(out).tile_file("3_1")
    write_tile(path, parts, SCHEMA, {"run_key": "key"})
    before = path.stat().st_mtime_ns
    assert not Path(parts[0].path).exists()
    again = write_tile(path, parts, SCHEMA, {"run_key": "key"})
    assert [p.reason for p in again] == ["unreadable"]
    assert path.stat().st_mtime_ns == before and pq.read_table(path).num_rows == 2
