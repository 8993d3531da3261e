"""Stage configuration: defaults < YAML file < ``--set key=value`` overrides, unknown keys rejected.

Each stage declares one pydantic model whose ``Field(description=…)`` is the only place a default is
documented (``--help-config`` prints them). Pydantic does the type coercion and the unknown-key
check (``extra="forbid"``) that TRL's ``TrlParser`` does for dataclasses; we add dotted overrides
and a "did you mean" hint because a typo in a YAML key must never silently do nothing.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import to_jsonable_python

from data_tools.errors import UserError

T = TypeVar("T", bound="StageConfig")


class ConfigError(UserError, ValueError):
    """A configuration that cannot be used; the message says which key and why."""


class StageConfig(BaseModel):
    """Base for every stage's configuration: strict keys, validated assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = target
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {dotted!r}: {key!r} is not a section")
        node = child
    node[keys[-1]] = value


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """``["images.max_side=1024", "neardup.enabled=false"]`` → nested dict, values parsed as YAML scalars."""
    result: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. images.max_side=1024)")
        key, raw = item.split("=", 1)
        _set_dotted(result, key.strip(), yaml.safe_load(raw) if raw.strip() else None)
    return result


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        keys.append(prefix + name)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_known_keys(annotation, prefix + name + "."))
    return keys


def _explain(model: type[BaseModel], error: ValidationError, source: str) -> ConfigError:
    lines = [f"invalid configuration ({source}):"]
    known = _known_keys(model)
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            lines.append(f"  unknown key {key!r}{did_you_mean(key, known)}")
        else:
            lines.append(f"  {key}: {item['msg']} (got {item.get('input')!r})")
    return ConfigError("\n".join(lines))


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML settings file; one-line :class:`ConfigError` when missing, invalid or not a mapping.

    Every stage (and ``mirada train``, whose keys are TRL's) reads its ``--config`` file here.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return loaded


def did_you_mean(key: str, known: Iterable[str], cutoff: float = 0.6) -> str:
    """``"; did you mean 'learning_rate'?"`` for a close known key, else ``""``."""
    hint = difflib.get_close_matches(key, sorted(known), n=1, cutoff=cutoff)
    return f"; did you mean {hint[0]!r}?" if hint else ""


def load_config(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    """Build ``cls`` from its defaults, then the YAML file at ``path``, then dotted overrides."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        data = read_yaml_mapping(path)
        source = str(path)
    overrides = list(overrides)
    if overrides:
        data = _merge(data, parse_overrides(overrides))
        source += " + --set overrides"
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise _explain(cls, exc, source) from None


def describe_config(cls: type[BaseModel], prefix: str = "") -> str:
    """Every key with its default and help text, for ``--help-config``."""
    lines = []
    for name, info in cls.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.append(f"{prefix}{name}:  # {info.description or ''}".rstrip())
            lines.append(describe_config(annotation, prefix + "  "))
            continue
        default = to_jsonable_python(info.get_default(call_default_factory=True))  # Paths, nested models
        rendered = yaml.safe_dump(default, default_flow_style=True, allow_unicode=True).strip()
        rendered = rendered.removesuffix("\n...").removesuffix("...").strip()
        lines.append(f"{prefix}{name}: {rendered}  # {info.description or ''}".rstrip())
    return "\n".join(lines)
