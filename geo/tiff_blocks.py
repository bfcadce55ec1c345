"""Decode GeoTIFF blocks straight from the file, below GDAL's read path.

GDAL decodes a band window through libtiff and its block cache: each block is
inflated, un-predicted by libtiff, copied into the cache and copied again into
the caller's array. For the files extraction reads most (DEFLATE or
uncompressed, horizontal or no predictor, one sample per block) this module
does the same work in fewer steps: the block's bytes are read with one
``pread``, inflated by libdeflate (the ``deflate`` package), and the predictor
is undone while the pixels are written into the window (one compiled loop).
The values are the file's, bit for bit as GDAL returns them (tests compare the
two on every layout handled).

:func:`block_layout` says whether a file qualifies; anything else (LZW, which
GDAL decodes faster than any Python binding measured here, JPEG, ZSTD,
floating-point predictor, pixel-interleaved bands, big-endian files, sparse
blocks, files that are not local) is left to GDAL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import deflate
import numba
import numpy as np
from rasterio.windows import Window

#: Compression names (GDAL's ``COMPRESSION`` metadata) this module decodes.
COMPRESSIONS = ("DEFLATE", "NONE")
#: Sample types it decodes (horizontal predictor only for the integer ones).
_INT_TYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32")
_TYPES = (*_INT_TYPES, "float32", "float64")


class DecodeError(Exception):
    """A block that this module cannot decode (GDAL is asked instead)."""


@dataclass(frozen=True)
class BlockLayout:
    """Where the blocks of one band lie in a GeoTIFF file, and how they are coded.

    Attributes
    ----------
    path
        The file.
    dtype
        Sample type.
    height, width
        Band size in pixels.
    block
        Block shape (rows, columns); strips are blocks as wide as the band.
    offsets, sizes
        (block rows, block columns) int64 byte offset and length of each block.
    compression
        ``DEFLATE`` or ``NONE``.
    predictor
        1 (none) or 2 (horizontal differencing).
    """

    path: str
    dtype: np.dtype
    height: int
    width: int
    block: tuple[int, int]
    offsets: np.ndarray
    sizes: np.ndarray
    compression: str
    predictor: int

    def block_rows(self, by: int) -> int:
        """Rows of the band in block row ``by`` (fewer in the last one than a block holds)."""
        bh = self.block[0]
        return min(bh, self.height - by * bh)


def block_layout(ds: Any, band: int) -> BlockLayout | None:
    """Return the block layout of band ``band`` (1-based) of an open dataset, or None.

    None means this module does not decode the file (GDAL reads it): not a local
    GeoTIFF, a compression other than DEFLATE or none, a predictor other than 1 or 2
    (2 on integer samples only), several samples per pixel in one block, sub-byte
    samples, big-endian byte order, or a block missing from the file (sparse).
    """
    try:
        if ds.driver != "GTiff" or not 1 <= band <= ds.count or not Path(ds.name).is_file():
            return None
        tags = ds.tags(ns="IMAGE_STRUCTURE")
        compression = str(tags.get("COMPRESSION", "NONE")).upper()
        predictor = int(tags.get("PREDICTOR", "1"))
        dtype = np.dtype(ds.dtypes[band - 1])
        if (compression not in COMPRESSIONS or "NBITS" in tags
                or "NBITS" in ds.tags(band, ns="IMAGE_STRUCTURE")
                or dtype.name not in _TYPES or predictor not in (1, 2)
                or (predictor == 2 and dtype.name not in _INT_TYPES)
                or (ds.count > 1 and str(tags.get("INTERLEAVE", "")).upper() != "BAND")):
            return None
        with open(ds.name, "rb") as fh:
            if fh.read(2) != b"II" or not np.little_endian:
                return None
        bh, bw = (int(v) for v in ds.block_shapes[band - 1])
        ny, nx = -(-ds.height // bh), -(-ds.width // bw)
        offsets = np.empty((ny, nx), np.int64)
        sizes = np.empty((ny, nx), np.int64)
        for y in range(ny):
            for x in range(nx):
                off = ds.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=band)
                size = ds.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=band)
                if not off or not size:
                    return None  # sparse block: GDAL knows what to fill in
                offsets[y, x], sizes[y, x] = int(off), int(size)
    except (ValueError, TypeError, OSError):
        return None
    return BlockLayout(str(ds.name), dtype, int(ds.height), int(ds.width), (bh, bw), offsets,
                       sizes, compression, predictor)


class BlockDecoder:
    """Decode windows of one band from its file, block by block.

    Blocks that reach below a window are kept (inflated) until a later read starts
    below them, so a block shared by two consecutive strips is inflated once.

    Parameters
    ----------
    layout
        The band's :class:`BlockLayout`.
    """

    def __init__(self, layout: BlockLayout):
        self.layout = layout
        self._fd = os.open(layout.path, os.O_RDONLY)
        self._kept: dict[tuple[int, int], np.ndarray] = {}

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._kept.clear()

    def read(self, window: Window) -> np.ndarray:
        """Decode ``window`` (inside the band) into a new array of the band's type.

        Raises
        ------
        DecodeError
            A block that does not inflate to its size (damaged, or coded otherwise than
            the metadata says): the caller reads the window with GDAL instead.
        """
        lay = self.layout
        r0, c0 = int(window.row_off), int(window.col_off)
        h, w = int(window.height), int(window.width)
        if r0 < 0 or c0 < 0 or r0 + h > lay.height or c0 + w > lay.width:
            raise DecodeError(f"window {window} outside the band ({lay.height} x {lay.width})")
        out = np.empty((h, w), lay.dtype)
        if h == 0 or w == 0:
            return out
        bh, bw = lay.block
        by0, by1 = r0 // bh, (r0 + h - 1) // bh
        bx0, bx1 = c0 // bw, (c0 + w - 1) // bw
        for key in [k for k in self._kept if k[0] < by0]:
            del self._kept[key]
        for by in range(by0, by1 + 1):
            top = by * bh
            a, b = max(r0, top), min(r0 + h, top + lay.block_rows(by))
            keep = top + bh > r0 + h  # the block reaches below the window
            for bx in range(bx0, bx1 + 1):
                left = bx * bw
                samples = self._block(by, bx, keep)
                _place(samples, bw, a - top, b - top, max(c0, left) - left,
                       min(c0 + w, left + bw) - left, out, a - r0, max(c0, left) - c0,
                       lay.predictor)
        return out

    def _block(self, by: int, bx: int, keep: bool) -> np.ndarray:
        found = self._kept.get((by, bx))
        if found is not None:
            return found
        lay = self.layout
        row_bytes = lay.block[1] * lay.dtype.itemsize
        # tiles are stored whole; a last strip may hold only the band's remaining rows
        wanted = lay.block_rows(by) * row_bytes
        raw = os.pread(self._fd, int(lay.sizes[by, bx]), int(lay.offsets[by, bx]))
        try:
            data = (deflate.zlib_decompress(raw, lay.block[0] * row_bytes)
                    if lay.compression == "DEFLATE" else raw)
        except deflate.DeflateError as err:
            raise DecodeError(f"block ({by}, {bx}) of {lay.path}: {err}") from None
        if len(data) < wanted:
            raise DecodeError(f"block ({by}, {bx}) of {lay.path}: {len(data)} bytes, "
                              f"expected at least {wanted}")
        samples = np.frombuffer(data, lay.dtype, count=wanted // lay.dtype.itemsize)
        if keep:
            self._kept[(by, bx)] = samples
        return samples


@numba.njit(nogil=True, cache=True)
def _place(src: np.ndarray, bw: int, r0: int, r1: int, c0: int, c1: int, out: np.ndarray,
           orow: int, ocol: int, predictor: int) -> None:  # pragma: no cover - numba
    """Write block rows ``r0:r1``, columns ``c0:c1`` of ``src`` (flat, rows of ``bw``) to ``out``.

    With ``predictor`` 2 each row is first summed from its first sample (TIFF's
    horizontal differencing, modulo the sample type: the sum is kept in 64 bits and
    truncated on store).
    """
    n = c1 - c0
    for r in range(r0, r1):
        row = src[r * bw:r * bw + c1]  # slices: non-negative indices, no wraparound checks
        dst = out[orow + r - r0, ocol:ocol + n]
        if predictor == 2:
            acc = np.int64(0)
            for c in range(c0):
                acc += np.int64(row[c])
            part = row[c0:c1]
            for c in range(n):
                acc += np.int64(part[c])
                dst[c] = acc
        else:
            part = row[c0:c1]
            for c in range(n):
                dst[c] = part[c]
