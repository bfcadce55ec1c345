"""STAC on disk: relative asset hrefs resolve against the JSON that holds them; missing files are named."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pystac
import pytest
import yaml
from affine import Affine
from pystac.extensions.eo import Band, EOExtension

from regenmap.geo.grid import GridSpec
from regenmap.geo.sensors import SensorProfile
from regenmap.geo.stac import read_stac
from regenmap.geo.testing import write_raster

S2 = SensorProfile.from_mapping(yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "configs" / "sensors" / "sentinel2_l2a.yaml").read_text()))
G = GridSpec("EPSG:32631", Affine(10, 0, 600000, 0, -10, 5000000), 4, 4)
WHEN = datetime(2023, 4, 12, 10, 46, 29)


def item(folder: Path, item_id: str, href_of: dict[str, str]) -> pystac.Item:
    """An S2 item with B04 and SCL files in ``folder`` and the given asset hrefs."""
    it = pystac.Item(item_id, None, None, WHEN, {})
    for band, href in href_of.items():
        data = np.full((4, 4), 4 if band == "SCL" else 1500, np.uint16)
        write_raster(folder / f"{band}.tif", data, G, nodata=0)
        asset = pystac.Asset(href)
        it.add_asset(band, asset)
        if band == "B04":
            EOExtension.ext(asset, add_if_missing=True).bands = [Band.create(name="B04",
                                                                             common_name="red")]
    return it


def test_item_collection_hrefs_relative_to_its_json_whatever_the_working_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    it = item(data / "scene", "a", {"B04": "scene/B04.tif", "SCL": "./scene/SCL.tif"})
    pystac.ItemCollection([it]).save_object(dest_href=str(data / "items.json"))
    monkeypatch.chdir(tmp_path)  # the JSON's folder is not the working folder
    acqs, problems = read_stac(Path("data") / "items.json", S2)
    assert problems == []
    assert acqs[0].assets["red"].href == str(data / "scene" / "B04.tif")
    assert acqs[0].mask is not None and acqs[0].mask.href == str(data / "scene" / "SCL.tif")
    assert Path(acqs[0].assets["red"].href).is_absolute()


def test_catalog_items_resolve_against_their_own_json(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    cat = pystac.Catalog("c", "downloaded scenes")
    it = item(root / "b", "b", {"B04": "./B04.tif", "SCL": "./SCL.tif"})
    cat.add_item(it)
    cat.normalize_hrefs(str(root))  # item b is saved as catalog/b/b.json, beside its files
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    acqs, problems = read_stac(root / "catalog.json", S2)
    assert problems == [] and acqs[0].assets["red"].href == str(root / "b" / "B04.tif")


def test_missing_asset_files_are_scene_problems_with_the_resolved_path(tmp_path: Path) -> None:
    it = item(tmp_path / "scene", "a", {"B04": "scene/B04.tif", "SCL": "scene/SCL.tif"})
    pystac.ItemCollection([it]).save_object(dest_href=str(tmp_path / "items.json"))
    (tmp_path / "scene" / "SCL.tif").unlink()
    acqs, problems = read_stac(tmp_path / "items.json", S2)
    assert acqs == []
    missing = str(tmp_path / "scene" / "SCL.tif")
    assert problems[0].reason == f"file not found: {missing}" and problems[0].path == missing
    assert problems[0].fatal and "no SCL quality asset; item skipped" in problems[1].reason
