"""Which pixels of a tile strip extraction needs: inside a field and not masked.

A band file is decoded block by block; a block with no field pixel, or whose
field pixels the quality mask all drops (cloud, shadow, nodata), changes no
statistic, so :class:`~regenmap.geo.raster_read.BandReader` can leave it
undecoded. This module answers the question "does this rectangle of the strip
hold a needed pixel?" cheaply and conservatively (it may say yes for a
rectangle that needs nothing, never no for one that needs something):

* field coverage comes from the tile's run index, reduced once per tile to
  cells of :data:`CELL` x :data:`CELL` pixels (prefix sums, so any rectangle is
  four lookups);
* mask validity comes from the strip's decoded quality band, at its own
  resolution, through the same nearest-rule index maps the kernel uses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from regenmap.geo.rasterize import FieldIndex

#: Edge of a coverage cell, in window pixels (320 m on a 10 m grid).
CELL = 32


@dataclass(frozen=True)
class Coverage:
    """Where a tile window has field pixels, on cells of ``cell`` x ``cell`` pixels.

    Attributes
    ----------
    sat
        (ceil(height / cell) + 1, ceil(width / cell) + 1) int32 prefix sums (summed-area
        table) of the cells holding at least one field pixel.
    cell
        Cell edge in window pixels.
    """

    sat: np.ndarray
    cell: int

    @classmethod
    def of_index(cls, index: FieldIndex, cell: int = CELL) -> Coverage:
        """Coverage of the fields of a run index (every run marks the cells it crosses)."""
        height, width = index.grid.height, index.grid.width
        ny, nx = -(-height // cell), -(-width // cell)
        plan = index.scan_plan
        row = plan.run_row.astype(np.int64) // cell
        first = plan.run_c0.astype(np.int64) // cell
        after = (plan.run_c1.astype(np.int64) - 1) // cell + 1
        # +1 where a run's cells start, -1 after they end; a running sum along each
        # cell row is then positive on covered cells
        size = ny * (nx + 1)
        diff = (np.bincount(row * (nx + 1) + first, minlength=size)
                - np.bincount(row * (nx + 1) + after, minlength=size))
        covered = np.cumsum(diff.reshape(ny, nx + 1)[:, :nx], axis=1) > 0
        sat = np.zeros((ny + 1, nx + 1), np.int32)
        np.cumsum(np.cumsum(covered, axis=0, dtype=np.int32), axis=1, out=sat[1:, 1:])
        return cls(sat, cell)

    def any(self, r0: int, r1: int, c0: int, c1: int) -> bool:
        """Whether window pixels ``[r0, r1) x [c0, c1)`` may hold a field pixel."""
        if r1 <= r0 or c1 <= c0:
            return False
        cell = self.cell
        a, b = r0 // cell, (r1 - 1) // cell + 1
        c, d = c0 // cell, (c1 - 1) // cell + 1
        s = self.sat
        return bool(s[b, d] - s[a, d] - s[b, c] + s[a, c] > 0)


@dataclass(frozen=True)
class PixelNeed:
    """Which pixels of one strip extraction needs.

    Attributes
    ----------
    coverage
        Field coverage of the tile window, or None (every pixel is in a field).
    row0
        Window row of the strip's first row.
    valid
        Quality-mask verdict at the mask's own resolution (True: usable), or None
        (no mask: every pixel is usable).
    mask_rows, mask_cols
        int64 (strip height,) and (strip width,) maps from strip pixel to ``valid``.
    """

    coverage: Coverage | None
    row0: int = 0
    valid: np.ndarray | None = None
    mask_rows: np.ndarray | None = None
    mask_cols: np.ndarray | None = None

    def with_mask(self, codes: np.ndarray, keep: np.ndarray, rows: np.ndarray,
                  cols: np.ndarray) -> PixelNeed:
        """Narrow this need to the pixels a quality band keeps.

        Parameters
        ----------
        codes
            2-D integer mask codes of the strip at their own resolution.
        keep
            (n,) bool lookup ``keep[code]``; codes outside ``0..n-1`` are dropped.
        rows, cols
            Maps from strip pixel to ``codes``.
        """
        return replace(self, valid=kept(codes, keep), mask_rows=rows, mask_cols=cols)

    def any(self, r0: int, r1: int, c0: int, c1: int) -> bool:
        """Whether strip pixels ``[r0, r1) x [c0, c1)`` may hold a needed pixel."""
        if r1 <= r0 or c1 <= c0:
            return False
        if self.coverage is not None and not self.coverage.any(self.row0 + r0, self.row0 + r1,
                                                               c0, c1):
            return False
        if self.valid is None or self.mask_rows is None or self.mask_cols is None:
            return True
        mr = self.mask_rows[r0:r1]
        mc = self.mask_cols[c0:c1]
        # the maps are monotone except for a padding index past the data: min..max
        # covers every mask pixel under the rectangle (and perhaps a few more)
        return bool(self.valid[mr.min():mr.max() + 1, mc.min():mc.max() + 1].any())


def kept(codes: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Look up ``keep[code]`` for every code; codes outside the table are not kept.

    Returns
    -------
    numpy.ndarray
        bool array of ``codes``' shape.
    """
    keep = np.asarray(keep, dtype=bool)
    if codes.dtype in (np.uint8, np.uint16):
        # one lookup through a table spanning every code of the dtype
        table = np.zeros(np.iinfo(codes.dtype).max + 1, dtype=bool)
        n = min(len(keep), len(table))
        table[:n] = keep[:n]
        return table[codes]
    inside = (codes >= 0) & (codes < len(keep))
    out = np.zeros(codes.shape, dtype=bool)
    out[inside] = keep[codes[inside].astype(np.int64)]
    return out
