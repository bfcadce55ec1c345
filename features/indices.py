"""Spectral indices by name, from the Awesome Spectral Indices catalogue (spyndex).

An index is a formula over STAC common band names (``nir``, ``red``,
``swir16``...). Names are looked up case-insensitively in ``spyndex.indices``;
regenmap adds the tillage and bare-soil indices its models need and gives them
precedence:

* ``NDTI`` = (swir16 - swir22) / (swir16 + swir22), the Normalized Difference
  *Tillage* Index (Van Deventer et al. 1997). spyndex's ``NDTI`` is the
  Normalized Difference *Turbidity* Index (red, green), a water index; regenmap's
  meaning wins because crop residue is what this project measures.
* ``STI`` = swir16 / swir22, Simple Tillage Index.
* ``BSI`` = ((swir16 + red) - (nir + blue)) / ((swir16 + red) + (nir + blue)), Bare Soil Index.

Constants of a formula (EVI's ``g``, ``C1``, ``C2``, ``L``...) take spyndex's defaults.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass

import numpy as np

from regenmap.errors import ConfigError


@dataclass(frozen=True)
class SpectralIndex:
    """One spectral index.

    Attributes
    ----------
    name
        Catalogue name, upper-case as in spyndex (``NDVI``).
    formula
        Python expression over :attr:`bands` (common names) and constants.
    bands
        STAC common names the formula needs, in formula order.
    constants
        Constant name -> value substituted into the formula.
    long_name
        Human-readable name.
    source
        ``regenmap`` or ``spyndex``.
    """

    name: str
    formula: str
    bands: tuple[str, ...]
    constants: tuple[tuple[str, float], ...] = ()
    long_name: str = ""
    source: str = "spyndex"

    def evaluate(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """Evaluate with NumPy on reflectance arrays keyed by common name (reference path).

        Returns float32 with NaN where the formula is undefined.
        """
        env: dict[str, object] = {k: np.asarray(values[k], dtype=np.float64) for k in self.bands}
        env.update(dict(self.constants))
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.asarray(eval(self.formula, {"__builtins__": {}}, env), dtype=np.float64)
        out[~np.isfinite(out)] = np.nan
        return out.astype(np.float32)


_OWN: dict[str, SpectralIndex] = {
    "NDTI": SpectralIndex("NDTI", "(swir16 - swir22) / (swir16 + swir22)", ("swir16", "swir22"),
                          long_name="Normalized Difference Tillage Index", source="regenmap"),
    "STI": SpectralIndex("STI", "swir16 / swir22", ("swir16", "swir22"),
                         long_name="Simple Tillage Index", source="regenmap"),
    "BSI": SpectralIndex("BSI", "((swir16 + red) - (nir + blue)) / ((swir16 + red) + (nir + blue))",
                         ("swir16", "red", "nir", "blue"), long_name="Bare Soil Index",
                         source="regenmap"),
}


@functools.cache
def _catalogue() -> dict[str, object]:
    import spyndex  # slow import (~0.5 s): only when an index is resolved

    return {str(k).upper(): v for k, v in spyndex.indices.items()}


@functools.cache
def _spyndex_bands() -> dict[str, str | None]:
    import spyndex

    return {k: getattr(v, "common_name", None) for k, v in spyndex.bands.items()}


@functools.cache
def _spyndex_constants() -> dict[str, float | None]:
    import spyndex

    return {k: getattr(v, "default", None) for k, v in spyndex.constants.items()}


def available_indices() -> list[str]:
    """Names of every index that can be requested (regenmap's and spyndex's)."""
    return sorted(set(_catalogue()) | set(_OWN))


@functools.cache
def get_index(name: str) -> SpectralIndex:
    """Return the index called ``name`` (case-insensitive).

    Raises
    ------
    ConfigError
        For an unknown name (listing the closest names), or an index that needs
        inputs other than reflectance bands (radar, kernel parameters).
    """
    key = name.strip().upper()
    if key in _OWN:
        return _OWN[key]
    cat = _catalogue()
    if key not in cat:
        close = difflib.get_close_matches(key, available_indices(), n=5, cutoff=0.5)
        hint = f" Closest names: {', '.join(close)}." if close else ""
        raise ConfigError(f"unknown spectral index {name!r}.{hint} "
                          "See https://github.com/awesome-spectral-indices for the catalogue.")
    entry = cat[key]
    formula = str(getattr(entry, "formula"))  # noqa: B009
    symbols = [str(s) for s in getattr(entry, "bands")]  # noqa: B009
    band_map = _spyndex_bands()
    consts = _spyndex_constants()
    bands: list[str] = []
    constants: list[tuple[str, float]] = []
    for sym in symbols:
        common = band_map.get(sym)
        if common:
            bands.append(common)
            formula = re.sub(rf"\b{re.escape(sym)}\b", common, formula)
        elif consts.get(sym) is not None:
            constants.append((sym, float(consts[sym])))  # type: ignore[arg-type]
        else:
            raise ConfigError(f"index {key} needs {sym!r}, which is neither a "
                              "reflectance band nor a constant with a default; it is not supported")
    return SpectralIndex(key, formula, tuple(bands), tuple(constants),
                         long_name=str(getattr(entry, "long_name", "")), source="spyndex")


def resolve_indices(names: list[str] | tuple[str, ...]) -> tuple[SpectralIndex, ...]:
    """Resolve several names at once (config time), keeping order and dropping repeats."""
    seen: dict[str, SpectralIndex] = {}
    for n in names:
        idx = get_index(n)
        seen.setdefault(idx.name, idx)
    return tuple(seen.values())
