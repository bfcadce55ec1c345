"""STAC catalogs and ItemCollections on disk as scene catalogs (pystac).

Each STAC item is one acquisition. Its assets are matched to bands by their
``eo:bands`` common names (STAC 1.0 ``eo:bands[].common_name`` or 1.1
``bands[].eo:common_name``), falling back to the asset key or band name
matching a name of the sensor profile (``B04``, ``red``, ``SCL``). Grids come
from the projection extension (``proj:epsg``/``proj:code``, ``proj:transform``,
``proj:shape``) without opening the file; otherwise the file's header is read.
Scale, offset and nodata come from ``raster:bands`` when given, else from the
profile. Relative hrefs (what downloaders leave beside an ItemCollection) are
resolved against the item's own file, or the JSON file read when the item has
none; a local file that is not there is a scene problem naming the resolved
path. Remote hrefs (``https://``, ``s3://``) are turned into GDAL virtual file
system paths (``/vsicurl/``, ``/vsis3/``); they are read like local files.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pystac
from affine import Affine
from pystac.errors import STACError
from pystac.utils import make_absolute_href

from regenmap.errors import InputError
from regenmap.geo.catalog import Acquisition, Asset, SceneProblem, open_grid
from regenmap.geo.grid import GridSpec, crs_string
from regenmap.geo.sensors import MaskSpec, SensorProfile


def read_stac(path: str | Path, profile: SensorProfile
              ) -> tuple[list[Acquisition], list[SceneProblem]]:
    """Catalogue the items of a STAC catalog/collection or ItemCollection file.

    Parameters
    ----------
    path
        ``catalog.json``, ``collection.json`` or an ItemCollection (GeoJSON FeatureCollection).
    profile
        Sensor profile giving band names, scaling and the quality band.

    Returns
    -------
    acquisitions, problems
        One acquisition per usable item, sorted by time; a problem per unusable item or asset.

    Raises
    ------
    InputError
        If the file cannot be read as STAC.
    """
    p = Path(path)
    try:
        items = list(_items(p))
    except (OSError, ValueError, KeyError, STACError) as err:
        raise InputError(f"cannot read STAC: {err}", path=p) from None
    acquisitions: list[Acquisition] = []
    problems: list[SceneProblem] = []
    for item in items:
        acq, probs = _acquisition(item, profile, p.resolve())
        problems += probs
        if acq is not None:
            acquisitions.append(acq)
    if not items:
        raise InputError("the STAC file holds no item", path=p)
    acquisitions.sort(key=lambda a: (a.time, a.id))
    return acquisitions, problems


def _items(path: Path) -> list[pystac.Item]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("type") == "FeatureCollection":
        return list(pystac.ItemCollection.from_dict(data, preserve_dict=False).items)
    if data.get("type") == "Feature":
        return [pystac.Item.from_file(str(path))]
    root = pystac.read_file(str(path))
    if isinstance(root, pystac.Catalog):
        return list(root.get_items(recursive=True))
    raise ValueError(f"unsupported STAC object {type(root).__name__}")


def vsi_href(href: str) -> str:
    """Return a GDAL-readable path for an href (``/vsicurl/`` for http(s), ``/vsis3/`` for s3)."""
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    if href.startswith("s3://"):
        return "/vsis3/" + href[len("s3://"):]
    if href.startswith("gs://"):
        return "/vsigs/" + href[len("gs://"):]
    return href.removeprefix("file://")


def _asset_names(key: str, asset: pystac.Asset) -> list[str]:
    names = []
    for band in asset.extra_fields.get("eo:bands", []) or []:
        names += [band.get("common_name"), band.get("name")]
    for band in asset.extra_fields.get("bands", []) or []:
        names += [band.get("eo:common_name"), band.get("name")]
    names += [asset.extra_fields.get("eo:common_name"), key]
    return [str(n) for n in names if n]


def _asset_href(asset: pystac.Asset, base: str) -> str:
    """Return a GDAL-readable path for an asset: relative hrefs resolved, remote ones as ``/vsi``.

    Parameters
    ----------
    asset
        The STAC asset.
    base
        The file a relative href is relative to: the item's own JSON when it has one
        (pystac knows it), else the catalog or ItemCollection file that was read.
    """
    owner = asset.owner
    self_href = owner.get_self_href() if isinstance(owner, pystac.Item) else None
    return vsi_href(make_absolute_href(asset.href, start_href=self_href or base))


def _missing_local(href: str) -> bool:
    """Tell whether ``href`` is a local path (not remote, not ``/vsi``) with no file there."""
    return not href.startswith("/vsi") and "://" not in href and not Path(href).is_file()


def _acquisition(item: pystac.Item, profile: SensorProfile, source: Path
                 ) -> tuple[Acquisition | None, list[SceneProblem]]:
    problems: list[SceneProblem] = []
    when = item.datetime or _start(item)
    if when is None:
        return None, [SceneProblem(item.id, item.get_self_href() or "", "item has no datetime")]
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    assets: dict[str, Asset] = {}
    masks: dict[str, tuple[Asset, MaskSpec]] = {}
    baseline = item.properties.get("s2:processing_baseline")
    baseline = None if baseline is None else str(baseline)
    for key, asset in item.assets.items():
        names = _asset_names(key, asset)
        quality = next((m for m in (profile.match_mask(n) for n in names) if m), None)
        target = next((t for t in (profile.match_band(n) for n in names) if t), None)
        if target is None:
            continue
        href = _asset_href(asset, str(source))
        if _missing_local(href):
            problems.append(SceneProblem(item.id, href, f"file not found: {href}",
                                         fatal=quality is not None))
            continue
        try:
            grid = _grid(item, asset) or open_grid(href)[0]
        except InputError as err:
            problems.append(SceneProblem(item.id, href, str(err), fatal=quality is not None))
            continue
        if quality is not None:
            masks.setdefault(quality.band, (Asset(href, 1, grid), quality))
            continue
        rb = (asset.extra_fields.get("raster:bands") or [{}])[0]
        scale, offset, nodata = profile.scaling(target, when, baseline)
        assets[target] = Asset(href, 1, grid, float(rb.get("scale", scale)),
                               float(rb.get("offset", offset)), rb.get("nodata", nodata))
    chosen = next((masks[m.band] for m in profile.masks if m.band in masks), None)
    if profile.mask is not None and chosen is None:
        wanted = " or ".join(m.band for m in profile.masks)
        problems.append(SceneProblem(item.id, item.get_self_href() or str(source),
                                     f"no {wanted} quality asset; item skipped"))
        return None, problems
    if not assets:
        problems.append(SceneProblem(item.id, item.get_self_href() or str(source),
                                     "no asset matches a band of sensor profile "
                                     f"{profile.name!r}; item skipped"))
        return None, problems
    tile = str(item.properties.get("s2:mgrs_tile") or item.properties.get("grid:code") or "")
    acq_id = f"{profile.name}_{item.id}"
    mask, mask_spec = chosen if chosen is not None else (None, None)
    return Acquisition(acq_id, when, profile.name, tile, assets, mask, mask_spec), problems


def _start(item: pystac.Item) -> datetime | None:
    text = item.properties.get("start_datetime")
    return None if text is None else datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def _grid(item: pystac.Item, asset: pystac.Asset) -> GridSpec | None:
    """Grid from the projection extension (asset first, then item), or None."""
    def get(key: str) -> Any:
        return asset.extra_fields.get(key, item.properties.get(key))

    code = get("proj:code") or (f"EPSG:{get('proj:epsg')}" if get("proj:epsg") else None)
    transform, shape = get("proj:transform"), get("proj:shape")
    if not code or not transform or not shape:
        return None
    t = Affine(*transform[:6])
    return GridSpec(crs_string(code), t, int(shape[1]), int(shape[0]))
