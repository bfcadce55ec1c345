"""Sensor profiles: how a sensor's files are named, scaled and cloud-masked.

A profile maps native band names (``B04``, ``SR_B4``) to STAC common names
(``red``), names the spectral indices a product delivers precomputed (MODIS
NDVI, EVI), holds the scale and offset that turn digital numbers into surface
reflectance (per profile, or per band or index layer where a product mixes
them), and says how to decode the quality band (Sentinel-2 SCL classes,
Landsat QA_PIXEL bits, MODIS state bit fields), or one of several quality
bands a product may come with. Profiles are written in YAML
(``configs/sensors``); only pipelines read YAML, and they hand the parsed
mapping to :meth:`SensorProfile.from_mapping`, which validates it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from regenmap.errors import ConfigError
from regenmap.geo.quality_mask import MaskSpec, parse_mask

#: STAC ``eo:bands`` common names a profile may map to.
COMMON_NAMES: tuple[str, ...] = (
    "coastal", "blue", "green", "red", "yellow", "pan", "rededge", "rededge1", "rededge2",
    "rededge3", "nir", "nir08", "nir09", "cirrus", "swir16", "swir22", "lwir", "lwir11", "lwir12",
)


#: How a profile's files are laid out (see :class:`SensorProfile`).
Layout = Literal["band_files", "multiband", "time_stack"]
LAYOUTS: tuple[str, ...] = ("band_files", "multiband", "time_stack")

#: Key :meth:`SensorProfile.match_band` returns for the quality band.
MASK_KEY = "__mask__"


@dataclass(frozen=True)
class BandSpec:
    """One spectral band of a sensor.

    Attributes
    ----------
    common_name
        STAC common name used inside regenmap (``red``, ``swir16``...).
    native
        The sensor's own name, as found in file names (``B04``, ``SR_B4``).
    aliases
        Other names the band goes by in files (e.g. Earth Engine's ``B4``).
    index
        1-based raster band holding it in a multi-band file (``layout: multiband``); None
        to find it by the raster band descriptions.
    resolution_m
        Native pixel size in metres (informative; the files' own grids are used).
    scale, offset, nodata
        This band's own scaling and missing-value DN where it differs from the
        profile's (None: the profile's).
    """

    common_name: str
    native: str
    aliases: tuple[str, ...] = ()
    index: int | None = None
    resolution_m: float | None = None
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None

    def names(self) -> tuple[str, ...]:
        """All names that identify this band (native, aliases, common), upper-cased."""
        return tuple(n.upper() for n in (self.native, *self.aliases, self.common_name))


@dataclass(frozen=True)
class IndexLayerSpec:
    """A spectral index a product delivers precomputed (MODIS NDVI and EVI).

    The extraction uses such a layer as the index itself instead of computing it
    from bands; its values are ``DN * scale + offset`` (index units).

    Attributes
    ----------
    name
        Index name as in the catalogue, upper-case (``NDVI``).
    aliases
        The product's names of the layer (``250m_16_days_NDVI``).
    index
        1-based raster band in a multi-band file, or None.
    scale, offset
        index value = DN * scale + offset.
    nodata
        DN marking missing pixels (MODIS VI fill -3000), or None.
    """

    name: str
    aliases: tuple[str, ...] = ()
    index: int | None = None
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None

    @property
    def key(self) -> str:
        """Asset key of the layer in an :class:`~regenmap.geo.catalog.Acquisition` (``ndvi``)."""
        return self.name.lower()

    def names(self) -> tuple[str, ...]:
        """All names that identify this layer, upper-cased."""
        return tuple(n.upper() for n in (self.name, *self.aliases))


@dataclass(frozen=True)
class OffsetRule:
    """An offset that applies from a date (or processing baseline) on.

    Sentinel-2 L2A products from processing baseline 04.00 (25 January 2022)
    store reflectance with an added offset of 1000 DN, i.e. offset -0.1.
    """

    since: datetime
    offset: float
    baseline: str | None = None


@dataclass(frozen=True)
class SensorProfile:
    """Everything regenmap needs to read one sensor's files.

    Attributes
    ----------
    name
        Profile name, written to the ``sensor`` column (``sentinel2_l2a``).
    bands
        Spectral bands.
    scale, offset
        reflectance = DN * scale + offset (before any :class:`OffsetRule`), unless a
        band sets its own.
    nodata
        DN marking missing pixels (0 for S2 and Landsat), or None (the file's own nodata).
    mask
        Quality band decoding, or None if the sensor has none.
    layout
        ``band_files``: one file per band per date; ``multiband``: one file per date
        (bands by ``index`` or by raster band description); ``time_stack``: one file per
        band or index with one raster band per date (no date in the file name).
    filename_pattern
        Regular expression with named groups ``date`` (required by ``band_files`` and
        ``multiband``), ``band`` (required by ``band_files``; for ``time_stack`` it
        names the file's band when it matches), ``tile`` and ``baseline`` (optional);
        None for a ``time_stack`` profile that names bands by file name tokens.
    date_format
        :func:`datetime.strptime` format of the ``date`` group (``%Y%j`` for day of year).
    offset_rules
        Later offsets replacing ``offset`` from a date on.
    index_layers
        Spectral indices the product holds precomputed.
    mask_alternatives
        Other quality bands the product may come with instead of ``mask`` (Earth Engine
        Sentinel-2: SCL or QA60); an acquisition uses the first one present, ``mask`` first.
    """

    name: str
    bands: tuple[BandSpec, ...]
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    mask: MaskSpec | None = None
    layout: Layout = "band_files"
    filename_pattern: str | None = r"(?P<date>\d{8})"
    date_format: str = "%Y%m%d"
    offset_rules: tuple[OffsetRule, ...] = ()
    index_layers: tuple[IndexLayerSpec, ...] = ()
    mask_alternatives: tuple[MaskSpec, ...] = ()

    @property
    def common_names(self) -> tuple[str, ...]:
        """Common names of all spectral bands."""
        return tuple(b.common_name for b in self.bands)

    @property
    def masks(self) -> tuple[MaskSpec, ...]:
        """Every quality band the profile can use, in order of preference."""
        return ((self.mask,) if self.mask is not None else ()) + self.mask_alternatives

    def band(self, common_name: str) -> BandSpec | None:
        """Return the band with this common name, or None if the sensor lacks it."""
        return next((b for b in self.bands if b.common_name == common_name), None)

    def index_layer(self, key: str) -> IndexLayerSpec | None:
        """Return the precomputed index layer with this asset key (``ndvi``), or None."""
        return next((il for il in self.index_layers if il.key == key.lower()), None)

    def match_band(self, name: str) -> str | None:
        """Return what a name identifies, or None.

        Returns
        -------
        str or None
            ``"__mask__"`` for a quality band (:data:`MASK_KEY`), the common name of a
            spectral band, or the asset key of a precomputed index layer (``ndvi``).
        """
        key = name.upper()
        if self.match_mask(name) is not None:
            return MASK_KEY
        for b in self.bands:
            if key in b.names():
                return b.common_name
        for il in self.index_layers:
            if key in il.names():
                return il.key
        return None

    def match_mask(self, name: str) -> MaskSpec | None:
        """Return the quality band decoding a name identifies, or None."""
        key = name.upper()
        return next((m for m in self.masks if key in m.names()), None)

    def offset_at(self, when: datetime, baseline: str | None = None) -> float:
        """Return the offset for an acquisition time (and processing baseline if known)."""
        offset = self.offset
        for rule in sorted(self.offset_rules, key=lambda r: r.since):
            if baseline is not None and rule.baseline is not None:
                if _baseline_key(baseline) >= _baseline_key(rule.baseline):
                    offset = rule.offset
            elif when >= rule.since:
                offset = rule.offset
        return offset

    def scaling(self, key: str, when: datetime, baseline: str | None = None
                ) -> tuple[float, float, float | None]:
        """Scale, offset and nodata DN of one layer of an integer file.

        Parameters
        ----------
        key
            Common name of a band, or asset key of an index layer (as :meth:`match_band`).
        when, baseline
            Acquisition time and processing baseline, for :attr:`offset_rules`.

        Returns
        -------
        scale, offset, nodata
            physical value = DN * scale + offset; ``nodata`` None means the file's own. A
            key that is neither a band nor an index layer of the profile (an index layer
            found by name only) gets ``(1, 0, None)``: its values are used as they are.
        """
        layer = self.index_layer(key)
        if layer is not None:
            return layer.scale, layer.offset, layer.nodata
        b = self.band(key)
        if b is None:  # an index the profile does not declare: its values are used as they are
            return 1.0, 0.0, None
        scale = self.scale if b.scale is None else b.scale
        offset = self.offset_at(when, baseline) if b.offset is None else b.offset
        nodata = self.nodata if b.nodata is None else b.nodata
        return scale, offset, nodata

    def parse_filename(self, name: str) -> dict[str, str] | None:
        """Match a file name against the pattern; return its named groups or None."""
        if self.filename_pattern is None:
            return None
        m = re.search(self.filename_pattern, name, flags=re.IGNORECASE)
        return None if m is None else {k: v for k, v in m.groupdict().items() if v is not None}

    def parse_date(self, text: str) -> datetime:
        """Parse the ``date`` group of a file name with :attr:`date_format`."""
        return datetime.strptime(text, self.date_format)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, source: str = "<profile>") -> SensorProfile:
        """Validate a profile given as plain data (as parsed from YAML).

        Raises
        ------
        ConfigError
            Naming the key and the file when a value is missing or wrong.
        """
        known = {"name", "description", "bands", "scale", "offset", "nodata", "mask", "layout",
                 "filename_pattern", "date_format", "offset_rules", "platform", "index_layers"}
        unknown = sorted(set(data) - known)
        if unknown:
            close = {k: difflib.get_close_matches(k, known, n=1) for k in unknown}
            hints = ", ".join(f"{k!r}" + (f" (did you mean {c[0]!r}?)" if c else "")
                              for k, c in close.items())
            raise ConfigError(f"{source}: unknown sensor profile key(s) {hints}; "
                              f"valid keys: {', '.join(sorted(known))}")
        try:
            name = str(data["name"])
            raw_bands = data["bands"]
        except KeyError as err:
            raise ConfigError(f"{source}: sensor profile needs key {err.args[0]!r}") from None
        if not isinstance(raw_bands, dict) or not raw_bands:
            raise ConfigError(f"{source}: 'bands' must map native band names to "
                              "{common_name: ...} entries")
        bands = tuple(_band(native, spec, source) for native, spec in raw_bands.items())
        dup = {b.common_name for b in bands if sum(c.common_name == b.common_name for c in bands) > 1}
        if dup:
            raise ConfigError(f"{source}: common name(s) {sorted(dup)} used by more than one band")
        layout = data.get("layout", "band_files")
        if layout not in LAYOUTS:
            raise ConfigError(f"{source}: layout must be one of {', '.join(LAYOUTS)}, "
                              f"got {layout!r}")
        pattern = _pattern(data, layout, source)
        rules = tuple(_offset_rule(r, source) for r in data.get("offset_rules") or [])
        raw_mask = data.get("mask")
        masks = [parse_mask(m, source) for m in
                 (raw_mask if isinstance(raw_mask, list) else [] if raw_mask is None else [raw_mask])]
        layers = _index_layers(data.get("index_layers"), source)
        return cls(name=name, bands=bands, scale=_num(data, "scale", 1.0, source),
                   offset=_num(data, "offset", 0.0, source),
                   nodata=None if data.get("nodata") is None else _num(data, "nodata", 0, source),
                   mask=masks[0] if masks else None, layout=layout,
                   filename_pattern=pattern, date_format=str(data.get("date_format", "%Y%m%d")),
                   offset_rules=rules, index_layers=layers, mask_alternatives=tuple(masks[1:]))


def _pattern(data: dict[str, Any], layout: str, source: str) -> str | None:
    """Return the validated ``filename_pattern`` (the groups its layout needs) or raise."""
    raw = data.get("filename_pattern")
    if raw is None:
        return None if layout == "time_stack" else r"(?P<date>\d{8})"
    pattern = str(raw)
    try:
        groups = set(re.compile(pattern).groupindex)
    except re.error as err:
        raise ConfigError(f"{source}: filename_pattern is not a valid regular expression: "
                          f"{err}") from None
    needed = {"band_files": {"date", "band"}, "multiband": {"date"}, "time_stack": set()}[layout]
    if not needed <= groups:
        missing = sorted(needed - groups)
        hint = (" A file holding one raster band per date needs no date in its name: "
                "use layout: time_stack." if "date" in missing else "")
        raise ConfigError(f"{source}: filename_pattern needs the named group(s) {missing} for "
                          f"layout {layout!r} (the date and band of each file come from its "
                          f"name), e.g. (?P<date>\\d{{8}}) and (?P<band>B\\d\\d).{hint}")
    return pattern


def _num(data: dict[str, Any], key: str, default: float, source: str) -> float:
    value = data.get(key, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key} must be a number, got {value!r}") from None


def _band(native: str, spec: Any, source: str) -> BandSpec:
    if isinstance(spec, str):
        spec = {"common_name": spec}
    if not isinstance(spec, dict) or "common_name" not in spec:
        raise ConfigError(f"{source}: band {native!r} needs a 'common_name' (one of "
                          f"{', '.join(COMMON_NAMES)})")
    common = str(spec["common_name"])
    if common not in COMMON_NAMES:
        close = difflib.get_close_matches(common, COMMON_NAMES, n=3)
        raise ConfigError(f"{source}: band {native!r} has unknown common_name {common!r}"
                          + (f"; did you mean {', '.join(close)}?" if close else ""))
    unknown = sorted(set(spec) - _BAND_KEYS)
    if unknown:
        raise ConfigError(f"{source}: band {native!r} has unknown key(s) {unknown}; valid keys: "
                          f"{', '.join(sorted(_BAND_KEYS))}")
    res = spec.get("resolution_m")
    idx = spec.get("index")
    return BandSpec(common_name=common, native=str(native),
                    aliases=tuple(str(a) for a in spec.get("aliases", [])),
                    index=None if idx is None else int(idx),
                    resolution_m=None if res is None else float(res),
                    scale=_opt_num(spec, "scale", f"{source}: band {native!r}"),
                    offset=_opt_num(spec, "offset", f"{source}: band {native!r}"),
                    nodata=_opt_num(spec, "nodata", f"{source}: band {native!r}"))


_BAND_KEYS = {"common_name", "aliases", "index", "resolution_m", "scale", "offset", "nodata"}
_LAYER_KEYS = {"aliases", "index", "scale", "offset", "nodata"}


def _opt_num(spec: dict[str, Any], key: str, where: str) -> float | None:
    return None if spec.get(key) is None else _num(spec, key, 0.0, where)


def _index_layers(spec: Any, source: str) -> tuple[IndexLayerSpec, ...]:
    if spec is None:
        return ()
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: index_layers must map index names (NDVI) to "
                          "{aliases, scale, offset, nodata, index} entries")
    out = []
    for name, entry in spec.items():
        entry = entry or {}
        where = f"{source}: index layer {name!r}"
        if not isinstance(entry, dict) or sorted(set(entry) - _LAYER_KEYS):
            raise ConfigError(f"{where} must be a mapping with keys among "
                              f"{', '.join(sorted(_LAYER_KEYS))}, got {entry!r}")
        idx = entry.get("index")
        out.append(IndexLayerSpec(name=str(name).upper(),
                                  aliases=tuple(str(a) for a in entry.get("aliases", [])),
                                  index=None if idx is None else int(idx),
                                  scale=_num(entry, "scale", 1.0, where),
                                  offset=_num(entry, "offset", 0.0, where),
                                  nodata=_opt_num(entry, "nodata", where)))
    return tuple(out)


def _offset_rule(spec: Any, source: str) -> OffsetRule:
    try:
        since = spec["since"]
        since = since if isinstance(since, datetime) else datetime.fromisoformat(str(since))
        return OffsetRule(since=since, offset=float(spec["offset"]),
                          baseline=None if spec.get("baseline") is None else str(spec["baseline"]))
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{source}: each offset_rules entry needs 'since' (ISO date) and "
                          f"'offset' (number), got {spec!r}") from None


def _baseline_key(text: str) -> tuple[int, ...]:
    digits = re.findall(r"\d+", text)
    if len(digits) == 1 and len(digits[0]) == 4:  # "N0400" -> (4, 0)
        return int(digits[0][:2]), int(digits[0][2:])
    return tuple(int(d) for d in digits)
