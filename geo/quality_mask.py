"""Quality bands: which codes of a scene's quality raster drop a pixel.

A quality band holds either class codes (Sentinel-2 SCL, MODIS pixel
reliability) or bit flags (Landsat QA_PIXEL, HLS Fmask, MODIS state QA). A
:class:`MaskSpec` turns either into one lookup table over every 16-bit code,
which the extraction kernel and :func:`regenmap.geo.raster_read.usable_pixels`
index. Bit-flag masks drop a pixel when a listed bit is set, or when a field of
adjacent bits holds a listed value (:class:`BitField`: MODIS cloud state in
bits 0-1 is ``01`` cloudy or ``10`` mixed, while ``11`` means assumed clear).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from regenmap.errors import ConfigError

#: Highest bit position of a 16-bit quality band.
MAX_BIT = 15


@dataclass(frozen=True)
class BitField:
    """Adjacent bits of a quality band read as one small integer.

    Attributes
    ----------
    first, last
        Lowest and highest bit position (0-based, inclusive).
    values
        Values of the field that drop a pixel.
    """

    first: int
    last: int
    values: tuple[int, ...]

    def hits(self, codes: np.ndarray) -> np.ndarray:
        """Return where the field of ``codes`` (int64 array) holds one of :attr:`values` (bool)."""
        width = self.last - self.first + 1
        part = (codes >> self.first) & ((1 << width) - 1)
        return np.isin(part, self.values)


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
        drop a pixel when set, or :class:`BitField` values.
    invalid
        Label -> class code, bit position or bit field, e.g. ``{"cloud_high": 9}``.
    aliases
        Other names of the quality band in files.
    index
        1-based raster band holding it in a multi-band file.
    """

    band: str
    kind: Literal["classes", "bits"]
    invalid: dict[str, int | BitField] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    index: int | None = None

    def names(self) -> tuple[str, ...]:
        """Names that identify the quality band, upper-cased."""
        return tuple(n.upper() for n in (self.band, *self.aliases))

    def valid_lookup(self) -> np.ndarray:
        """Return a (65536,) bool table: ``table[code]`` is True where a code is usable.

        For ``bits`` the table tests every 16-bit value against the invalid bits and
        bit fields. Negative codes (fill of signed quality bands, e.g. MODIS pixel
        reliability -1) are outside the table and never usable.
        """
        codes = np.arange(65536, dtype=np.int64)
        if self.kind == "classes":
            table = np.ones(65536, dtype=bool)
            table[[int(v) for v in self.invalid.values() if isinstance(v, int)]] = False
            return table
        bits = 0
        keep = np.ones(65536, dtype=bool)
        for rule in self.invalid.values():
            if isinstance(rule, BitField):
                keep &= ~rule.hits(codes)
            else:
                bits |= 1 << rule
        return np.asarray(keep & ((codes & bits) == 0))


def parse_mask(spec: Any, source: str) -> MaskSpec:
    """Validate one ``mask`` entry of a sensor profile (as parsed from YAML).

    Raises
    ------
    ConfigError
        Naming the profile file and the wrong value.
    """
    if not isinstance(spec, dict) or "band" not in spec or spec.get("kind") not in ("classes",
                                                                                      "bits"):
        raise ConfigError(f"{source}: mask needs 'band' and 'kind' ('classes' or 'bits')")
    invalid = spec.get("invalid") or {}
    if not isinstance(invalid, dict):
        raise ConfigError(f"{source}: mask.invalid must map labels to integer class codes or bits")
    kind = spec["kind"]
    rules: dict[str, int | BitField] = {}
    for label, value in invalid.items():
        if isinstance(value, dict) and kind == "bits":
            rules[str(label)] = _bit_field(str(label), value, source)
        elif isinstance(value, int) and not isinstance(value, bool):
            limit = 65535 if kind == "classes" else MAX_BIT
            if not 0 <= value <= limit:
                raise ConfigError(f"{source}: mask.invalid values out of range 0..{limit}: "
                                  f"{ {label: value} }")
            rules[str(label)] = value
        else:
            hint = (" or {bits: [first, last], values: [...]}" if kind == "bits" else "")
            raise ConfigError(f"{source}: mask.invalid must map labels to integer class codes "
                              f"or bits{hint}; {label!r} is {value!r}")
    idx = spec.get("index")
    return MaskSpec(band=str(spec["band"]), kind=kind, invalid=rules,
                    aliases=tuple(str(a) for a in spec.get("aliases", [])),
                    index=None if idx is None else int(idx))


def _bit_field(label: str, spec: dict[str, Any], source: str) -> BitField:
    bits, values = spec.get("bits"), spec.get("values")
    ok = (isinstance(bits, list) and len(bits) == 2 and all(isinstance(b, int) for b in bits)
          and 0 <= bits[0] <= bits[1] <= MAX_BIT and isinstance(values, list) and values
          and all(isinstance(v, int) for v in values))
    if not ok:
        raise ConfigError(f"{source}: mask.invalid.{label} must be {{bits: [first, last], "
                          f"values: [v, ...]}} with 0 <= first <= last <= {MAX_BIT}, got {spec!r}")
    assert isinstance(bits, list) and isinstance(values, list)
    top = (1 << (bits[1] - bits[0] + 1)) - 1
    bad = [v for v in values if not 0 <= v <= top]
    if bad:
        raise ConfigError(f"{source}: mask.invalid.{label}: values {bad} do not fit in bits "
                          f"{bits[0]}-{bits[1]} (0..{top})")
    return BitField(first=bits[0], last=bits[1], values=tuple(values))
