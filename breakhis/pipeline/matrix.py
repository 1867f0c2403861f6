"""Cross-validation folds and `-S` sweeps as a CI job matrix: one entry per experiment.

A plan is every combination of an override set (`key=value` words, quoted as in a shell; sets
separated by new lines or `;`), a seed and, for a cross-validation, a fold. Each entry names its
DVC experiment and lists the `-S` overrides that make it, so a runner needs nothing else.
Cross-validation experiments are named as `commands.cross_validate` names them
(`cv-<label>-s<seed>-f<fold>`, one label per override set), so its summary reads them; sweep
experiments `sweep-<label>-<set>-s<seed>`.
"""

from __future__ import annotations

import copy
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from breakhis.pipeline.experiments import FOLD_KEYS, check_label, experiment_name, fold_overrides
from breakhis.pipeline.params_file import validate_params
from breakhis.pipeline.paths import PARAMS_FILE
from breakhis.pipeline.yaml_text import parse_yaml

MAX_JOBS = 256  # GitHub Actions' limit for one matrix


@dataclass(frozen=True)
class Entry:
    name: str  # the DVC experiment
    label: str  # the cross-validation's label (summaries group by it); the sweep's for sweeps
    seed: int
    fold: int | None  # None: a sweep run on params.yaml's split
    overrides: list[str]  # `-S` values, in order


def parse_override_sets(text: str) -> list[list[str]]:
    """Override sets separated by new lines or `;` (`#` starts a comment); none: one empty set."""
    sets: list[list[str]] = [[]]
    for number, line in enumerate(text.splitlines(), 1):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";")
        lexer.whitespace_split = True
        try:
            words = list(lexer)
        except ValueError as exc:
            raise ValueError(f"override line {number} ({line.strip()!r}): {exc}") from None
        for word in [*words, ";"]:
            if word == ";":
                if sets[-1]:
                    sets.append([])
                continue
            key = word.split("=", 1)[0]
            if "=" not in word or not key:
                raise ValueError(f"override line {number}: {word!r} is not key=value")
            if key in FOLD_KEYS:
                raise ValueError(f"override line {number}: {key} is set by the plan (folds, seeds)")
            sets[-1].append(word)
    return [words for words in sets if words] or [[]]


def apply_overrides(params: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """params with `key.sub=value` overrides applied (values parsed as YAML, as `dvc exp run -S`)."""
    result = copy.deepcopy(params)
    for override in overrides:
        if "=" not in override:
            raise ValueError(f"-S {override}: expected key=value")
        key, text = override.split("=", 1)
        *parents, leaf = key.split(".")
        node = result
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"-S {override}: {part} is not a section")
        node[leaf] = parse_yaml(text, f"-S {override}")
    return result


def plan(
    label: str,
    params_text: str,
    *,
    folds: int,
    seeds: list[int] | None = None,
    override_sets: list[list[str]] | None = None,
    source: Path = PARAMS_FILE,
) -> list[Entry]:
    """Every experiment of a cross-validation (`folds` >= 2) or a sweep (`folds` 0) for each override
    set and seed; each set's params are validated here, before any runner starts."""
    check_label(label)
    if folds == 1 or folds < 0:
        raise ValueError(f"folds {folds}: 0 (a sweep on params.yaml's split) or at least 2")
    params = parse_yaml(params_text, source) or {}
    sets = override_sets or [[]]
    seeds = seeds or [int(params.get("seed", 42))]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {seeds}: each seed once")
    entries = []
    for number, overrides in enumerate(sets, 1):
        # the schema only: the plan runs on a small hosted runner, each experiment's stages check
        # the memory and cores of the (GPU) runner they land on
        where = Path(f"{source} with {shlex.join(overrides)}")
        validate_params(apply_overrides(params, overrides), where, machine=False)
        set_label = label if len(sets) == 1 else f"{label}-{number}"
        for seed in seeds:
            if folds == 0:
                name = f"sweep-{label}-{number}-s{seed}"
                entries.append(Entry(name, label, seed, None, [*overrides, f"seed={seed}"]))
                continue
            for fold in range(folds):
                name = experiment_name(set_label, seed, fold)
                entries.append(
                    Entry(name, set_label, seed, fold, fold_overrides(folds, seed, fold, overrides))
                )
    if len(entries) > MAX_JOBS:
        raise ValueError(f"{len(entries)} experiments: a GitHub Actions matrix holds at most {MAX_JOBS}")
    return entries


def as_matrix(entries: list[Entry]) -> dict[str, list[dict[str, Any]]]:
    """The `strategy.matrix` of the runner job: `include` lists the entries."""
    return {"include": [asdict(entry) for entry in entries]}


def from_matrix(matrix: dict[str, Any]) -> list[Entry]:
    try:
        return [Entry(**item) for item in matrix["include"]]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a plan's matrix (an object with `include` entries): {exc}") from None
