"""Sensor profiles: how a sensor's files are named, scaled and cloud-masked.

A profile maps native band names (``B04``, ``SR_B4``) to STAC common names
(``red``), holds the scale and offset that turn digital numbers into surface
reflectance, and says how to decode the quality band (Sentinel-2 SCL classes,
Landsat QA_PIXEL bits). Profiles are written in YAML (``configs/sensors``);
only pipelines read YAML, and they hand the parsed mapping to
:meth:`SensorProfile.from_mapping`, which validates it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np

from regenmap.errors import ConfigError

#: STAC ``eo:bands`` common names a profile may map to.
COMMON_NAMES: tuple[str, ...] = (
    "coastal", "blue", "green", "red", "yellow", "pan", "rededge", "rededge1", "rededge2",
    "rededge3", "nir", "nir08", "nir09", "cirrus", "swir16", "swir22", "lwir", "lwir11", "lwir12",
)


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
        1-based raster band holding it in a multi-band file (``layout: multiband``).
    resolution_m
        Native pixel size in metres (informative; the files' own grids are used).
    """

    common_name: str
    native: str
    aliases: tuple[str, ...] = ()
    index: int | None = None
    resolution_m: float | None = None

    def names(self) -> tuple[str, ...]:
        """All names that identify this band (native, aliases, common), upper-cased."""
        return tuple(n.upper() for n in (self.native, *self.aliases, self.common_name))


@dataclass(frozen=True)
class MaskSpec:
    """How the quality band says which pixels to discard.

    Attributes
    ----------
    band
        Native name of the quality band (``SCL``, ``QA_PIXEL``).
    kind
        ``classes``: the band holds class codes, ``invalid`` lists codes to drop;
        ``bits``: the band holds bit flags, ``invalid`` lists bit positions that
        drop a pixel when set.
    invalid
        Label -> class code or bit position, e.g. ``{"cloud_high": 9}``.
    aliases
        Other names of the quality band in files.
    index
        1-based raster band holding it in a multi-band file.
    """

    band: str
    kind: Literal["classes", "bits"]
    invalid: dict[str, int] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    index: int | None = None

    def names(self) -> tuple[str, ...]:
        """Names that identify the quality band, upper-cased."""
        return tuple(n.upper() for n in (self.band, *self.aliases))

    def valid_lookup(self) -> np.ndarray:
        """Return a (65536,) bool table: ``table[code]`` is True where a code is usable.

        For ``bits`` the table tests every 16-bit value against the invalid bits.
        """
        codes = np.arange(65536, dtype=np.int64)
        if self.kind == "classes":
            table = np.ones(65536, dtype=bool)
            table[list(self.invalid.values())] = False
            return table
        bits = 0
        for pos in self.invalid.values():
            bits |= 1 << pos
        return np.asarray((codes & bits) == 0)


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
        reflectance = DN * scale + offset (before any :class:`OffsetRule`).
    nodata
        DN marking missing pixels (0 for S2 and Landsat), or None.
    mask
        Quality band decoding, or None if the sensor has none.
    layout
        ``band_files``: one file per band per date; ``multiband``: one file per date.
    filename_pattern
        Regular expression with named groups ``date`` (required), ``band``
        (required for ``band_files``), ``tile`` and ``baseline`` (optional).
    date_format
        :func:`datetime.strptime` format of the ``date`` group.
    offset_rules
        Later offsets replacing ``offset`` from a date on.
    """

    name: str
    bands: tuple[BandSpec, ...]
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    mask: MaskSpec | None = None
    layout: Literal["band_files", "multiband"] = "band_files"
    filename_pattern: str = r"(?P<date>\d{8})"
    date_format: str = "%Y%m%d"
    offset_rules: tuple[OffsetRule, ...] = ()

    @property
    def common_names(self) -> tuple[str, ...]:
        """Common names of all spectral bands."""
        return tuple(b.common_name for b in self.bands)

    def band(self, common_name: str) -> BandSpec | None:
        """Return the band with this common name, or None if the sensor lacks it."""
        return next((b for b in self.bands if b.common_name == common_name), None)

    def match_band(self, name: str) -> str | None:
        """Return the common name of a band or ``"__mask__"`` for the quality band, by any name."""
        key = name.upper()
        if self.mask is not None and key in self.mask.names():
            return "__mask__"
        for b in self.bands:
            if key in b.names():
                return b.common_name
        return None

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

    def parse_filename(self, name: str) -> dict[str, str] | None:
        """Match a file name against the pattern; return its named groups or None."""
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
                 "filename_pattern", "date_format", "offset_rules", "platform"}
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
        if layout not in ("band_files", "multiband"):
            raise ConfigError(f"{source}: layout must be 'band_files' or 'multiband', got {layout!r}")
        pattern = str(data.get("filename_pattern", r"(?P<date>\d{8})"))
        try:
            groups = re.compile(pattern).groupindex
        except re.error as err:
            raise ConfigError(f"{source}: filename_pattern is not a valid regular expression: "
                              f"{err}") from None
        needed = {"date"} | ({"band"} if layout == "band_files" else set())
        if not needed <= set(groups):
            raise ConfigError(f"{source}: filename_pattern needs the named group(s) "
                              f"{sorted(needed - set(groups))}, e.g. (?P<date>\\d{{8}})")
        if layout == "multiband" and any(b.index is None for b in bands):
            raise ConfigError(f"{source}: layout 'multiband' needs 'index' (1-based) for every band")
        rules = tuple(_offset_rule(r, source) for r in data.get("offset_rules") or [])
        return cls(name=name, bands=bands, scale=_num(data, "scale", 1.0, source),
                   offset=_num(data, "offset", 0.0, source),
                   nodata=None if data.get("nodata") is None else _num(data, "nodata", 0, source),
                   mask=_mask(data.get("mask"), source), layout=layout,
                   filename_pattern=pattern, date_format=str(data.get("date_format", "%Y%m%d")),
                   offset_rules=rules)


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
    res = spec.get("resolution_m")
    idx = spec.get("index")
    return BandSpec(common_name=common, native=str(native),
                    aliases=tuple(str(a) for a in spec.get("aliases", [])),
                    index=None if idx is None else int(idx),
                    resolution_m=None if res is None else float(res))


def _mask(spec: Any, source: str) -> MaskSpec | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or "band" not in spec or spec.get("kind") not in ("classes", "bits"):
        raise ConfigError(f"{source}: mask needs 'band' and 'kind' ('classes' or 'bits')")
    invalid = spec.get("invalid") or {}
    if not isinstance(invalid, dict) or not all(isinstance(v, int) for v in invalid.values()):
        raise ConfigError(f"{source}: mask.invalid must map labels to integer class codes or bits")
    limit = 65535 if spec["kind"] == "classes" else 15
    bad = {k: v for k, v in invalid.items() if not 0 <= v <= limit}
    if bad:
        raise ConfigError(f"{source}: mask.invalid values out of range 0..{limit}: {bad}")
    idx = spec.get("index")
    return MaskSpec(band=str(spec["band"]), kind=spec["kind"], invalid=dict(invalid),
                    aliases=tuple(str(a) for a in spec.get("aliases", [])),
                    index=None if idx is None else int(idx))


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
