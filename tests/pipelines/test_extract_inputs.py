"""Extraction from every kind of scene input: S2 + Landsat in two UTM zones, STAC, time stacks,
MODIS sinusoidal stacks, STAC ItemCollections with relative hrefs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import pytest
import rasterio
import shapely
import yaml
from affine import Affine
from distributed import Client
from pyproj import Transformer
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension

from regenmap.errors import ConfigError
from regenmap.geo.grid import GridSpec
from regenmap.geo.sentinel2 import band_filename, reflectance_to_dn
from regenmap.geo.testing import write_raster, write_s2_scene
from regenmap.pipelines import extract as extract_stage
from regenmap.pipelines.config import parse_config
from regenmap.pipelines.inputs import sensor_profile
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


# --------------------------------------------------------------------------- MODIS sinusoidal
SINU = "+proj=sinu +R=6371007.181 +nadgrids=@null +wktext +units=m"
MODIS_RES = 231.656358263889  # MOD13Q1 pixel size in the sinusoidal grid


def sinusoidal_field(grid: GridSpec, rows: slice, cols: slice) -> shapely.Polygon:
    """A polygon in EPSG:4326 holding exactly the centres of grid pixels [rows, cols].

    Built in the sinusoidal CRS 30 m inside the block's pixel edges (each centre is 116 m
    from them), densified, then carried to longitude/latitude, as users' fields come.
    """
    t = grid.transform
    x0, x1 = t.c + cols.start * t.a + 30, t.c + cols.stop * t.a - 30
    y0, y1 = t.f + rows.stop * t.e + 30, t.f + rows.start * t.e - 30
    box = shapely.segmentize(shapely.box(x0, y0, x1, y1), 20.0)
    to_lonlat = Transformer.from_crs(SINU, "EPSG:4326", always_xy=True)
    return shapely.transform(box, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1])))


def test_modis_sinusoidal_ndvi_stack_with_headerless_dates(tmp_path: Path, client: Client) -> None:
    x, y = Transformer.from_crs("EPSG:4326", SINU, always_xy=True).transform(LON, LAT)
    x0 = (np.floor(x / MODIS_RES) - 4) * MODIS_RES
    y0 = (np.ceil(y / MODIS_RES) + 4) * MODIS_RES
    g = GridSpec(SINU, Affine(MODIS_RES, 0, x0, 0, -MODIS_RES, y0), 8, 8)
    a, b = (slice(2, 4), slice(1, 4)), (slice(5, 7), slice(4, 7))  # 6 pixels each
    ndvi = np.full((3, 8, 8), 1000, np.int16)              # DN x 0.0001: 0.1 around the fields
    rely = np.zeros((3, 8, 8), np.int8)                    # pixel reliability 0: good
    ndvi[0][a] = [[2000, 3000, 4000], [5000, 6000, 7000]]  # a: mean 0.45
    ndvi[0][b] = [[8000, 8000, 8000], [8000, 8000, -3000]]  # b: fill -3000 left out -> 0.8 of 5
    rely[0][b] = 1                                          # marginal: kept
    ndvi[1][a] = [[4000, 4000, 4000], [4000, 4000, 9000]]
    rely[1][a] = [[0, 0, 0], [0, 0, 3]]                     # the 0.9 pixel is cloudy -> a: 0.4
    ndvi[1][b] = [[2000, 2500, 3000], [3500, 4000, 4500]]   # b: mean 0.325
    ndvi[2][a] = -3000                                      # a: all fill -> NaN
    rely[2][b] = 2                                          # b: snow/ice -> NaN
    write_raster(tmp_path / "stack" / "MOD13Q1_NDVI.tif", ndvi, g)
    write_raster(tmp_path / "stack" / "MOD13Q1_pixel_reliability.tif", rely, g)
    # the dates as a plain list (MODIS year + day of year), no header
    (tmp_path / "stack" / "composites.txt").write_text("2023097\n2023113\n2023129\n")
    fields = gpd.GeoDataFrame({"field_id": ["a", "b"]},
                              geometry=[sinusoidal_field(g, *a), sinusoidal_field(g, *b)],
                              crs="EPSG:4326")
    fields.to_file(tmp_path / "fields.geojson", driver="GeoJSON")
    cfg = parse_config({"out_dir": "out", "fields": {"path": "fields.geojson"},
                        "scenes": {"path": "stack", "kind": "time_stack", "sensor": "modis_mod13q1",
                                   "dates": "stack/composites.txt"},
                        "extract": {"indices": ["NDVI"], "stats": ["mean", "count"],
                                    "inner_buffer_px": 0, "min_pixels": 1}}, base_dir=tmp_path)
    obs = pd.concat([pd.read_parquet(p) for p in extract(cfg, client=client).glob("*.parquet")])
    obs = obs.set_index(["field_id", "time"]).sort_index()
    mean, count = obs[stat_column("NDVI", "mean")], obs[stat_column("NDVI", "count")]
    t = [pd.Timestamp("2023-04-07"), pd.Timestamp("2023-04-23"), pd.Timestamp("2023-05-09")]
    assert (obs[N_PIXELS] == 6).all()
    assert mean[("a", t[0])] == pytest.approx(0.45, abs=1e-6) and count[("a", t[0])] == 6
    assert mean[("b", t[0])] == pytest.approx(0.8, abs=1e-6) and count[("b", t[0])] == 5
    assert mean[("a", t[1])] == pytest.approx(0.4, abs=1e-6) and obs[N_VALID][("a", t[1])] == 5
    assert mean[("b", t[1])] == pytest.approx(0.325, abs=1e-6)
    assert np.isnan(mean[("a", t[2])]) and np.isnan(mean[("b", t[2])])
    assert obs[N_VALID][("b", t[2])] == 0
    assert (obs[SENSOR] == "modis_mod13q1").all()


# --------------------------------------------------------------------------- STAC, relative hrefs
def write_cog(path: Path, data: np.ndarray, grid: GridSpec, nodata: float | None = 0) -> None:
    """A small Cloud Optimized GeoTIFF, as STAC downloaders fetch them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="COG", width=grid.width, height=grid.height, count=1,
                       dtype=data.dtype.name, crs=grid.crs, transform=grid.transform,
                       nodata=nodata, compress="deflate", blocksize=256) as ds:
        ds.write(data, 1)


