"""The ``sample:`` section of the run YAML: read, checked, resolved, outside the run hash."""

from pathlib import Path

import pytest
import yaml

from regenmap.errors import ConfigError
from regenmap.pipelines.config import load_config

BASE = {"fields": {"path": "fields.gpkg"}}


def _write(tmp_path: Path, sample: object) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({**BASE, "sample": sample}))
    return path


def test_sample_section_is_read_and_exclusion_paths_resolve(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, {
        "design": {"n": 40, "by": ["region"], "allocation": "olofsson", "min_per_stratum": 10,
                   "exclude": ["no_access.csv"]},
        "next": {"budget": 12, "clusters": 3, "unit_column": "village", "max_per_unit": 2}}))
    assert cfg.sample.design.n == 40 and cfg.sample.design.by == ["region"]
    assert cfg.sample.design.exclude == [tmp_path / "no_access.csv"]
    opts = cfg.sample.design.options(seed=7)
    assert (opts.n, opts.allocation, opts.min_per_stratum, opts.seed) == (40, "olofsson", 10, 7)
    nxt = cfg.sample.next.options(seed=7)
    assert (nxt.budget, nxt.clusters, nxt.max_per_unit) == (12, 3, 2)


def test_sampling_options_do_not_change_the_run_hash(tmp_path: Path) -> None:
    plain = load_config(_write(tmp_path, {}))
    other = load_config(_write(tmp_path, {"design": {"n": 99}, "next": {"budget": 5}}))
    assert plain.hash() == other.hash()


@pytest.mark.parametrize(("sample", "message"), [
    ({"design": {"allocaton": "neyman"}}, "unknown key 'sample.design.allocaton'"),
    ({"design": {"allocation": "best"}}, "sample.design.allocation"),
    ({"design": {"min_per_stratum": 1}}, "sample.design.min_per_stratum"),
    ({"next": {"max_per_unit": 2}}, "max_per_unit needs unit_column"),
    ({"next": {"w_uncertainty": 0, "w_representative": 0, "w_novelty": 0}},
     "the score weights must not all be 0"),
])
def test_bad_sampling_options_name_the_key(tmp_path: Path, sample: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, sample))
