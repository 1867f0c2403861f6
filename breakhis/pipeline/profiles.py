"""Named, versioned sets of params: `profiles/<name>.yaml`, applied in one step by
`python -m commands.exp_run --profile NAME` (one `dvc exp run`) and
`python -m commands.cross_validate --profile NAME` (every fold).

A profile holds a `version`, a `description` and `params`: a partial params.yaml (nested keys). It
becomes `-S key=value` overrides, so the experiment's params.yaml holds every value and `dvc exp show`
and `dvc params diff` see them; the user's own `-S` come after it and win. Every profile is checked
against the schema when it is read (an unknown key or a wrong value names the profile and the key).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breakhis.pipeline.params import Params, ParamsError
from breakhis.pipeline.params_file import validate_params
from breakhis.pipeline.paths import PROFILES_DIR
from breakhis.pipeline.yaml_text import YamlError, read_yaml, yaml_value


@dataclass(frozen=True)
class Profile:
    name: str
    version: int
    description: str
    params: dict[str, Any]  # dotted key -> value

    def overrides(self) -> list[str]:
        """The `-S key=value` values (flow-style YAML, as `dvc exp run -S` parses them)."""
        return [f"{key}={yaml_value(value)}" for key, value in self.params.items()]


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params -> dotted keys; a mapping is a section, anything else (a list too) a value."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def apply(params: dict[str, Any], flat: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of nested `params` with the dotted keys set."""
    result = copy.deepcopy(params)
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = result
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return result


def available(directory: Path = PROFILES_DIR) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.yaml"))


def load_profile(name: str, directory: Path = PROFILES_DIR) -> Profile:
    """The named profile, checked: its keys and values against the schema (on top of the defaults)."""
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available(directory)) or "none"
        raise ValueError(f"--profile {name}: no {path} (profiles here: {known})")
    try:
        raw = read_yaml(path)
    except YamlError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(raw, dict) or set(raw) != {"version", "description", "params"}:
        raise ValueError(f"{path}: a profile holds exactly `version`, `description` and `params`")
    version, description, params = raw["version"], raw["description"], raw["params"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{path}: version: {version!r} is not a positive whole number")
    if not isinstance(params, dict) or not params:
        raise ValueError(f"{path}: params: expected the keys to set, as in params.yaml")
    flat = flatten(params)
    defaults = Params().model_dump(mode="json")
    try:
        validate_params(apply(defaults, flat), path, machine=False)
    except ParamsError as exc:
        raise ValueError(f"profile {name}: {exc}") from None
    return Profile(name=name, version=version, description=str(description), params=flat)
