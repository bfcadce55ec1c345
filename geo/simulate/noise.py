"""Smooth, seeded, chunkable random fields (value noise on B-spline lattices).

A field is a sum of octaves; each octave is a lattice of standard normal values
interpolated with the cubic B-spline kernel. Evaluating it on any window of a
regular grid gives exactly the values of the same pixels evaluated over the whole
grid, so scenes can be rendered in row chunks with bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray


def _bspline_weights(u: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return the 4 cubic B-spline weights for fractional offsets ``u`` in [0, 1), shape (n, 4)."""
    u2 = u * u
    u3 = u2 * u
    w0 = (1.0 - u) ** 3 / 6.0
    w1 = (3.0 * u3 - 6.0 * u2 + 4.0) / 6.0
    w2 = (-3.0 * u3 + 3.0 * u2 + 3.0 * u + 1.0) / 6.0
    w3 = u3 / 6.0
    return np.stack([w0, w1, w2, w3], axis=1)


def _interp_matrix(coords: NDArray[np.float64], n_lattice: int) -> sp.csr_matrix:
    """Sparse (len(coords), n_lattice) matrix of normalised B-spline weights.

    Rows are scaled so that interpolating white noise of unit variance gives unit
    variance at every output coordinate (no lattice-periodic variance ripple).
    """
    base = np.floor(coords).astype(np.int64)
    w = _bspline_weights(coords - base)
    w /= np.sqrt((w * w).sum(axis=1, keepdims=True))
    cols = np.clip(base[:, None] + np.arange(-1, 3)[None, :], 0, n_lattice - 1)
    rows = np.repeat(np.arange(coords.size), 4)
    return sp.csr_matrix((w.ravel(), (rows, cols.ravel())), shape=(coords.size, n_lattice))


@dataclass(frozen=True)
class SmoothNoise:
    """A seeded smooth random field over a rectangle, unit variance, zero mean.

    Attributes
    ----------
    x0, y0
        Map coordinates (metres) of the lattice origin (upper-left, y grows downward
        in lattice rows).
    spacings
        Lattice spacing of each octave (metres).
    amplitudes
        Weight of each octave (normalised so the sum of squares is 1).
    lattices
        One float64 array (rows, cols) of N(0, 1) values per octave.
    """

    x0: float
    y0: float
    spacings: tuple[float, ...]
    amplitudes: tuple[float, ...]
    lattices: tuple[NDArray[np.float64], ...]

    @classmethod
    def create(cls, rng: np.random.Generator, *, x0: float, y0: float, width_m: float,
               height_m: float, scale_m: float, octaves: int = 3, persistence: float = 0.5,
               margin_m: float = 0.0) -> SmoothNoise:
        """Draw lattices covering ``[x0 - margin, x0 + width + margin]`` and the same in y.

        Parameters
        ----------
        rng
            Source of the lattice values.
        x0, y0
            Upper-left corner of the area (metres); y decreases downward.
        width_m, height_m
            Size of the area (metres).
        scale_m
            Lattice spacing of the coarsest octave (metres); octave k uses ``scale / 2**k``.
        octaves
            Number of octaves.
        persistence
            Amplitude ratio between successive octaves.
        margin_m
            Extra cover around the area, for evaluation at shifted positions.
        """
        spacings, amps, lats = [], [], []
        for k in range(octaves):
            s = scale_m / 2**k
            ny = int(np.ceil((height_m + 2 * margin_m) / s)) + 4
            nx = int(np.ceil((width_m + 2 * margin_m) / s)) + 4
            spacings.append(s)
            amps.append(persistence**k)
            lats.append(rng.standard_normal((ny, nx)))
        norm = float(np.sqrt(np.sum(np.square(amps))))
        return cls(x0=x0 - margin_m - 2 * scale_m, y0=y0 + margin_m + 2 * scale_m,
                   spacings=tuple(spacings), amplitudes=tuple(a / norm for a in amps),
                   lattices=tuple(lats))

    def on_grid(self, xs: NDArray[np.float64], ys: NDArray[np.float64]) -> NDArray[np.float32]:
        """Evaluate the field at the grid ``ys x xs`` of map coordinates.

        Parameters
        ----------
        xs
            Easting of the columns (metres), shape (ncols,).
        ys
            Northing of the rows (metres), shape (nrows,).

        Returns
        -------
        numpy.ndarray
            float32 (nrows, ncols), about N(0, 1) per pixel.
        """
        out = np.zeros((ys.size, xs.size), dtype=np.float64)
        for s, a, lat in zip(self.spacings, self.amplitudes, self.lattices, strict=True):
            wy = _interp_matrix((self.y0 - ys) / s, lat.shape[0])
            wx = _interp_matrix((xs - self.x0) / s, lat.shape[1])
            out += a * (wx @ (wy @ lat).T).T
        return out.astype(np.float32)


def warp_coords(coords: NDArray[np.float64], rng: np.random.Generator, *, amplitude_m: float,
                wavelength_m: tuple[float, float], n_waves: int = 6) -> NDArray[np.float64]:
    """Displace points by a smooth random vector field (sum of plane waves).

    Used to bend straight Voronoi edges and roads into gently curving boundaries.
    The maximum gradient is ``2 * pi * amplitude / min(wavelength)`` per wave; keep it
    well below 1 so shared boundaries stay shared and polygons stay valid.

    Parameters
    ----------
    coords
        (n, 2) map coordinates in metres.
    rng
        Source of wave directions, phases and wavelengths.
    amplitude_m
        Amplitude of each wave (metres).
    wavelength_m
        Range of wavelengths (metres).
    n_waves
        Number of waves per coordinate axis.

    Returns
    -------
    numpy.ndarray
        (n, 2) displaced coordinates.
    """
    out = coords.copy()
    for axis in range(2):
        theta = rng.uniform(0, 2 * np.pi, n_waves)
        lam = rng.uniform(*wavelength_m, n_waves)
        phase = rng.uniform(0, 2 * np.pi, n_waves)
        k = np.stack([np.cos(theta), np.sin(theta)], axis=1) * (2 * np.pi / lam)[:, None]
        out[:, axis] += amplitude_m / np.sqrt(n_waves) * np.sin(coords @ k.T + phase).sum(axis=1)
    return out