def downloaded_item(folder: Path, item_id: str, when: datetime, grid: GridSpec,
                    red: float) -> pystac.Item:
    """One S2 item whose COGs lie in ``folder/<item_id>/``, with relative hrefs and grids."""
    n = grid.width
    g20 = GridSpec(grid.crs, grid.transform @ Affine.scale(2), n // 2, n // 2)
    item = pystac.Item(item_id, None, None, when, {"s2:mgrs_tile": "31UGQ"})
    for band, common, value, g in [("B04", "red", red, grid), ("B08", "nir", 0.3, grid),
                                   ("SCL", None, None, g20)]:
        data = np.full((g.height, g.width), 4, np.uint8) if value is None else \
            reflectance_to_dn(np.full((g.height, g.width), value))
        write_cog(folder / item_id / f"{band}.tif", data, g)
        asset = pystac.Asset(f"./{item_id}/{band}.tif", media_type=pystac.MediaType.COG)
        item.add_asset(band.lower() if common is None else common, asset)
        proj = ProjectionExtension.ext(asset, add_if_missing=True)  # the grid, as catalogues give it
        proj.code, proj.shape, proj.transform = g.crs, [g.height, g.width], list(g.transform)[:6]
        if common is not None:
            EOExtension.ext(asset, add_if_missing=True).bands = [
                Band.create(name=band, common_name=common)]
    return item


def test_stac_item_collection_with_relative_hrefs_and_a_missing_file(tmp_path: Path,
                                                                     client: Client) -> None:
    downloads = tmp_path / "downloads"
    grid = grid_around(32631, 10.0, 800.0)
    first = downloaded_item(downloads, "S2B_31UGQ_20230502_0_L2A", S2_DATE, grid, red=0.1)
    second = downloaded_item(downloads, "S2A_31UGQ_20230507_0_L2A", datetime(2023, 5, 7, 10, 36),
                             grid, red=0.2)
    (downloads / "S2A_31UGQ_20230507_0_L2A" / "B08.tif").unlink()  # an interrupted download
    pystac.ItemCollection([first, second]).save_object(dest_href=str(downloads / "items.json"))
    assert json.loads((downloads / "items.json").read_text())["features"][0]["assets"]["red"][
        "href"].startswith("./")
    fields_4326().to_file(tmp_path / "fields.gpkg")
    cfg = parse_config({"out_dir": "out", "fields": {"path": "fields.gpkg"},
                        "scenes": {"path": "downloads/items.json", "kind": "stac"},
                        "extract": {"indices": ["NDVI"], "tile_size_px": 64}}, base_dir=tmp_path)
    outputs = extract_stage(cfg, client=client)
    obs = pd.concat([pd.read_parquet(p) for p in outputs["observations"].glob("*.parquet")])
    obs = obs.set_index(["field_id", "time"])[stat_column("NDVI", "mean")]
    assert obs[("east", pd.Timestamp(S2_DATE))] == pytest.approx(0.2 / 0.4, abs=1e-4)
    assert np.isnan(obs[("east", pd.Timestamp("2023-05-07T10:36"))])  # its NIR file is missing
    status = pd.read_parquet(outputs["fields_status"]).set_index("field_id")
    assert (status["status"] == "ok").all()  # no longer "outside every scene"
    scenes = pd.read_parquet(outputs["scenes_status"])
    missing = downloads / "S2A_31UGQ_20230507_0_L2A" / "B08.tif"
    assert f"file not found: {missing}" in scenes["reason"].tolist()
    assert str(missing) in scenes["path"].tolist()


def test_profile_index_layers_must_name_known_indices(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({
        "name": "mine", "layout": "time_stack", "bands": {"b4": "red"},
        "index_layers": {"NVDI": {"scale": 0.0001, "nodata": -3000}}}))
    with pytest.raises(ConfigError, match=r"mine\.yaml: index_layers: unknown spectral index 'NVDI'"):
        sensor_profile("mine.yaml", base_dir=tmp_path)
    assert [i.name for i in sensor_profile("modis_mod13q1").index_layers] == ["NDVI", "EVI"]
