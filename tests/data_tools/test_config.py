from __future__ import annotations

import pytest

from data_tools.collect import CollectConfig
from data_tools.config import ConfigError, describe_config, load_config, parse_overrides


def test_defaults_then_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("images:\n  max_side: 800\nneardup:\n  threshold: 4\n")
    config = load_config(CollectConfig, path, ["neardup.threshold=2", "source.defaults.language=es-MX"])
    assert config.images.max_side == 800  # from YAML
    assert config.neardup.threshold == 2  # CLI wins over YAML
    assert config.source.defaults == {"language": "es-MX"}
    assert config.images.min_side == CollectConfig().images.min_side  # default kept


def test_unknown_key_rejected_with_suggestion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("images:\n  max_sid: 800\n")
    with pytest.raises(ConfigError, match=r"unknown key 'images.max_sid'; did you mean 'images.max_side'"):
        load_config(CollectConfig, path)


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"images\.max_side"):
        load_config(CollectConfig, None, ["images.max_side=huge"])


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["images.max_side"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(CollectConfig, tmp_path / "nope.yaml")


def test_describe_lists_every_key_with_default_and_help():
    text = describe_config(CollectConfig)
    assert "max_side: 1536  # longest side" in text
    assert "threshold: 6" in text
    for section in ("images:", "metadata:", "source:", "download:", "neardup:"):
        assert section in text


def test_shipped_config_is_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    config = load_config(CollectConfig, root / "configs" / "collect.yaml")
    assert config.metadata.required == ["language", "country"]


@pytest.mark.parametrize(
    "module", ["data_tools.draft.config:DraftConfig", "data_tools.review.config:ReviewConfig"]
)
def test_every_stage_config_describes_itself(module):
    import importlib

    name, attr = module.split(":")
    text = describe_config(getattr(importlib.import_module(name), attr))
    assert ("prompts_dir: " in text) or ("ui_dir: " in text)
