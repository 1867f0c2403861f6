"""dvc.yaml lists exactly the params each stage reads, so a change to any of them re-runs the stage
(and a change to any other does not): the twin of test_dvc_deps.py, for params.

What a stage reads is measured, not guessed: every stage of dvc.yaml runs in its order, as DVC runs
it, on the tiny pipeline of tests/pipeline_repo.py, under tests/params_reads.py, which records each
key of the validated params that the stage's code touches (an attribute, or a whole section through
`model_dump`, pickling or a copy). Validation's own reads inside `load_params` are not counted: they
can refuse params, never change an output.

A listed key covers the keys under it (`models.custom` covers `models.custom.dropout`), so a stage may
list whole sections. It fails on
- a key read but not listed: changing it would not re-run the stage, and leave a stale output;
- a listed key of which nothing is read: changing it would re-run the stage for nothing.
A run sees the branches its params take; the tiny run takes the defaults' (validation split,
patches, binary task, synthetic data), so a key read only under other values is covered by listing
its whole section.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from tests.params_reads import ReadRecorder
from tests.pipeline_repo import TINY, environment, make_repo, run, write_params

STAGES = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]


def uncovered(keys: set[str], listed: list[str]) -> list[str]:
    """The keys that no listed key is, or holds."""
    return sorted(key for key in keys if not any(key == k or key.startswith(k + ".") for k in listed))


def unread(listed: list[str], reads: set[str]) -> list[str]:
    """The listed keys of which nothing was read."""
    return [k for k in listed if not any(r == k or r.startswith(k + ".") for r in reads)]


@pytest.fixture(scope="module")
def reads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Each stage's reads on the tiny pipeline, the stages run in dvc.yaml's order."""
    repo = make_repo(tmp_path_factory.mktemp("params-reads"))
    write_params(repo, TINY)
    env = {**environment(), "PYTHONPATH": str(PROJECT_ROOT)}  # tests.params_reads; stages from the copy
    found = {}
    for name, stage in STAGES.items():
        command = stage["cmd"].split()
        assert command[:2] == ["python", "-m"], f"{name}: cmd should run a module: {stage['cmd']}"
        out = repo / f"reads-{name}.json"
        run(["python", "-m", "tests.params_reads", str(out), *command[2:]], repo, env=env)
        found[name] = set(json.loads(out.read_text()))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_lists_exactly_the_params_it_reads(name: str, reads: dict[str, set[str]]) -> None:
    listed = [key for key in STAGES[name].get("params", []) if isinstance(key, str)]
    assert len(listed) == len(STAGES[name].get("params", [])), (
        f"{name}: params other than keys of params.yaml"
    )
    missing = uncovered(reads[name], listed)
    assert not missing, f"{name}: reads params that dvc.yaml does not list: {missing}"
    assert not unread(listed, reads[name]), (
        f"{name}: dvc.yaml lists params the stage never reads: {unread(listed, reads[name])}"
    )


def test_the_recorder_sees_attributes_dumps_and_pickles_but_not_sections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The measure itself: a field read is recorded, reaching a section is not, a dump reads what it
    dumps (and not what it excludes), and params that did not come from `load_params` are not watched."""
    import pickle

    from breakhis.pipeline.param_types import Section
    from breakhis.pipeline.params import Params

    recorder = ReadRecorder()
    params, other = Params(), Params(seed=7)
    recorder.index(params)
    monkeypatch.setattr(Section, "__getattribute__", recorder.getattribute(object.__getattribute__))
    assert params.models.custom.dropout == 0.3 and other.train.epochs == 8
    params.train.model_dump()
    params.models.model_dump(exclude={"vgg19", "resnet50"})
    pickle.dumps(params.augment)
    monkeypatch.undo()
    assert "models.custom.dropout" in recorder.reads
    assert "models.custom" not in recorder.reads and "train" not in recorder.reads
    assert {
        "train.epochs",
        "train.snapshot_epochs",
        "models.custom.filters",
        "augment.zoom",
    } <= recorder.reads
    assert not any(
        key.startswith(("models.vgg19", "models.resnet50", "seed", "evaluate")) for key in recorder.reads
    )
    assert uncovered(
        {"models.custom.dropout", "train.snapshot_epochs"}, ["models.custom", "train.epochs"]
    ) == ["train.snapshot_epochs"]
    assert unread(["models.custom", "evaluate"], {"models.custom.dropout"}) == ["evaluate"]
