from pathlib import Path

import pytest
import yaml

from regenmap.errors import ConfigError
from regenmap.pipelines.config import builtin_config_path, load_config


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_demo_config_is_valid_and_paths_resolve_against_its_folder(tmp_path: Path) -> None:
    data = yaml.safe_load(builtin_config_path("demo.yaml").read_text())
    cfg = load_config(_write(tmp_path, data))
    assert cfg.fields.path == tmp_path / "region" / "fields.gpkg"
    assert cfg.scenes is not None and cfg.scenes.path == tmp_path / "region" / "scenes"
    assert cfg.out_dir == tmp_path / "."
    assert cfg.model.targets == ["tillage", "winter_cover"]


def test_unknown_top_level_key_is_named_with_file_and_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, {"fields": {"path": "f.gpkg"}, "modle": {}})
    with pytest.raises(ConfigError, match=r"(?s)job\.yaml.*unknown key 'modle'.*Did you mean 'model'"):
        load_config(path)


def test_unknown_nested_key_is_named_with_its_section(tmp_path: Path) -> None:
    path = _write(tmp_path, {"fields": {"path": "f.gpkg"}, "extract": {"indice": ["NDVI"]}})
    with pytest.raises(ConfigError, match=r"(?s)unknown key 'extract\.indice'.*Did you mean 'indices'"):
        load_config(path)


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, {"fields": {"path": "f.gpkg"}, "extract": {"percentiles": [10, 150]}})
    with pytest.raises(ConfigError, match=r"(?s)extract\.percentiles.*\[0, 100\]"):
        load_config(path)


def test_missing_required_section_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, {"name": "x"})
    with pytest.raises(ConfigError, match=r"fields: give the field polygons \(fields\.path\), or start"):
        load_config(path)


def test_missing_config_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: configuration file not found"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("fields: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_config(path)


def test_config_hash_changes_with_options_only(tmp_path: Path) -> None:
    a = load_config(_write(tmp_path, {"fields": {"path": "f.gpkg"}}))
    b = load_config(_write(tmp_path, {"fields": {"path": "f.gpkg"}}))
    c = load_config(_write(tmp_path, {"fields": {"path": "f.gpkg"}, "seed": 3}))
    assert a.hash() == b.hash() != c.hash()


def test_configuration_reference_is_current_and_complete() -> None:
    from pathlib import Path

    from regenmap.pipelines.config_reference import reference_markdown, rows

    text = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert reference_markdown() in text, \
        "docs/configuration.md is stale: python -m regenmap.pipelines.config_reference"
    keys = {r[0]: r for r in rows()}
    for key in ("fields.point_pixels", "seasons.named.<name>.months", "model.lightgbm",
                "model.training.num_boost_round", "features.windows.early_days",
                "observations.scale", "extract.max_implausible_share"):
        assert key in keys, key
    undocumented = [k for k, r in keys.items() if not r[3]]
    assert not undocumented, f"keys without a meaning in their class docstring: {undocumented}"
