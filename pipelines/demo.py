"""``regenmap simulate`` and ``regenmap demo``: the built-in simulated region, end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import yaml

from regenmap import __version__
from regenmap.errors import ConfigError
from regenmap.pipelines.config import builtin_config_path, load_config

if TYPE_CHECKING:
    from regenmap.geo.simulate import SimulatedRegion
    from regenmap.pipelines.job import RunResult
    from regenmap.pipelines.log import Reporter

Size = Literal["small", "medium", "large"]
_SIZES = ("small", "medium", "large")


def _check_size(size: str) -> Size:
    if size not in _SIZES:
        raise ConfigError(f"unknown region size {size!r}: use one of {', '.join(_SIZES)}")
    return cast(Size, size)


def simulate(out_dir: str | Path, *, size: str = "small", seed: int = 0,
             n_dates: int | None = None, years: int = 1) -> SimulatedRegion:
    """Write a seeded simulated region (fields GeoPackage and Sentinel-2 L2A-like scenes).

    Parameters
    ----------
    out_dir
        Folder to write into (created).
    size
        ``small`` (demo, seconds), ``medium`` or ``large`` (benchmark-size).
    seed
        Same seed, same region.
    n_dates
        Number of acquisitions in a year; about one every 5 days by default.
    years
        Consecutive years on the same fields (``labels.csv`` then holds labels per year).
    """
    from regenmap.geo.simulate import simulate_region

    return simulate_region(Path(out_dir), size=_check_size(size), seed=seed, n_dates=n_dates,
                           years=years)


def _region_is_current(region_dir: Path, size: str, seed: int) -> bool:
    """Whether ``region_dir`` already holds the region this version would simulate."""
    meta = region_dir / "simulation.json"
    if not meta.is_file():
        return False
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    written_by = data.get("provenance", {}).get("versions", {}).get("regenmap")
    return bool(data.get("size") == size and data.get("seed") == seed and written_by == __version__)


def demo(out_dir: str | Path = "demo-out", *, size: str = "small", seed: int = 0,
         quiet: bool = False, reporter: Reporter | None = None) -> RunResult:
    """Simulate a region into ``out_dir/region`` and run every stage on it.

    The demo configuration is copied to ``out_dir/demo.yaml`` so that the same
    job can be re-run or changed with ``regenmap run out_dir/demo.yaml``.

    Parameters
    ----------
    out_dir
        Output folder (created; checked to be writable before anything is written).
    size, seed
        Of the simulated region (see :func:`simulate`).
    quiet
        JSON log lines instead of progress bars.
    reporter
        Where events go (the command line passes its own).

    Returns
    -------
    RunResult
        Paths, held-out metrics per target, status counts and timings.
    """
    from regenmap.io import check_writable_dir, write_text_atomic
    from regenmap.pipelines.job import run
    from regenmap.pipelines.log import Reporter

    reporter = reporter or Reporter(quiet=quiet)
    out = check_writable_dir(out_dir, create=True)
    region_dir = out / "region"
    config_path = out / "demo.yaml"
    with reporter.capture():
        if not _region_is_current(region_dir, size, seed):
            simulate(region_dir, size=size, seed=seed)
        template = yaml.safe_load(builtin_config_path("demo.yaml").read_text(encoding="utf-8"))
        template["seed"] = seed
        write_text_atomic(config_path, yaml.safe_dump(template, sort_keys=False))
    return run(load_config(config_path), reporter=reporter)
