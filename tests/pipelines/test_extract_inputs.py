"""Extraction from every kind of scene input: S2 + Landsat in two UTM zones, STAC, time stacks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from distributed import Client
from pyproj import Transformer

from regenmap.geo.grid import GridSpec
from regenmap.geo.sentinel2 import band_filename, reflectance_to_dn
from regenmap.geo.testing import write_raster, write_s2_scene
from regenmap.pipelines import extract as extract_stage
from regenmap.pipelines.config import parse_config
from regenmap.schema import N_PIXELS, N_VALID, SENSOR, stat_column

# Two fields near 6 degrees East, the border of UTM zones 31 and 32, given in EPSG:4326.
LON, LAT = 5.999, 49.0
S2_DATE = datetime(2023, 5, 2, 10, 36, 29)
LS_DATE = datetime(2023, 5, 3)


def extract(config, **kwargs):  # type: ignore[no-untyped-def]
    """Run the extract stage; return its observations folder."""
    return extract_stage(config, **kwargs)["observations"]


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as c:
        yield c


def to_utm(epsg: int) -> Transformer:
    return Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)


def fields_4326() -> gpd.GeoDataFrame:
    d = 0.0012  # about 90 m
    geoms = [shapely.box(LON - d, LAT - d, LON, LAT), shapely.box(LON + 0.0005, LAT - d,
                                                                  LON + 0.0005 + d, LAT)]
    return gpd.GeoDataFrame({"field_id": ["west", "east"]}, geometry=geoms, crs="EPSG:4326")


def grid_around(epsg: int, res: float, size_m: float) -> GridSpec:
    x, y = to_utm(epsg).transform(LON, LAT)
    x0 = np.floor((x - size_m / 2) / res) * res
    y0 = np.ceil((y + size_m / 2) / res) * res
    n = int(size_m / res)
    return GridSpec(f"EPSG:{epsg}", Affine(res, 0, x0, 0, -res, y0), n, n)


def write_s2(folder: Path) -> GridSpec:
    g = grid_around(32631, 10.0, 800.0)
    n = g.width
    bands = {"B02": reflectance_to_dn(np.full((n, n), 0.05)),
             "B04": reflectance_to_dn(np.full((n, n), 0.1)),
             "B08": reflectance_to_dn(np.full((n, n), 0.3)),
             "B11": reflectance_to_dn(np.full((n // 2, n // 2), 0.2)),
             "B12": reflectance_to_dn(np.full((n // 2, n // 2), 0.1))}
    write_s2_scene(folder, tile="31UGQ", when=S2_DATE, grid10=g, bands=bands,
                   scl=np.full((n // 2, n // 2), 4, np.uint8))
    return g


def write_landsat(folder: Path) -> None:
    g = grid_around(32632, 30.0, 900.0)
    n = g.width

    def dn(refl: float) -> np.ndarray:
        return np.full((n, n), round((refl + 0.2) / 2.75e-5), np.uint16)

    stem = f"LC09_L2SP_196026_{LS_DATE:%Y%m%d}_20230505_02_T1"
    for band, refl in {"SR_B2": 0.04, "SR_B4": 0.1, "SR_B5": 0.4, "SR_B6": 0.25, "SR_B7": 0.15}.items():
        write_raster(folder / f"{stem}_{band}.TIF", dn(refl), g, nodata=0)
    qa = np.full((n, n), 1 << 6, np.uint16)  # bit 6: clear
    qa[:, : n // 2] |= 1 << 3  # cloud over the western half: the "west" field
    write_raster(folder / f"{stem}_QA_PIXEL.TIF", qa, g, nodata=1)


def test_sentinel2_and_landsat_in_two_utm_zones(tmp_path: Path, client: Client) -> None:
    write_s2(tmp_path / "scenes" / "s2")
    write_landsat(tmp_path / "scenes" / "landsat")
    fields_4326().to_file(tmp_path / "fields.geojson", driver="GeoJSON")
    cfg = parse_config({"out_dir": "out", "fields": {"path": "fields.geojson"},
                        "scenes": {"path": "scenes", "sensor": ["sentinel2_l2a", "landsat_c2_l2"]},
                        "extract": {"indices": ["NDVI", "NDTI"], "tile_size_px": 64}},
                       base_dir=tmp_path)
    obs = pd.concat([pd.read_parquet(p) for p in extract(cfg, client=client).glob("*.parquet")])
    obs = obs.set_index(["field_id", SENSOR])
    assert len(obs) == 4
    assert obs[stat_column("NDVI", "mean")].loc[("east", "sentinel2_l2a")] == pytest.approx(0.5,
                                                                                        abs=1e-4)
    assert obs[stat_column("NDVI", "mean")].loc[("east", "landsat_c2_l2")] == pytest.approx(
        0.3 / 0.5, abs=1e-4)
    assert obs[stat_column("NDTI", "mean")].loc[("east", "landsat_c2_l2")] == pytest.approx(
        0.1 / 0.4, abs=1e-4)
    west_ls = obs.loc[("west", "landsat_c2_l2")]
    assert west_ls[N_PIXELS] > 0 and west_ls[N_VALID] == 0  # clouded by QA_PIXEL bit 3
    # A ~90 m field holds about 8x8 S2 pixels and fewer, larger Landsat pixels
    assert obs[N_PIXELS].loc[("east", "sentinel2_l2a")] > obs[N_PIXELS].loc[("east", "landsat_c2_l2")]


def stac_item(folder: Path, grid: GridSpec) -> dict[str, object]:
    assets = {}
    for band, common, res in [("B02", "blue", 10), ("B04", "red", 10), ("B08", "nir", 10),
                              ("B11", "swir16", 20), ("B12", "swir22", 20), ("SCL", None, 20)]:
        href = folder / band_filename("31UGQ", S2_DATE, band, res)
        asset: dict[str, object] = {"href": str(href), "type": "image/tiff; application=geotiff"}
        if common:
            asset["eo:bands"] = [{"name": band, "common_name": common}]
        assets[band.lower() if common is None else common] = asset
    x0, y0 = grid.transform.c, grid.transform.f
    return {"type": "Feature", "stac_version": "1.0.0", "id": "S2B_31UGQ_20230502_0_L2A",
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
            "geometry": None, "bbox": None,
            "properties": {"datetime": S2_DATE.isoformat() + "Z", "s2:mgrs_tile": "31UGQ"},
            "links": [], "assets": assets, "collection": "sentinel-2-l2a",
            "_bounds": [x0, y0]}


def test_stac_item_collection_matches_band_files(tmp_path: Path, client: Client) -> None:
    scenes = tmp_path / "s2"
    grid = write_s2(scenes)
    item = stac_item(scenes, grid)
    item.pop("_bounds")
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection",
                                                     "features": [item]}))
    fields_4326().to_file(tmp_path / "fields.fgb", driver="FlatGeobuf")
    base = {"out_dir": "a", "fields": {"path": "fields.fgb"}, "extract": {"tile_size_px": 64}}
    via_stac = parse_config({**base, "scenes": {"path": "items.json", "kind": "stac"}},
                            base_dir=tmp_path)
    via_files = parse_config({**base, "out_dir": "b", "scenes": {"path": "s2"}}, base_dir=tmp_path)
    a = pd.concat([pd.read_parquet(p) for p in extract(via_stac, client=client).glob("*.parquet")])
    b = pd.concat([pd.read_parquet(p) for p in extract(via_files, client=client).glob("*.parquet")])
    cols = [N_PIXELS, N_VALID, stat_column("NDVI", "mean"), stat_column("BSI", "median")]
    pd.testing.assert_frame_equal(a.set_index("field_id")[cols].sort_index(),
                                  b.set_index("field_id")[cols].sort_index())
    assert b[stat_column("BSI", "median")].iloc[0] == pytest.approx(-0.05 / 0.65, abs=1e-5)


def test_geographic_time_stack_with_sidecar_dates(tmp_path: Path, client: Client) -> None:
    # An NDVI stack in EPSG:4326 (as exported by Earth Engine), dates in a CSV.
    res = 0.0001
    g = GridSpec("EPSG:4326", Affine(res, 0, LON - 0.002, 0, -res, LAT + 0.0005), 45, 30)
    stack = np.stack([np.full(g.shape, v, np.float32) for v in (0.2, 0.7, np.nan)])
    stack[0, :, :20] = 0.4  # "west" on date 1
    write_raster(tmp_path / "stack" / "NDVI.tif", stack, g)
    pd.DataFrame({"band": [1, 2, 3], "date": ["2023-03-01", "2023-04-01", "2023-05-01"]}).to_csv(
        tmp_path / "stack" / "dates.csv", index=False)
    fields_4326().to_file(tmp_path / "fields.gpkg")
    cfg = parse_config({"out_dir": "out", "fields": {"path": "fields.gpkg"},
                        "scenes": {"path": "stack", "kind": "time_stack"},
                        "extract": {"indices": ["NDVI"], "inner_buffer_px": 0}}, base_dir=tmp_path)
    obs = pd.concat([pd.read_parquet(p) for p in extract(cfg, client=client).glob("*.parquet")])
    obs = obs.set_index(["field_id", "time"])[stat_column("NDVI", "mean")]
    assert obs.loc[("east", pd.Timestamp("2023-04-01"))] == pytest.approx(0.7)
    assert obs.loc[("east", pd.Timestamp("2023-03-01"))] == pytest.approx(0.2)
    assert np.isnan(obs.loc[("east", pd.Timestamp("2023-05-01"))])
