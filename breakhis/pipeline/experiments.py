"""Git revisions and DVC experiments as the commands outside the DAG read them, and how the
cross-validation's experiments are named.

Metrics and per-image predictions are committed (`cache: false`), so any revision's or
experiment's results are read from git: `file_at(rev, path)`; its params, in today's layout:
`params_at(rev)`. DVC keeps an experiment as a commit
under refs/exps/<baseline[:2]>/<baseline[2:]>/<name>.

A cross-validation fold is the experiment `cv-<label>-s<seed>-f<fold>` (commands.cross_validate runs
it, breakhis.pipeline.matrix plans it for CI runners), and its summary goes to cv/<label>/s<seed>/.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from breakhis.pipeline.paths import CV_DIR, ENTRY_POINTS, LIBRARY, PARAMS_FILE, predictions_file
from breakhis.pipeline.train_params import upgrade_recorded
from breakhis.pipeline.yaml_text import parse_yaml

EXPERIMENT_REFS = "refs/exps"
CODE = (LIBRARY, *ENTRY_POINTS, "dvc.yaml")  # what runs to be compared (folds, seeds) must run the same of

FOLD_NAME = re.compile(r"^cv-(?P<label>.+)-s(?P<seed>\d+)-f(?P<fold>\d+)$")
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ---------------------------------------------------------------------------------------------
# names of cross-validation experiments


def check_label(label: str) -> str:
    """A label goes into experiment names (git refs) and a folder name: letters, digits, `._-`."""
    if not LABEL.match(label) or ".." in label or label.endswith((".", ".lock")):
        raise ValueError(
            f"--label {label!r}: use letters, digits, '.', '_' and '-' (it names experiments and a folder)"
        )
    return label


def experiment_name(label: str, seed: int | str, fold: int | str) -> str:
    """The experiment of one fold of a cross-validation (`<seed>`, `<fold>`: the pattern, in messages)."""
    return f"cv-{label}-s{seed}-f{fold}"


def parse_experiment_name(name: str) -> tuple[str, int, int] | None:
    """(label, seed, fold) of a name made by `experiment_name`, else None."""
    match = FOLD_NAME.match(name)
    return (match["label"], int(match["seed"]), int(match["fold"])) if match else None


def fold_overrides(folds: int, seed: int, fold: int, overrides: Sequence[str] = ()) -> list[str]:
    """The `-S` values of one fold's experiment (commands.cross_validate and commands.runners): the
    k-fold split, its size and seed, the user's `overrides`, then the fold."""
    return ["split.strategy=kfold", f"split.folds={folds}", f"seed={seed}", *overrides, f"split.fold={fold}"]


# the keys `fold_overrides` sets: a user override of one would break the cross-validation
FOLD_KEYS = frozenset(override.split("=")[0] for override in fold_overrides(2, 0, 0))


def summary_dir(label: str, seed: int) -> Path:
    """Where the summary of a label's cross-validation with one seed goes."""
    return CV_DIR / label / f"s{seed}"


# ---------------------------------------------------------------------------------------------
# git and DVC


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True)


def dvc(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Run DVC with this Python; its output goes to stderr (stdout is the command's own)."""
    command = [sys.executable, "-m", "dvc", *args]
    if capture:
        return subprocess.run(command, capture_output=True, text=True)
    print(f"$ dvc {' '.join(args)}", file=sys.stderr, flush=True)
    return subprocess.run(command, stdout=sys.stderr, text=True)


def head_or_none() -> str | None:
    """HEAD's commit, or None in a repository without one."""
    return git("rev-parse", "--verify", "--quiet", "HEAD^{commit}").stdout.strip() or None


def code_identity(rev: str) -> str:
    """The git tree ids of CODE at a commit: equal exactly when the commits run the same code."""
    return " ".join(git("rev-parse", "--verify", "--quiet", f"{rev}:{path}").stdout.strip() for path in CODE)


def head_commit() -> str:
    head = head_or_none()
    if head is None:
        raise ValueError(
            "no commit here: experiments branch from a commit (run in the project, commit first)"
        )
    return head


@dataclass(frozen=True)
class ExperimentRef:
    name: str
    rev: str
    baseline: str
    time: int


def experiment_refs() -> list[ExperimentRef]:
    """Every DVC experiment of the repository."""
    result = git(
        "for-each-ref", "--format=%(refname)%09%(objectname)%09%(committerdate:unix)", EXPERIMENT_REFS
    )
    if result.returncode != 0:
        raise ValueError(f"git for-each-ref failed: {result.stderr.strip()}")
    refs = []
    for line in result.stdout.splitlines():
        refname, rev, stamp = line.split("\t")
        parts = refname.split("/")
        if len(parts) == 5 and len(parts[2]) == 2 and len(parts[3]) == 38:
            refs.append(ExperimentRef(parts[4], rev, parts[2] + parts[3], int(stamp or 0)))
    return refs


def file_at(rev: str, path: object) -> str | None:
    """A file's text at a commit, or None when the commit has no such file."""
    result = git("show", f"{rev}:{path}")
    return result.stdout if result.returncode == 0 else None


def params_at(rev: str) -> Any:
    """The params.yaml recorded at a commit (parsed, not validated: an older run's keys may have been
    renamed since), in today's layout (`upgrade_recorded`: per-model sections under `models`); None
    when the commit has no params.yaml."""
    text = file_at(rev, PARAMS_FILE)
    if text is None:
        return None
    params = parse_yaml(text, f"{PARAMS_FILE} at {rev[:7]}") or {}
    return upgrade_recorded(params) if isinstance(params, dict) else params


@dataclass(frozen=True)
class Target:
    name: str  # as given: an experiment name or a git revision
    rev: str  # its commit
    baseline: str | None  # the commit an experiment ran on; None for a plain revision


class UnknownRevisionError(ValueError):
    """A name is neither an experiment nor a git revision."""


def resolve(names: list[str], refs: list[ExperimentRef], head: str | None) -> list[Target]:
    """Experiment names (the newest run of a name; runs on `head` first) or git revisions."""
    targets = []
    for name in names:
        runs = sorted((r for r in refs if r.name == name), key=lambda r: (r.baseline == head, r.time))
        if runs:
            targets.append(Target(name, runs[-1].rev, runs[-1].baseline))
            continue
        result = git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
        if result.returncode != 0:
            raise UnknownRevisionError(f"unknown experiment or revision: {name}")
        targets.append(Target(name, result.stdout.strip(), None))
    return targets


def predictions_at(
    rev: str | None, models: Iterable[str], path_of: Callable[[str], Path] = predictions_file
) -> dict[str, pd.DataFrame]:
    """The test predictions of every model that has them, at a commit (None: the workspace); with
    `path_of=epoch_predictions_file`, those of its snapshots."""
    found = {}
    for model in models:
        path = path_of(model)
        text = (path.read_text() if path.is_file() else None) if rev is None else file_at(rev, path)
        if text is not None:
            try:
                found[model] = pd.read_csv(io.StringIO(text))
            except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
                raise ValueError(f"{path} at {rev or 'the workspace'}: not a readable CSV ({exc})") from exc
    return found
