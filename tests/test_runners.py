"""Folds and sweeps on CI runners: the plan (matrix expansion), the workflow's structure, and the
team flow end to end: runners push experiments to a shared git repository and DVC remote, a
teammate pulls, summarises, applies, pulls the models and predicts with them."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from breakhis.pipeline.matrix import apply_overrides, as_matrix, from_matrix, parse_override_sets, plan
from breakhis.pipeline.params import ParamsError
from breakhis.pipeline.params_file import validate_params
from tests.conftest import PROJECT_ROOT, SAMPLE_TREE

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "cross-validation.yml"
PARAMS = (PROJECT_ROOT / "params.yaml").read_text()


# ---- the plan ----------------------------------------------------------------------------------


def test_override_sets_split_on_lines_and_semicolons_and_keep_quoted_values() -> None:
    text = "train.epochs=20 'train.image_size=[96, 96]' ; train.epochs=40\n# a comment\n\n"
    assert parse_override_sets(text) == [
        ["train.epochs=20", "train.image_size=[96, 96]"],
        ["train.epochs=40"],
    ]
    assert parse_override_sets("") == [[]] and parse_override_sets(" ; \n") == [[]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train.epochs", "'train.epochs' is not key=value"),
        ("=3", "'=3' is not key=value"),
        ("split.fold=2", "split.fold is set by the plan"),
        ("seed=1", "seed is set by the plan"),
        ("train.epochs='20", "No closing quotation"),
    ],
)
def test_bad_override_sets_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_override_sets(text)


def test_cross_validation_plan_is_every_set_seed_and_fold() -> None:
    sets = parse_override_sets("train.epochs=20; train.epochs=40")
    entries = plan("gpu", PARAMS, folds=3, seeds=[1, 2], override_sets=sets)
    assert len(entries) == 2 * 2 * 3
    assert [e.name for e in entries[:4]] == [
        "cv-gpu-1-s1-f0",
        "cv-gpu-1-s1-f1",
        "cv-gpu-1-s1-f2",
        "cv-gpu-1-s2-f0",
    ]
    assert entries[-1].name == "cv-gpu-2-s2-f2" and entries[-1].label == "gpu-2"
    assert entries[4].overrides == [  # as commands.cross_validate sets them
        "split.strategy=kfold",
        "split.folds=3",
        "seed=2",
        "train.epochs=20",
        "split.fold=1",
    ]
    assert len({e.name for e in entries}) == len(entries)
    # the matrix round-trips through JSON, as it does through the plan job's output
    assert from_matrix(json.loads(json.dumps(as_matrix(entries)))) == entries


def test_the_plan_checks_the_schema_not_the_planning_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan job runs on a small hosted runner; a GPU-sized set is for the runner it lands on."""
    monkeypatch.setenv("BREAKHIS_MEMORY_GB", "0.5")
    large = ["train.image_size=[224,224]", "train.patch_scale=1.0", "train.batch_size=256"]
    assert len(plan("gpu", PARAMS, folds=2, override_sets=[large])) == 2
    with pytest.raises(ParamsError, match="too much for this machine"):
        validate_params(apply_overrides(yaml.safe_load(PARAMS), large), Path("params.yaml"))


def test_one_set_keeps_the_label_and_the_default_seed_comes_from_params() -> None:
    entries = plan("base", PARAMS, folds=2)
    assert [e.name for e in entries] == [
        "cv-base-s42-f0",
        "cv-base-s42-f1",
    ]  # commands.cross_validate's names
    assert {e.label for e in entries} == {"base"}


