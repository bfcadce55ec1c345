"""End-to-end extraction on small Sentinel-2-like band files written by the tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely
from affine import Affine
from distributed import Client

from regenmap.errors import ConfigError, FieldError, InputError, MissingBandError
from regenmap.geo.grid import GridSpec
from regenmap.geo.sentinel2 import reflectance_to_dn
from regenmap.geo.testing import write_raster, write_s2_scene
from regenmap.pipelines import extract as extract_stage
from regenmap.pipelines.config import RunConfig, parse_config
from regenmap.schema import N_PIXELS, N_VALID, VALID_FRACTION, stat_column

X0, Y0 = 500000.0, 5000400.0
GRID = GridSpec("EPSG:32631", Affine(10, 0, X0, 0, -10, Y0), 40, 40)
DATES = [datetime(2023, 4, 10, 10, 46, 29), datetime(2023, 4, 20, 10, 46, 29)]


def extract(config, **kwargs):  # type: ignore[no-untyped-def]
    """Run the extract stage; return its observations folder."""
    return extract_stage(config, **kwargs)["observations"]


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as c:
        yield c


def write_scenes(folder: Path) -> None:
    for d, when in enumerate(DATES):
        bands = {"B02": reflectance_to_dn(np.full((40, 40), 0.05)),
                 "B04": reflectance_to_dn(np.full((40, 40), 0.1)),
                 "B08": reflectance_to_dn(np.full((40, 40), 0.3 + 0.1 * d)),
                 "B11": reflectance_to_dn(np.full((20, 20), 0.2)),
                 "B12": reflectance_to_dn(np.full((20, 20), 0.1))}
        scl = np.full((20, 20), 4, np.uint8)
        if d == 0:
            scl[:5, :5] = 9  # cloud over field "a" on the first date
        write_s2_scene(folder, tile="31UFQ", when=when, grid10=GRID, bands=bands, scl=scl)


def box(c0: int, r0: int, c1: int, r1: int) -> shapely.Polygon:
    """Polygon of pixel columns c0..c1 and rows r0..r1 (exclusive ends) of GRID."""
    return shapely.box(X0 + 10 * c0, Y0 - 10 * r1, X0 + 10 * c1, Y0 - 10 * r0)


def make_config(tmp: Path, fields: gpd.GeoDataFrame, **extract: object) -> RunConfig:
    scenes = tmp / "scenes"
    if not scenes.exists():
        write_scenes(scenes)
    fields.to_file(tmp / "fields.gpkg")
    opts = {"tile_size_px": 16, "inner_buffer_px": 0, **extract}
    return parse_config({"out_dir": "out", "fields": {"path": "fields.gpkg"},
                         "scenes": {"path": "scenes"}, "extract": opts}, base_dir=tmp)


def standard_fields() -> gpd.GeoDataFrame:
    geoms = [box(0, 0, 10, 10), box(20, 20, 40, 40), shapely.box(600000, 0, 600100, 100)]
    return gpd.GeoDataFrame({"field_id": ["a", "b", "outside"], "crop": ["x", "y", "z"]},
                            geometry=geoms, crs="EPSG:32631")


def read_obs(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("tile=*.parquet"))],
                     ignore_index=True)


def test_extract_known_values_statuses_and_provenance(tmp_path: Path, client: Client) -> None:
    cfg = make_config(tmp_path, standard_fields(), percentiles=[10])
    out = extract(cfg, client=client)
    obs = read_obs(out).set_index(["field_id", "time"])
    assert out == tmp_path / "out" / "observations"
    a0 = obs.loc[("a", pd.Timestamp(DATES[0]))]
    assert a0[N_PIXELS] == 100 and a0[N_VALID] == 0 and a0[VALID_FRACTION] == 0
    assert np.isnan(a0[stat_column("NDVI", "mean")])
    a1 = obs.loc[("a", pd.Timestamp(DATES[1]))]
    assert a1[stat_column("NDVI", "mean")] == pytest.approx(0.6, abs=1e-6)
    b0 = obs.loc[("b", pd.Timestamp(DATES[0]))]
    assert b0[N_PIXELS] == 400 and b0[VALID_FRACTION] == 1
    assert b0[stat_column("NDVI", "median")] == pytest.approx(0.5, abs=1e-6)
    assert b0[stat_column("NDTI", "mean")] == pytest.approx(1 / 3, abs=1e-6)
    assert b0[stat_column("BSI", "p10")] == pytest.approx(-0.05 / 0.65, abs=1e-6)
    assert "outside" not in obs.index.get_level_values(0)
    status = pd.read_parquet(tmp_path / "out" / "fields_status.parquet").set_index("field_id")
    assert status.loc["b", "status"] == "ok"
    assert status.loc["outside", "status"] == "no_data"
    assert "outside every scene" in status.loc["outside", "reason"]
    meta = pq.read_schema(next(out.glob("*.parquet"))).metadata[b"regenmap"]
    assert b"regenmap.observations/1" in meta and b"nearest" in meta


def test_each_field_in_one_tile_and_resume_skips_done_tiles(tmp_path: Path, client: Client
                                                            ) -> None:
    cfg = make_config(tmp_path, standard_fields())
    out = extract(cfg, client=client)
    files = sorted(out.glob("tile=*.parquet"))
    obs = read_obs(out)
    assert obs.groupby("field_id")["tile_id"].nunique().max() == 1
    assert len(obs) == 4  # 2 fields x 2 dates
    stamp = {p.name: p.stat().st_mtime_ns for p in files}
    files[0].unlink()
    extract(cfg, client=client)
    after = {p.name: p.stat().st_mtime_ns for p in sorted(out.glob("tile=*.parquet"))}
    assert set(after) == set(stamp)
    assert [n for n in after if after[n] != stamp.get(n)] == [files[0].name]


def test_unknown_index_fails_at_config_time_with_close_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NDVI"):
        make_config(tmp_path, standard_fields(), indices=["NDVl"])


def test_duplicate_field_id_is_an_error_naming_it(tmp_path: Path, client: Client) -> None:
    fields = standard_fields()
    fields.loc[1, "field_id"] = "a"
    with pytest.raises(FieldError, match="'a'"):
        extract(make_config(tmp_path, fields), client=client)


def test_truncated_band_file_recorded_or_fatal(tmp_path: Path, client: Client) -> None:
    cfg = make_config(tmp_path, standard_fields())
    victim = next((tmp_path / "scenes").glob("*20230420*_B08_10m.tif"))
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    extract(cfg, client=client)
    scenes = pd.read_parquet(tmp_path / "out" / "scenes_status.parquet")
    assert victim.name in " ".join(scenes["path"]) + " ".join(scenes["reason"])
    obs = read_obs(cfg.out_dir / "observations").set_index(["field_id", "time"])
    b1 = obs.loc[("b", pd.Timestamp(DATES[1]))]
    assert np.isnan(b1[stat_column("NDVI", "mean")])  # needs the unreadable B08
    assert b1[stat_column("NDTI", "mean")] == pytest.approx(1 / 3, abs=1e-6)
    failing = cfg.model_copy(update={"extract": cfg.extract.model_copy(update={"on_error": "fail"}),
                                     "out_dir": tmp_path / "out2"})
    with pytest.raises(InputError, match="B08"):
        extract(failing, client=client)


def test_raster_without_crs_is_named(tmp_path: Path, client: Client) -> None:
    cfg = make_config(tmp_path, standard_fields(), on_error="fail")
    victim = next((tmp_path / "scenes").glob("*20230410*_B04_10m.tif"))
    write_raster(victim, np.ones((40, 40), np.uint16), GRID, nodata=0, crs=False)
    with pytest.raises(InputError, match="no CRS"):
        extract(cfg, client=client)


def test_sensor_without_swir_gives_nan_columns_and_a_note(tmp_path: Path, client: Client) -> None:
    folder = tmp_path / "planet"
    data = np.stack([np.full((40, 40), v, np.uint16) for v in (500, 800, 1000, 3000)])
    write_raster(folder / "scene_20230412.tif", data, GRID, nodata=0)
    standard_fields().to_file(tmp_path / "fields.gpkg")
    cfg = parse_config({"out_dir": "out", "fields": {"path": "fields.gpkg"},
                        "scenes": {"path": "planet", "sensor": "generic_4band"}}, base_dir=tmp_path)
    out = extract(cfg, client=client)
    obs = read_obs(out)
    assert obs[stat_column("NDVI", "mean")].dropna().to_numpy() == pytest.approx([0.5, 0.5])
    assert obs[stat_column("NDTI", "mean")].isna().all()
    meta = pq.read_schema(next(out.glob("*.parquet"))).metadata[b"regenmap"].decode()
    assert "NDTI needs band(s) swir16, swir22" in meta


def test_too_small_and_invalid_geometry_recorded(tmp_path: Path, client: Client) -> None:
    bowtie = shapely.Polygon([(X0, Y0), (X0 + 100, Y0 - 100), (X0 + 100, Y0), (X0, Y0 - 100)])
    fields = gpd.GeoDataFrame(
        {"field_id": ["tiny", "bowtie", "empty"]},
        geometry=[box(30, 0, 31, 1), bowtie, shapely.Polygon()], crs="EPSG:32631")
    out = extract(make_config(tmp_path, fields), client=client)
    status = pd.read_parquet(tmp_path / "out" / "fields_status.parquet").set_index("field_id")
    assert status.loc["tiny", "status"] == "too_small"
    assert status.loc["tiny", N_PIXELS] == 1
    assert "make_valid" in status.loc["bowtie", "reason"]
    assert status.loc["bowtie", "status"] == "ok"
    assert status.loc["empty", "status"] == "error"
    obs = read_obs(out)
    assert obs.loc[obs.field_id == "tiny", stat_column("NDVI", "mean")].isna().all()


def test_missing_band_file_in_one_acquisition(tmp_path: Path, client: Client) -> None:
    cfg = make_config(tmp_path, standard_fields())
    next((tmp_path / "scenes").glob("*20230420*_B11_20m.tif")).unlink()
    out = extract(cfg, client=client)
    obs = read_obs(out).set_index(["field_id", "time"])
    b1 = obs.loc[("b", pd.Timestamp(DATES[1]))]
    assert np.isnan(b1[stat_column("NDTI", "mean")]) and np.isnan(b1[stat_column("BSI", "mean")])
    assert b1[stat_column("NDVI", "mean")] == pytest.approx(0.6, abs=1e-6)
    scenes = pd.read_parquet(tmp_path / "out" / "scenes_status.parquet")
    assert scenes["reason"].str.contains(r"NDTI needs band\(s\) \['swir16'\]").any()
    failing = cfg.model_copy(update={"extract": cfg.extract.model_copy(update={"on_error": "fail"}),
                                     "out_dir": tmp_path / "out2"})
    with pytest.raises(MissingBandError, match="swir16"):
        extract(failing, client=client)


def test_extract_starts_its_own_cluster_from_a_yaml_path(tmp_path: Path) -> None:
    make_config(tmp_path, standard_fields())
    (tmp_path / "run.yaml").write_text(
        "out_dir: out\nfields: {path: fields.gpkg}\nscenes: {path: scenes}\n"
        "extract: {indices: [NDVI], tile_size_px: 64}\n"
        "cluster: {n_workers: 1, processes: false}\n")
    out = extract(tmp_path / "run.yaml")
    assert len(read_obs(out)) == 4


def test_strips_do_not_change_the_observations(tmp_path: Path, client: Client,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import regenmap.features.observe as extract_module

    rng = np.random.default_rng(3)
    scenes = tmp_path / "scenes"
    for when in DATES:
        bands = {b: reflectance_to_dn(rng.uniform(0.02, 0.5, (40, 40))) for b in ("B02", "B04", "B08")}
        bands |= {b: reflectance_to_dn(rng.uniform(0.05, 0.4, (20, 20))) for b in ("B11", "B12")}
        write_s2_scene(scenes, tile="31UFQ", when=when, grid10=GRID, bands=bands,
                       scl=rng.choice(np.array([4, 5, 9], np.uint8), (20, 20), p=[0.6, 0.3, 0.1]))
    fields = gpd.GeoDataFrame(
        {"field_id": ["a", "b", "c", "d"]},
        geometry=[box(0, 0, 17, 13), box(5, 9, 33, 31), box(21, 2, 39, 39),
                  shapely.Polygon([(X0 + 30, Y0 - 395), (X0 + 390, Y0 - 250), (X0 + 200, Y0 - 20)])],
        crs="EPSG:32631")
    outs = {}
    for rows in (3, 10_000):  # strips of 3 rows (not aligned with the 20 m rows) vs one strip
        monkeypatch.setattr(extract_module, "STRIP_ROWS", rows)
        assert (len(extract_module.strip_rows(GRID, GRID)) > 1) == (rows == 3)
        (tmp_path / str(rows)).mkdir()
        (tmp_path / str(rows) / "scenes").symlink_to(scenes)
        cfg = make_config(tmp_path / str(rows), fields, tile_size_px=64, percentiles=[10, 90])
        outs[rows] = read_obs(extract(cfg, client=client)).sort_values(["field_id", "time"])
    assert outs[3][N_VALID].sum() > 0
    pd.testing.assert_frame_equal(outs[3].reset_index(drop=True), outs[10_000].reset_index(drop=True))


def test_sensor_with_none_of_the_bands_in_several_strips(tmp_path: Path, client: Client,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import regenmap.features.observe as extract_module

    monkeypatch.setattr(extract_module, "STRIP_ROWS", 8)  # several strips, no band, no mask
    folder = tmp_path / "planet"
    data = np.stack([np.full((40, 40), v, np.uint16) for v in (500, 800, 1000, 3000)])
    write_raster(folder / "scene_20230412.tif", data, GRID, nodata=0)
    standard_fields().to_file(tmp_path / "fields.gpkg")
    cfg = parse_config({"out_dir": "out", "fields": {"path": "fields.gpkg"},
                        "scenes": {"path": "planet", "sensor": "generic_4band"},
                        "extract": {"indices": ["NDTI"], "tile_size_px": 64}}, base_dir=tmp_path)
    # nothing can be computed: the run stops, after writing what it read
    with pytest.raises(InputError, match="no index value could be computed in any scene"):
        extract(cfg, client=client)
    obs = read_obs(tmp_path / "out" / "observations").set_index("field_id")
    assert obs.loc["b", N_PIXELS] == 400 and obs.loc["b", N_VALID] == 400
    assert obs[stat_column("NDTI", "mean")].isna().all()


def test_skipping_cloudy_and_field_free_blocks_changes_nothing(
        tmp_path: Path, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    import regenmap.features.observe as extract_module
    import regenmap.geo.raster_read as raster_read

    monkeypatch.setattr(extract_module, "STRIP_ROWS", 8)
    monkeypatch.setattr(raster_read, "MIN_UNIT_PX", 1)  # units = the files' 16-px blocks
    skipped_strips: list[int] = []
    real_skip = extract_module.ZonalPass.skip

    def counting_skip(self: Any, r0: int, height: int) -> None:
        skipped_strips.append(r0)
        real_skip(self, r0, height)

    monkeypatch.setattr(extract_module.ZonalPass, "skip", counting_skip)
    rng = np.random.default_rng(5)
    scenes = tmp_path / "scenes"
    for d, when in enumerate(DATES):
        bands = {b: reflectance_to_dn(rng.uniform(0.02, 0.5, (40, 40))) for b in ("B04", "B08")}
        bands |= {b: reflectance_to_dn(rng.uniform(0.05, 0.4, (20, 20))) for b in ("B11", "B12")}
        scl = rng.choice(np.array([4, 5, 9], np.uint8), (20, 20), p=[0.6, 0.3, 0.1])
        scl[:8] = 9  # cloud over the first 16 rows (two whole strips)
        if d == 1:
            scl[:, 8:] = 8  # and, on the second date, over the right part too
        write_s2_scene(scenes, tile="31UFQ", when=when, grid10=GRID, bands=bands, scl=scl,
                       blocksize=16)
    fields = gpd.GeoDataFrame(  # nothing in columns 24-39 of rows 16-39
        {"field_id": ["a", "b", "c"]},
        geometry=[box(0, 0, 17, 13), box(3, 9, 21, 39), box(10, 2, 39, 11)], crs="EPSG:32631")
    outs, units = {}, {}
    for skip in (True, False):
        folder = tmp_path / str(skip)
        folder.mkdir()
        (folder / "scenes").symlink_to(scenes)
        cfg = make_config(folder, fields, tile_size_px=64, percentiles=[10, 90],
                          stats=["mean", "median", "std", "min", "max"], skip_blocks=skip)
        out = extract(cfg, client=client)
        outs[skip] = read_obs(out).sort_values(["field_id", "time"]).reset_index(drop=True)
        meta = json.loads(pq.read_schema(next(out.glob("*.parquet"))).metadata[b"regenmap"])
        units[skip] = meta["block_units"]
    assert outs[True][N_VALID].sum() > 0
    pd.testing.assert_frame_equal(outs[True], outs[False])
    assert units[True]["skipped"] > 0 and units[True]["read"] > 0
    assert units[False] == {"read": 0, "skipped": 0}  # nothing asked, nothing counted
    assert sorted(set(skipped_strips)) == [0, 8]  # the two strips under cloud, not decoded


def test_killed_run_reuses_the_parts_it_had_written(tmp_path: Path, client: Client) -> None:
    from regenmap.pipelines.layout import RunLayout
    from regenmap.pipelines.tile_store import file_meta, write_part

    cfg = make_config(tmp_path, standard_fields())
    out = extract(cfg, client=client)
    tile = next(out.glob("tile=*.parquet"))
    first = read_obs(out)
    run_key = file_meta(tile)["run_key"]
    tile_id = tile.stem.removeprefix("tile=")
    # as if the run had died after writing the first acquisition's part: a part with a
    # marked value stands in for it, and must be used as it is
    acq = first.loc[first["time"] == pd.Timestamp(DATES[0])]
    acq = acq.loc[acq["tile_id"] == tile_id].copy()
    acq[stat_column("NDVI", "mean")] = np.float32(-9.0)
    schema = pq.read_schema(tile).remove_metadata()
    write_part(RunLayout(out.parent).part_file(tile_id, acq["acquisition_id"].iloc[0]), acq, schema,
               np.datetime64(DATES[0], "ns"), run_key, [], (0, 0))
    tile.unlink()
    second = read_obs(extract(cfg, client=client))
    marked = second.loc[second[stat_column("NDVI", "mean")] == -9.0]
    assert len(marked) == len(acq) > 0
    assert set(marked["time"]) == {pd.Timestamp(DATES[0])}
    assert len(second) == len(first)
    assert not (out / "_parts").exists()


def test_fields_edited_in_place_are_not_met_by_stale_tiles(tmp_path: Path, client: Client) -> None:
    cfg = make_config(tmp_path, standard_fields())
    first = read_obs(extract(cfg, client=client)).set_index(["field_id", "time"])
    edited = standard_fields()
    edited.loc[0, "geometry"] = box(0, 0, 5, 10)  # field "a" loses half its pixels
    edited.to_file(tmp_path / "fields.gpkg")  # same path, same configuration
    second = read_obs(extract(cfg, client=client)).set_index(["field_id", "time"])
    a0 = ("a", pd.Timestamp(DATES[0]))
    assert first.loc[a0, N_PIXELS] == 100 and second.loc[a0, N_PIXELS] == 50


def test_run_redoes_stages_after_an_edited_input_or_a_stage_that_ran(tmp_path: Path,
                                                                     client: Client) -> None:
    from regenmap.pipelines.job import run

    fields = standard_fields()
    cfg = make_config(tmp_path, fields, tile_size_px=64)
    stages = ("extract", "features")
    assert run(cfg, quiet=True, client=client, stages=stages).skipped == []
    assert run(cfg, quiet=True, client=client, stages=stages).skipped == list(stages)
    fields["crop"] = ["w", "y", "z"]  # an attribute edited in place
    fields.to_file(tmp_path / "fields.gpkg")
    assert run(cfg, quiet=True, client=client, stages=stages).skipped == []
    # extraction's marker lost: it runs again (its tiles are kept), and so must features
    (tmp_path / "out" / ".regenmap" / "extract.done.json").unlink()
    assert run(cfg, quiet=True, client=client, stages=stages).skipped == []
    assert run(cfg, quiet=True, client=client, stages=stages).skipped == list(stages)


def test_unreadable_scenes_are_not_called_outside(tmp_path: Path, client: Client) -> None:
    cfg = make_config(tmp_path, standard_fields())
    for victim in (tmp_path / "scenes").glob("*_B08_10m.tif"):
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    for victim in (tmp_path / "scenes").glob("*_B11_20m.tif"):
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    with pytest.raises(InputError, match="no field can be labelled"):
        extract(cfg, client=client)
    status = pd.read_parquet(tmp_path / "out" / "fields_status.parquet").set_index("field_id")
    assert "the bands they need are missing or unreadable" in status.loc["a", "reason"]
    assert status.loc["outside", "reason"] == "outside every scene"


def test_field_index_cache_is_shared_between_runs(tmp_path: Path, client: Client) -> None:
    cache = tmp_path / "shared-cache"
    cfg = make_config(tmp_path, standard_fields(), cache_dir=str(cache))
    first = read_obs(extract(cfg, client=client))
    files = sorted((cache / "field_index").glob("field-index-*.npz"))
    assert files  # one per tile and grid
    stamps = [f.stat().st_mtime_ns for f in files]
    # another run (another output folder) on the same fields and grid reads them
    other = cfg.model_copy(update={"out_dir": tmp_path / "out2"})
    second = read_obs(extract(other, client=client))
    pd.testing.assert_frame_equal(first, second)
    assert [f.stat().st_mtime_ns for f in files] == stamps
    # the tiles' fields files are gone once the tiles are written
    assert not (tmp_path / "out" / ".regenmap" / "tile_fields").exists()


def test_binned_median_option_reaches_the_kernel(tmp_path: Path, client: Client) -> None:
    cfg = make_config(tmp_path, standard_fields(), median="binned", median_precision=0.01)
    exact = read_obs(extract(make_config(tmp_path / "exact", standard_fields()), client=client))
    binned = read_obs(extract(cfg, client=client))
    col = stat_column("NDVI", "median")
    diff = (binned[col] - exact[col]).abs().dropna()
    assert len(diff) and (diff <= 0.01 + 1e-6).all()
    pd.testing.assert_series_equal(binned[stat_column("NDVI", "mean")],
                                   exact[stat_column("NDVI", "mean")])
    with pytest.raises(ConfigError, match="median_precision"):
        make_config(tmp_path / "bad", standard_fields(), median_precision=0)
