"""The values a model card reads, tolerantly: metrics nested (`resnet50.image.accuracy`) or flat keys,
and optional confidence intervals as `<model>.ci.<metric>` / `<model>.ci.<level>.<metric>` /
`<model>.<level>.ci.<metric>` / `<model>.<level>.<metric>_ci`, each [low, high] or {low, high};
a summary file that is missing or broken reads as empty.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from breakhis.evaluation.metrics import HEADLINE
from breakhis.evaluation.tables import estimate

IMAGE_METRIC_NAMES = {metric.key for metric in HEADLINE if metric.level == "image"}


def lookup(tree: Any, dotted: str) -> Any:
    """`a.b.c` in nested dicts, also where some levels are flat keys (`{"a.b": {"c": 1}}`); else None."""
    if not dotted:
        return tree
    if not isinstance(tree, Mapping):
        return None
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        key = ".".join(parts[:cut])
        if key in tree:
            found = lookup(tree[key], ".".join(parts[cut:]))
            if found is not None:
                return found
    return None


def as_interval(value: Any) -> tuple[float, float] | None:
    if isinstance(value, Mapping):
        for low, high in (("low", "high"), ("lower", "upper"), ("lo", "hi")):
            if low in value and high in value:
                value = (value[low], value[high])
                break
        else:
            return as_interval(value.get("ci") or value.get("interval"))
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        try:
            return float(value[0]), float(value[1])
        except (TypeError, ValueError):
            return None
    return None


def metric_interval(
    summary: Mapping[str, Any], model: str, level: str, metric: str
) -> tuple[float, float] | None:
    keys = [f"{model}.ci.{level}.{metric}", f"{model}.ci.{level}_{metric}"]
    if level == "image" or metric not in IMAGE_METRIC_NAMES:  # `ci.accuracy` is the image accuracy
        keys.append(f"{model}.ci.{metric}")
    keys += [f"{model}.{level}.ci.{metric}", f"{model}.{level}.{metric}_ci"]
    for key in keys:
        found = as_interval(lookup(summary, key))
        if found is not None:
            return found
    return None


def as_number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def metric_cell(summary: Mapping[str, Any], model: str, level: str, metric: str) -> str:
    value = as_number(lookup(summary, f"{model}.{level}.{metric}"))
    return estimate(value, metric_interval(summary, model, level, metric), interval_digits=3)


def wilson_interval(successes: float, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