def test_a_sweep_runs_each_set_once_on_the_params_split() -> None:
    entries = plan(
        "lr", PARAMS, folds=0, override_sets=[["train.learning_rate=0.01"], ["train.learning_rate=0.1"]]
    )
    assert [(e.name, e.fold) for e in entries] == [("sweep-lr-1-s42", None), ("sweep-lr-2-s42", None)]
    assert entries[1].overrides == ["train.learning_rate=0.1", "seed=42"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"override_sets": [["train.epoch=3"]]}, ParamsError, "train.epoch: unknown key"),
        (
            {"override_sets": [["train.epochs=many"]]},
            ParamsError,
            "train.epochs: Input should be a valid integer",
        ),
        ({"folds": 1}, ValueError, "folds 1: 0 (a sweep"),
        ({"seeds": [3, 3]}, ValueError, "each seed once"),
        ({"seeds": list(range(60))}, ValueError, "at most 256"),
    ],
)
def test_a_bad_plan_fails_before_any_runner_starts(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        plan("x", PARAMS, **{"folds": 5, **kwargs})


def test_a_label_that_cannot_name_an_experiment_is_refused() -> None:
    with pytest.raises(ValueError, match="--label 'a b'"):
        plan("a b", PARAMS, folds=2)


# ---- the workflow file ---------------------------------------------------------------------------


def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def step_index(job: dict[str, Any], text: str) -> int:
    """The position of the first step whose `run` or `uses` contains `text`."""
    for index, step in enumerate(job["steps"]):
        if text in step.get("run", "") or text in step.get("uses", ""):
            return index
    raise AssertionError(f"no step runs {text!r}")


def test_jobs_fan_out_from_the_plan_and_the_summary_waits_for_every_runner() -> None:
    jobs = workflow()["jobs"]
    assert list(jobs) == ["plan", "experiment", "summary"]
    experiment, summary = jobs["experiment"], jobs["summary"]
    assert experiment["needs"] == "plan"
    assert experiment["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert experiment["strategy"]["fail-fast"] is False
    assert experiment["runs-on"] == "${{ fromJSON(inputs.runner) }}"
    assert experiment["permissions"]["contents"] == "write"  # exp push
    assert jobs["plan"]["outputs"]["matrix"] == "${{ steps.plan.outputs.matrix }}"
    assert set(summary["needs"]) == {"plan", "experiment"}
    assert "!cancelled()" in summary["if"]  # failed folds are summarised as missing, not skipped
    assert json.loads(workflow()[True]["workflow_dispatch"]["inputs"]["runner"]["default"]) == [
        "self-hosted",
        "gpu",
    ]


def test_steps_run_in_order() -> None:
    jobs = workflow()["jobs"]
    for name, job in jobs.items():
        assert step_index(job, "actions/checkout") == 0, name
        assert step_index(job, "run.py sync") < len(job["steps"]) - 1, name
    experiment, summary = jobs["experiment"], jobs["summary"]
    assert experiment["steps"][0]["with"]["fetch-depth"] == 0
    assert (
        step_index(experiment, "run.py sync")
        < step_index(experiment, "git config user.name")
        < step_index(experiment, "dvc pull")
        < step_index(experiment, "commands.runners run")
        == len(experiment["steps"]) - 1
    )
    assert "--push origin" in experiment["steps"][-1]["run"]
    assert (
        step_index(summary, "run.py sync")
        < step_index(summary, "commands.runners summarise")
        < step_index(summary, "upload-artifact")
        < step_index(summary, "cml comment create")
    )
    assert step_index(jobs["plan"], "commands.runners plan") > step_index(jobs["plan"], "run.py sync")


def test_scripts_take_inputs_from_env_only() -> None:
    """`${{ }}` inside a script is expanded before the shell sees it: an input could inject code."""
    for name, job in workflow()["jobs"].items():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), (name, step["name"])


def test_the_workflow_installs_from_the_lock() -> None:
    for name, job in workflow()["jobs"].items():
        install = job["steps"][step_index(job, "run.py sync")]["run"]
        assert "pip install" not in install and '"$PWD/.venv/bin" >> "$GITHUB_PATH"' in install, name


# ---- the team flow, end to end ----------------------------------------------------------------------


class Workflow:
    """Runs the workflow's own step scripts, as GitHub Actions would, in a local clone: `env:`
    expressions are looked up in `expressions` (an unknown one fails), `uses:` steps and the
    install step are skipped (the test's Python is the installed environment, first on PATH)."""

    def __init__(self, expressions: dict[str, str], tmp: Path) -> None:
        self.expressions = expressions
        self.tmp = tmp

    def expand(self, value: object) -> str:
        def lookup(match: re.Match[str]) -> str:
            expression = match[1].strip()
            assert expression in self.expressions, f"the test does not know ${{{{ {expression} }}}}"
            return self.expressions[expression]

        return re.sub(r"\$\{\{(.*?)\}\}", lookup, str(value))

    def run_job(self, job: str, cwd: Path, **extra: str) -> dict[str, str]:
        """Run the job's steps; return the outputs written to $GITHUB_OUTPUT."""
        from tests.pipeline_repo import environment

        output, summary = self.tmp / f"{job}-{cwd.name}.out", self.tmp / f"{job}-{cwd.name}.summary"
        saved = dict(self.expressions)
        self.expressions.update(extra)
        try:
            for step in workflow()["jobs"][job]["steps"]:
                if "uses" in step or "run.py sync" in step["run"] or "cml " in step["run"]:
                    continue
                env = {**environment(), "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
                env |= {key: self.expand(value) for key, value in step.get("env", {}).items()}
                result = subprocess.run(
                    ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                    cwd=cwd,
                    env=env,
                    capture_output=True,
                    text=True,
                )
                log = result.stdout + result.stderr
                assert result.returncode == 0, f"{job} / {step['name']} failed:\n{log}"
        finally:
            self.expressions = saved
        lines = output.read_text().splitlines() if output.exists() else []
        return dict(line.split("=", 1) for line in lines)


def git(*args: str, cwd: Path) -> str:
    from tests.pipeline_repo import run

    return run(["git", *args], cwd)


@pytest.mark.slow
def test_runners_push_experiments_and_a_teammate_pulls_summarises_applies_and_predicts(
    tmp_path: Path,
) -> None:
    from tests.pipeline_repo import TINY, commit, dvc, make_repo, run, set_args

    # the team's servers: a bare git repository and a DVC remote on the local file system
    server, storage = tmp_path / "team.git", tmp_path / "dvc-storage"
    run(["git", "init", "-q", "--bare", "-b", "main", str(server)], tmp_path)
    first = make_repo(tmp_path / "first")
    dvc("remote", "add", "--default", "storage", str(storage), cwd=first)
    commit(first, "DVC remote")
    git("push", "-q", str(server), "HEAD:main", cwd=first)

    def clone(name: str) -> Path:
        git("clone", "-q", str(server), name, cwd=tmp_path)
        return tmp_path / name

    secrets = {f"secrets.{s}": "" for s in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    secrets |= {
        f"secrets.{s}": "" for s in ("GOOGLE_APPLICATION_CREDENTIALS_DATA", "AZURE_STORAGE_CONNECTION_STRING")
    }
    tiny = shlex.join(set_args(TINY)[1::2])
    actions = Workflow(
        {
            "inputs.label": "team",
            "inputs.folds": "3",
            "inputs.seeds": "",
            "inputs.overrides": tiny,
            **secrets,
        },
        tmp_path,
    )

    # plan: 3 folds; two runners run folds 0 and 1 and push them; fold 2's runner "fails"
    outputs = actions.run_job("plan", clone("planner"))
    matrix = json.loads(outputs["matrix"])
    assert outputs["count"] == "3" and [e["name"] for e in matrix["include"]] == [
        "cv-team-s42-f0",
        "cv-team-s42-f1",
        "cv-team-s42-f2",
    ]
    runners = []
    for entry in matrix["include"][:2]:
        runner = clone(f"runner-{entry['fold']}")
        actions.run_job("experiment", runner, **{"toJSON(matrix)": json.dumps(entry)})
        runners.append(runner)
    assert "cv-team-s42-f0" in git("ls-remote", str(server), cwd=tmp_path)  # the experiment's git ref
    assert any(storage.rglob("*")), "nothing was pushed to the DVC remote"

    # the teammate (and the summary job): pull and summarise; fold 2 is named as missing
    teammate = clone("teammate")
    actions.run_job("summary", teammate, **{"needs.plan.outputs.matrix": outputs["matrix"]})
    report = (teammate / "runners_summary.md").read_text()
    assert report.startswith("# Runner results: 2 of 3 experiments")
    assert "Missing (the runner failed or did not push): `cv-team-s42-f2`" in report
    assert "# Cross-validation `team`: 2 of 3 folds, seed 42" in report
    assert report in (tmp_path / "summary-teammate.summary").read_text()  # the run's summary page
    assert (teammate / "cv/team/s42/summary.json").is_file()

    shown = json.loads(dvc("exp", "show", "--json", cwd=teammate))
    experiments = {e["name"]: e for entry in shown for e in (entry.get("experiments") or [])}
    assert {"cv-team-s42-f0", "cv-team-s42-f1"} <= set(experiments)
    data = experiments["cv-team-s42-f0"]["revs"][0]["data"]
    assert 0 <= data["metrics"]["metrics/evaluate.json"]["data"]["ensemble"]["image"]["roc_auc"] <= 1

    # the teammate takes fold 0: its outputs from the DVC remote, into the workspace
    dvc("exp", "pull", "origin", "cv-team-s42-f0", cwd=teammate)
    dvc("exp", "apply", "cv-team-s42-f0", cwd=teammate)
    for name in ("custom", "vgg19", "resnet50"):
        pulled = (teammate / "models" / name / "model.keras").read_bytes()
        assert pulled == (runners[0] / "models" / name / "model.keras").read_bytes(), name
    # ... promotes it (a branch, and a registered version of the custom CNN) and pushes both
    dvc("exp", "branch", "cv-team-s42-f0", "promoted", cwd=teammate)
    git("tag", "-a", "custom-cnn@v1.0.0", "-m", "custom-cnn v1.0.0: fold 0", "promoted", cwd=teammate)
    git("push", "-q", "origin", "promoted", "custom-cnn@v1.0.0", cwd=teammate)

    # another teammate checks the branch out, `dvc pull`s its models and predicts with them
    colleague = clone("colleague")
    git("checkout", "-q", "promoted", cwd=colleague)
    assert not (colleague / "models" / "custom" / "model.keras").exists()
    dvc("pull", cwd=colleague)
    assert (colleague / "models/vgg19/model.keras").read_bytes() == (
        runners[0] / "models/vgg19/model.keras"
    ).read_bytes()
    run(["breakhis-predict", str(SAMPLE_TREE), "--out", "sample.csv", "--quiet"], colleague)
    predictions = (colleague / "sample.csv").read_text().splitlines()
    assert len(predictions) == 1 + 11 and predictions[0].startswith("path,")

    # anyone, with no clone: a model's folder by artifact name and version (DVC Studio is not
    # configured), its model file describing itself and evaluate's decision beside it
    fetched = tmp_path / "fetched"
    dvc("artifacts", "get", str(server), "custom-cnn", "--rev", "v1.0.0", "-o", str(fetched), cwd=tmp_path)
    assert (fetched / "model.keras").read_bytes() == (runners[0] / "models/custom/model.keras").read_bytes()
    assert (fetched / "decision.json").read_bytes() == (
        runners[0] / "models/custom/decision.json"
    ).read_bytes()


# ---- the summary, from experiments in git (no DVC run) ------------------------------------------------


def test_summary_reports_cross_validations_sweeps_and_missing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from breakhis.pipeline.matrix import Entry
    from commands.runners import main
    from tests.test_cross_validation import noisy_folds, repo_with_experiments

    folds = noisy_folds()  # cv-t-s42-f0..2
    repo = repo_with_experiments(tmp_path / "repo", [*folds, replace(folds[0], name="sweep-lr-1-s42")])
    monkeypatch.chdir(repo)

    entries = [Entry(r.name, "t", 42, fold, [f"split.fold={fold}"]) for fold, r in enumerate(folds)]
    entries += [
        Entry("cv-t-s42-f3", "t", 42, 3, ["split.fold=3"]),  # its runner failed
        Entry("sweep-lr-1-s42", "lr", 42, None, ["train.learning_rate=0.01", "seed=42"]),
        Entry("sweep-lr-2-s42", "lr", 42, None, ["train.learning_rate=0.1", "seed=42"]),  # failed too
    ]
    main(["summarise", json.dumps(as_matrix(entries)), "--out", "report.md"])
    report = (repo / "report.md").read_text()
    assert report.startswith("# Runner results: 4 of 6 experiments")
    assert "Missing (the runner failed or did not push): `cv-t-s42-f3`, `sweep-lr-2-s42`" in report
    assert "# Cross-validation `t`: 3 of 3 folds, seed 42" in report
    assert (repo / "cv/t/s42/summary.json").exists()
    auc = folds[0].metrics["custom"]["image"]["roc_auc"]
    assert f"| `sweep-lr-1-s42` | `train.learning_rate=0.01` | custom | {auc:.3f} |" in report
    assert "sweep-lr-2-s42` |" not in report

    with pytest.raises(ValueError, match="no experiment of the plan could be pulled"):
        main(["summarise", json.dumps(as_matrix(entries[3:4])), "--out", "none.md"])
    with pytest.raises(ValueError, match="MATRIX: not JSON"):
        main(["summarise", "{", "--out", "x.md"])
    with pytest.raises(ValueError, match="not a plan's matrix"):
        main(["summarise", '{"runs": []}', "--out", "x.md"])


def test_a_runner_refuses_an_entry_that_is_not_the_plans() -> None:
    from commands.runners import main

    with pytest.raises(ValueError, match=re.escape("ENTRY: not a matrix entry of `plan` ('overrides')")):
        main(["run", '{"name": "cv-x-s1-f0", "label": "x", "seed": 1, "fold": 0}'])
    with pytest.raises(ValueError, match="ENTRY: not a matrix entry"):
        main(["run", "not json"])
