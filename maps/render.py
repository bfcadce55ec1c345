"""Render all maps of a results GeoPackage: static PNGs per target and one HTML map."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from regenmap.errors import OutputError
from regenmap.io import check_writable_dir
from regenmap.maps.gpkg_contract import read_results, validate_results
from regenmap.maps.interactive import html_map
from regenmap.maps.static import class_map, confidence_map
from regenmap.schema import FIELD_ID, class_column, confidence_column, reason_column, status_column


def map_paths(out_dir: str | Path, targets: Sequence[str]) -> dict[str, Path]:
    """Return the file of each map :func:`render_maps` writes, by name.

    Names are ``<target>_class`` and ``<target>_confidence`` (PNG) and
    ``map`` (HTML).
    """
    d = Path(out_dir)
    out = {}
    for t in targets:
        out[f"{t}_class"] = d / f"{t}_class.png"
        out[f"{t}_confidence"] = d / f"{t}_confidence.png"
    out["map"] = d / "map.html"
    return out


def ensure_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` if its parent exists and is writable; check it is writable."""
    d = Path(out_dir)
    if not d.exists():
        check_writable_dir(d.parent)
        d.mkdir()
    return check_writable_dir(d)


def render_maps(gpkg_path: str | Path, out_dir: str | Path, *,
                targets: Sequence[str] | None = None) -> list[Path]:
    """Render the static and interactive maps of a results GeoPackage.

    Parameters
    ----------
    gpkg_path
        Results GeoPackage (validated against ``GPKG_SCHEMA``).
    out_dir
        Folder for the maps; created if missing (its parent must exist).
    targets
        Targets to draw; all targets of the GeoPackage if None.

    Returns
    -------
    list[Path]
        Per target a class PNG and a confidence PNG, then the HTML map
        (see :func:`map_paths` for the names). Each file is written atomically.

    Raises
    ------
    SchemaError
        The GeoPackage is not a results GeoPackage of this version.
    OutputError
        ``out_dir`` cannot be created or written, or a target is unknown.
    """
    known = validate_results(gpkg_path)
    chosen = list(known) if targets is None else list(targets)
    unknown = [t for t in chosen if t not in known]
    if unknown:
        raise OutputError(f"{gpkg_path}: no target(s) {unknown} in this GeoPackage "
                          f"(it has {list(known)})")
    # Only what the maps show: a million fields' probabilities stay on disk.
    needed = [FIELD_ID] + [c for t in chosen for c in (class_column(t), status_column(t),
                                                       confidence_column(t), reason_column(t))]
    frame = read_results(gpkg_path, columns=needed)
    d = ensure_dir(out_dir)
    paths = map_paths(d, chosen)
    written: list[Path] = []
    for t in chosen:
        written.append(class_map(frame, t, known[t], paths[f"{t}_class"]))
        written.append(confidence_map(frame, t, paths[f"{t}_confidence"]))
    name = frame.attrs["run"].get("extra", {}).get("name") or Path(gpkg_path).stem
    written.append(html_map(frame, {t: known[t] for t in chosen}, paths["map"],
                            title=f"regenmap: {name}"))
    return written
