"""Damage a file the way disks and copies do: cut short, or one bit flipped."""

from __future__ import annotations

from pathlib import Path


def truncate(path: Path) -> None:
    """Keep the first two thirds of the file (a copy or a write cut short)."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])


def flip_one_byte(path: Path) -> None:
    """Flip the lowest bit of the middle byte (bit rot: same size, other content)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
