"""Input fingerprints: edited inputs invalidate stage markers and extraction tiles."""

from __future__ import annotations

import os
from pathlib import Path

from regenmap.pipelines.fingerprint import inputs_fingerprint


def test_content_size_and_folder_changes_change_the_fingerprint(tmp_path: Path) -> None:
    fields = tmp_path / "fields.gpkg"
    fields.write_bytes(b"abc")
    scenes = tmp_path / "scenes"
    (scenes / "sub").mkdir(parents=True)
    (scenes / "sub" / "B04.tif").write_bytes(b"x" * 10)
    out = scenes / "out"  # an output folder inside the scenes folder is left out
    out.mkdir()
    base = inputs_fingerprint([fields, scenes, None], exclude=out)
    assert inputs_fingerprint([fields, scenes], exclude=out) == base
    (out / "tile=0.parquet").write_bytes(b"new output")
    assert inputs_fingerprint([fields, scenes], exclude=out) == base
    os.utime(fields, ns=(1, 1))  # a small file counts by content, not by time
    assert inputs_fingerprint([fields, scenes], exclude=out) == base
    fields.write_bytes(b"abd")
    edited = inputs_fingerprint([fields, scenes], exclude=out)
    assert edited != base
    (scenes / "sub" / "B08.tif").write_bytes(b"y")
    assert inputs_fingerprint([fields, scenes], exclude=out) != edited
    assert inputs_fingerprint(["s3://bucket/scenes"]) == inputs_fingerprint(["s3://bucket/scenes"])
    assert inputs_fingerprint([tmp_path / "missing.gpkg"]) != inputs_fingerprint([fields])


def test_shapefile_sidecars_count(tmp_path: Path) -> None:
    shp = tmp_path / "fields.shp"
    shp.write_bytes(b"geometry")
    (tmp_path / "fields.dbf").write_bytes(b"attributes")
    before = inputs_fingerprint([shp])
    (tmp_path / "fields.dbf").write_bytes(b"attributes, edited")
    assert inputs_fingerprint([shp]) != before
