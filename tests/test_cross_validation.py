"""Cross-validation summaries on hand-made folds, the command's reading of experiments from git,
and (slow) the real command running two folds as DVC experiments."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from breakhis.data.dataset import image_filename, patient_folder
from breakhis.evaluation.cross_validation.checks import check_folds
from breakhis.evaluation.cross_validation.documents import markdown, summary_json, write_summary
from breakhis.evaluation.cross_validation.folds import COLUMNS, FoldResult
from breakhis.evaluation.cross_validation.pooled import (
    OverlapError,
    patient_groups,
    pooled_intervals,
    pooled_predictions,
)
from breakhis.evaluation.cross_validation.summary import summarise_folds
from breakhis.evaluation.decision import choose_threshold
from breakhis.evaluation.metrics import evaluate_predictions
from breakhis.pipeline.experiments import check_label, experiment_name, parse_experiment_name
from breakhis.pipeline.param_types import YOUDEN

# A patient: (B|M, slide, malignant probabilities of their images)
Patient = tuple[str, str, list[float]]


def prediction_rows(patients: list[Patient], threshold: float) -> pd.DataFrame:
    """Rows of plots/evaluate/predictions/<model>.csv for these patients."""
    rows = []
    for letter, slide, probabilities in patients:
        subtype = "A" if letter == "B" else "DC"
        for i, probability in enumerate(probabilities):
            rows.append(
                {
                    "filename": image_filename(letter, subtype, "14", slide, 100, i + 1),
                    "patient": patient_folder(letter, subtype, "14", slide),
                    "magnification": 100,
                    "actual": "malignant" if letter == "M" else "benign",
                    "predicted": "malignant" if probability >= threshold else "benign",
                    "probability": probability,
                }
            )
    return pd.DataFrame(rows)


def make_fold(
    fold: int,
    models: dict[str, tuple[list[Patient], float]],
    *,
    folds: int = 3,
    seed: int = 42,
    strategy: str = "kfold",
    name: str | None = None,
) -> FoldResult:
    """One experiment: params, an evaluate.json computed by the real metric code, predictions."""
    predictions = {
        model: prediction_rows(patients, threshold) for model, (patients, threshold) in models.items()
    }
    first = next(iter(predictions.values()))
    rows = first.assign(target=(first["actual"] == "malignant").astype(int))
    metrics: dict[str, Any] = {
        "test_images": len(rows),
        "majority_baseline": {
            "class": "malignant",
            "image_accuracy": float(rows["target"].mean()),
            "patient_accuracy": float(rows.groupby("patient")["target"].first().mean()),
        },
        "ensemble_weights": {"custom": 1.0},
    }
    for model, frame in predictions.items():
        threshold = models[model][1]
        metrics[model] = {**evaluate_predictions(rows, frame["probability"].to_numpy(), threshold), "ci": {}}
    params = {
        "seed": seed,
        "split": {"strategy": strategy, "folds": folds, "fold": fold, "group_by": "root"},
        "evaluate": {"bootstrap_resamples": 200, "confidence": 0.95},
    }
    return FoldResult(
        name=name or experiment_name("t", seed, fold),
        rev=f"{fold:07d}" + "0" * 33,
        params=params,
        metrics=metrics,
        predictions=predictions,
        baseline="b" * 40,
    )


def separable_folds() -> list[FoldResult]:
    """Three folds, each perfectly separated at its own threshold, on different probability scales:
    per-fold ROC AUC 1, pooled ROC AUC 6/9 (a malignant image of fold k outranks the benign images
    of folds 0..k only)."""
    scales = [(0.1, 0.2, 0.15), (0.5, 0.6, 0.55), (0.8, 0.9, 0.85)]
    folds = []
    for fold, (benign, malignant, threshold) in enumerate(scales):
        patients: list[Patient] = [
            ("B", f"{fold}01AB", [benign] * 2),
            ("B", f"{fold}01CD", [benign] * 2),  # same slide root as the one above: one patient group
            ("M", f"{fold}02", [malignant] * 2),
            ("M", f"{fold}03", [malignant] * 2),
        ]
        colour = [(letter, slide, [0.5] * len(p)) for letter, slide, p in patients]
        folds.append(make_fold(fold, {"custom": (patients, threshold), "colour_baseline": (colour, 0.5)}))
    return folds


def noisy_folds(seed: int = 0, folds: int = 3, patients_per_fold: int = 10) -> list[FoldResult]:
    rng = np.random.default_rng(seed)
    results = []
    for fold in range(folds):
        patients: list[Patient] = []
        for p in range(patients_per_fold):
            letter = "M" if p % 3 else "B"
            centre = 0.65 if letter == "M" else 0.4
            probabilities = np.clip(rng.normal(centre, 0.2, size=4), 0, 1).round(6).tolist()
            patients.append((letter, f"{fold}{p:02d}", probabilities))
        ensemble = [(letter, slide, [min(1.0, x + 0.05) for x in probs]) for letter, slide, probs in patients]
        results.append(
            make_fold(fold, {"custom": (patients, 0.5), "ensemble": (ensemble, 0.45)}, folds=folds)
        )
    return results


# ---------------------------------------------------------------------------------------------
# the summary


def test_pooled_auc_ranks_all_folds_together_and_decisions_use_each_folds_threshold() -> None:
    summary = summarise_folds(separable_folds(), "t")
    pooled = summary.pooled["custom"]
    assert pooled["image_roc_auc"] == pytest.approx(6 / 9)
    # every image and patient is right at its own fold's threshold (one global 0.5 would miss fold 0 and 2)
    assert pooled["image_accuracy"] == 1.0
    assert pooled["image_balanced_accuracy"] == 1.0
    assert pooled["patient_recognition_rate"] == 1.0
    assert pooled["patient_accuracy"] == 1.0
    assert (pooled["images"], pooled["patients"], pooled["patient_groups"]) == (24, 12, 9)
    spread = summary.spread["custom"]["image_roc_auc"]
    assert (spread["mean"], spread["std"], spread["folds"]) == (1.0, 0.0, 3)


def test_mean_and_std_over_folds() -> None:
    results = noisy_folds()
    summary = summarise_folds(results, "t")
    accuracies = [r.metrics["custom"]["image"]["accuracy"] for r in results]
    spread = summary.spread["custom"]["image_accuracy"]
    assert spread["mean"] == pytest.approx(np.mean(accuracies))
    assert spread["std"] == pytest.approx(np.std(accuracies, ddof=1))
    table = summary.folds
    assert list(table["fold"].unique()) == [0, 1, 2]
    assert set(table["model"]) == {"custom", "ensemble", "majority_baseline"}
    custom = table[table["model"] == "custom"].set_index("fold")
    assert custom.loc[1, "image_roc_auc"] == pytest.approx(results[1].metrics["custom"]["image"]["roc_auc"])


def test_intervals_contain_the_point_estimate() -> None:
    summary = summarise_folds(noisy_folds(seed=3), "t")
    for model in ("custom", "ensemble"):
        pooled = summary.pooled[model]
        assert set(pooled["ci"]) == set(COLUMNS)
        for column in COLUMNS:
            interval = pooled["ci"][column]
            assert interval["low"] <= pooled[column] <= interval["high"], (model, column)
            assert interval["low"] < interval["high"]


def test_bootstrap_resamples_patient_groups() -> None:
    checked = check_folds(separable_folds())
    frame = pooled_predictions(checked, "custom")
    # SOB_B_A_14-001AB and SOB_B_A_14-001CD share the slide root 14-001: one group, drawn together
    assert frame.loc[frame["patient"] == "SOB_B_A_14-001AB", "group"].iloc[0] == "14-001"
    assert frame.groupby("group")["patient"].nunique().to_dict()["14-001"] == 2
    intervals = pooled_intervals(frame, resamples=200, confidence=0.95, seed=0)
    # every image right in every resample
    assert intervals["image_accuracy"] == {"low": 1.0, "high": 1.0, "resamples": 200}
    assert intervals["image_roc_auc"]["low"] < 6 / 9 < intervals["image_roc_auc"]["high"]


def test_groups_come_from_the_patient_group_column_or_the_slide_folder() -> None:
    rows = pd.DataFrame({"patient": ["SOB_B_A_14-22549AB", "SOB_B_A_14-22549CD", "SOB_M_DC_14-2773"]})
    assert patient_groups(rows, "root").tolist() == ["14-22549", "14-22549", "14-2773"]
    assert patient_groups(rows, "folder").tolist() == rows["patient"].tolist()
    rows["patient_group"] = ["g1", "g1", "g2"]
    assert patient_groups(rows, "root").tolist() == ["g1", "g1", "g2"]


def test_overlapping_folds_are_refused() -> None:
    results = separable_folds()
    twin = make_fold(
        1,
        {
            "custom": (
                [("B", "001AB", [0.1, 0.1]), ("M", "102", [0.6, 0.6])],  # 001AB's images are fold 0's
                0.5,
            ),
            "colour_baseline": ([("B", "001AB", [0.5, 0.5]), ("M", "102", [0.5, 0.5])], 0.5),
        },
    )
    with pytest.raises(OverlapError, match=r"cv-t-s42-f0 and cv-t-s42-f1.*overlap"):
        summarise_folds([results[0], twin, results[2]], "t")


def test_a_missing_fold_is_a_warning_and_named() -> None:
    results = separable_folds()
    summary = summarise_folds([results[0], results[2]], "t")
    assert summary.missing_folds == [1]
    assert any("fold(s) 1 of 3 missing" in warning for warning in summary.warnings)
    assert summary.pooled["custom"]["images"] == 16
    assert "**Warning: fold(s) 1 of 3 missing" in markdown(summary)


def test_folds_run_with_other_params_or_code_are_flagged() -> None:
    results = separable_folds()
    changed = dict(results[2].params, train={"epochs": 3})
    results[2] = FoldResult(
        results[2].name, results[2].rev, changed, results[2].metrics, results[2].predictions, code="other"
    )
    warnings = summarise_folds(results, "t").warnings
    assert any("different params: train.epochs" in warning for warning in warnings)
    assert any("different code" in warning for warning in warnings)


def test_a_fold_recorded_before_the_models_section_is_not_a_params_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fold's params.yaml is read at its commit in today's layout (`params_at`): folds run before
    the per-model sections left `train` compare equal to folds run after, with no false warning."""
    from breakhis.pipeline.experiments import params_at

    results = separable_folds()
    own = {"vgg19": {"epochs": 3}, "custom": {"dropout": 0.5}}
    old = dict(results[2].params, train={"epochs": 4, **own})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(old))
    subprocess.run([*git, "-C", str(tmp_path), "add", "params.yaml"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "old layout"], check=True)
    monkeypatch.chdir(tmp_path)
    recorded = params_at("HEAD")
    assert recorded == dict(results[2].params, train={"epochs": 4}, models=own)
    for index in range(3):  # folds 0 and 1 in today's layout, fold 2 as recorded before the move
        params = recorded if index == 2 else dict(results[index].params, train={"epochs": 4}, models=own)
        results[index] = FoldResult(
            results[index].name,
            results[index].rev,
            params,
            results[index].metrics,
            results[index].predictions,
        )
    assert not any("different params" in warning for warning in summarise_folds(results, "t").warnings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: [
                make_fold(0, {"custom": ([("B", "1", [0.1]), ("M", "2", [0.9])], 0.5)}, strategy="patient"),
                *r[1:],
            ],
            "cv-t-s42-f0: split.strategy is 'patient', not 'kfold'",
        ),
        (
            lambda r: [
                r[0],
                r[1],
                make_fold(2, {"custom": ([("B", "9", [0.1]), ("M", "8", [0.9])], 0.5)}, seed=7),
            ],
            "they differ in seed",
        ),
        (lambda r: [r[0], r[1], r[1]], "fold 1 is given twice"),
        (
            lambda r: [r[0], FoldResult(r[1].name, r[1].rev, r[1].params, r[1].metrics, {}), r[2]],
            r"cv-t-s42-f1 \(fold 1\): no plots/evaluate/predictions/custom.csv",
        ),
        (lambda r: [], "no experiments to summarise"),
    ],
)
def test_clear_errors(change: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        summarise_folds(change(separable_folds()), "t")


def test_majority_baseline_pools_as_the_fold_values_weighted_by_test_size() -> None:
    results = separable_folds()[:2] + [
        make_fold(
            2,
            {
                "custom": ([("B", "201", [0.2] * 6), ("M", "202", [0.9] * 2)], 0.5),
                "colour_baseline": ([("B", "201", [0.5] * 6), ("M", "202", [0.5] * 2)], 0.5),
            },
        )
    ]
    summary = summarise_folds(results, "t")
    # always "malignant": fold 0 and 1 have 4 of 8 images right, fold 2 2 of 8; patients 2/4, 2/4, 1/2
    assert summary.pooled["majority_baseline"]["image_accuracy"] == pytest.approx(10 / 24)
    assert summary.pooled["majority_baseline"]["patient_accuracy"] == pytest.approx(5 / 10)
    assert "ci" not in summary.pooled["majority_baseline"]


def test_markdown_json_csv_and_figure(tmp_path: Path) -> None:
    summary = summarise_folds(noisy_folds(), "t")
    text = write_summary(summary, tmp_path)
    for model in ("custom", "ensemble", "majority_baseline"):
        assert f"| {model} | " in text
    assert "## Pooled out-of-fold" in text and "## Mean ± std over folds" in text and "### ROC AUC" in text
    assert " ± " in text and "fold 2" in text and "![Per-fold and pooled ROC AUC](summary.png)" in text
    assert (tmp_path / "summary.md").read_text() == text
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary_json(summary)))
    assert saved["pooled"]["custom"]["images"] == 120
    assert set(saved["per_fold"]["custom"]["image_roc_auc"]) == {"0", "1", "2"}
    assert saved["mean_std"]["majority_baseline"]["image_accuracy"]["folds"] == 3
    folds = pd.read_csv(tmp_path / "folds.csv")
    assert len(folds) == 3 * 3 and {"fold", "model", *COLUMNS, "experiment", "rev"} <= set(folds.columns)
    assert (tmp_path / "summary.png").stat().st_size > 5000


def test_experiment_names_and_labels() -> None:
    assert experiment_name("base", 7, 3) == "cv-base-s7-f3"
    assert parse_experiment_name("cv-my-run-s7-f3") == ("my-run", 7, 3)
    assert parse_experiment_name("exp-1234") is None
    assert check_label("stain_v2.1") == "stain_v2.1"
    for bad in ("a/b", "-x", "a..b", "x y", ""):
        with pytest.raises(ValueError, match="--label"):
            check_label(bad)


# ---------------------------------------------------------------------------------------------
# the command: experiments read from git refs, no DVC run


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def commit_fold(repo: Path, result: FoldResult, baseline: str) -> str:
    """Write a fold's files, commit them as an experiment ref of `baseline`, restore the workspace."""
    (repo / "params.yaml").write_text(yaml.safe_dump(result.params))
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "metrics/evaluate.json").write_text(json.dumps(result.metrics))
    folder = repo / "plots/evaluate/predictions"
    folder.mkdir(parents=True, exist_ok=True)
    for model, frame in result.predictions.items():
        frame.to_csv(folder / f"{model}.csv", index=False)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", result.name)
    rev = git(repo, "rev-parse", "HEAD")
    git(repo, "update-ref", f"refs/exps/{baseline[:2]}/{baseline[2:]}/{result.name}", rev)
    git(repo, "reset", "-q", "--hard", baseline)
    return rev


def repo_with_experiments(repo: Path, results: list[FoldResult]) -> Path:
    """A git repository with one commit (params.yaml) and `results` as experiments of it."""
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "params.yaml").write_text("seed: 42\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    baseline = git(repo, "rev-parse", "HEAD")
    for result in results:
        commit_fold(repo, result, baseline)
    return repo


@pytest.fixture
def experiments_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = repo_with_experiments(tmp_path / "repo", noisy_folds())
    monkeypatch.chdir(repo)
    return repo


def test_command_summarises_a_label_from_git(
    experiments_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from commands.cross_validate import main

    main(["--summarise", "--label", "t"])
    out = capsys.readouterr().out
    assert "# Cross-validation `t`: 3 of 3 folds, seed 42" in out and "| custom | " in out
    folder = experiments_repo / "cv/t/s42"
    assert {p.name for p in folder.iterdir()} == {"summary.md", "summary.json", "folds.csv", "summary.png"}
    assert json.loads((folder / "summary.json").read_text())["experiments"][2]["name"] == "cv-t-s42-f2"
    assert git(experiments_repo, "status", "--porcelain") == "?? cv/"


def test_command_names_a_missing_fold_and_an_unknown_experiment(
    experiments_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from commands.cross_validate import main

    main(["--summarise", "cv-t-s42-f0", "cv-t-s42-f2"])
    captured = capsys.readouterr()
    assert "warning: fold(s) 1 of 3 missing" in captured.err
    with pytest.raises(ValueError, match=r"unknown experiment or revision: cv-t-s42-f9 \(cross-validation"):
        main(["--summarise", "cv-t-s42-f0", "cv-t-s42-f9"])
    with pytest.raises(ValueError, match="no experiments named cv-other-s<seed>-f<fold>; labels here: t"):
        main(["--summarise", "--label", "other"])
    with pytest.raises(ValueError, match="use --seed"):
        main(["-S", "seed=3"])


class FakeDvc:
    """Stands in for `dvc` in the command: an experiment run commits that fold's files as DVC would."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.baseline = git(repo, "rev-parse", "HEAD")
        self.calls: list[list[str]] = []
        self.queued: list[str] = []

    def __call__(self, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        stdout = ""
        if args[:2] == ("exp", "run"):
            name = args[args.index("-n") + 1]
            if "--queue" in args:
                self.queued.append(name)
            else:
                self.run(name)
        elif args[:2] == ("exp", "remove"):
            for name in args[2:]:
                ref = f"refs/exps/{self.baseline[:2]}/{self.baseline[2:]}/{name}"
                git(self.repo, "update-ref", "-d", ref)
        elif args[:2] == ("queue", "start"):
            for name in self.queued:
                self.run(name)
            # the user commits while the queued folds run: HEAD moves, the folds' baseline does not
            git(self.repo, "commit", "--allow-empty", "-q", "-m", "an edit while the folds run")
        elif args[:2] == ("queue", "status"):
            stdout = "Task     Name    Created    Status\n" + "".join(
                f"abc{i:04d}  {name}  05:07 AM   Success\n" for i, name in enumerate(self.queued)
            )
        return subprocess.CompletedProcess(list(args), 0, stdout, "")

    def run(self, name: str) -> None:
        parsed = parse_experiment_name(name)
        assert parsed
        commit_fold(self.repo, noisy_folds()[parsed[2]], self.baseline)

    def runs(self) -> list[str]:
        return [call[call.index("-n") + 1] for call in self.calls if call[:2] == ["exp", "run"]]


@pytest.fixture
def fake_dvc(experiments_repo: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDvc:
    from breakhis.evaluation.cross_validation import runs

    fake = FakeDvc(experiments_repo)
    monkeypatch.setattr(runs, "dvc", fake)
    return fake


def test_command_runs_every_fold_with_the_overrides(
    fake_dvc: FakeDvc, capsys: pytest.CaptureFixture[str]
) -> None:
    from commands.cross_validate import main

    main(["--label", "t", "--folds", "3", "--force", "-S", "train.epochs=2"])
    assert fake_dvc.calls[0] == ["exp", "remove", "cv-t-s42-f0", "cv-t-s42-f1", "cv-t-s42-f2"]
    assert fake_dvc.runs() == ["cv-t-s42-f0", "cv-t-s42-f1", "cv-t-s42-f2"]
    run = fake_dvc.calls[1]
    assert run[:5] == ["exp", "run", "--temp", "-n", "cv-t-s42-f0"]
    assert " ".join(run[5:]) == (
        "-S split.strategy=kfold -S split.folds=3 -S seed=42 -S train.epochs=2 -S split.fold=0"
    )
    assert "# Cross-validation `t`: 3 of 3 folds, seed 42" in capsys.readouterr().out


def test_command_resumes_and_queues(fake_dvc: FakeDvc, capsys: pytest.CaptureFixture[str]) -> None:
    from commands.cross_validate import main

    with pytest.raises(ValueError, match="exist on this commit already.*--resume.*--force"):
        main(["--label", "t", "--folds", "3"])
    git(
        fake_dvc.repo,
        "update-ref",
        "-d",
        f"refs/exps/{fake_dvc.baseline[:2]}/{fake_dvc.baseline[2:]}/cv-t-s42-f1",
    )
    main(["--label", "t", "--folds", "3", "--resume", "--queue", "--jobs", "2"])
    assert fake_dvc.runs() == ["cv-t-s42-f1"]
    assert ["queue", "start", "--jobs", "2"] in fake_dvc.calls
    captured = capsys.readouterr()
    assert "cv-t-s42-f0 exists, kept (--resume)" in captured.err and "cv-t-s42-f1: Success" in captured.err
    assert "3 of 3 folds" in captured.out


def test_command_refuses_overrides_it_sets_itself() -> None:
    from breakhis.evaluation.cross_validation.runs import check_overrides

    check_overrides(["train.epochs=2", "train.image_size=[32, 32]"])
    for reserved in ("split.fold=1", "seed=3", "params.yaml:split.strategy=patient", "split.folds=4"):
        with pytest.raises(ValueError, match="set by this command"):
            check_overrides([reserved])


# ---------------------------------------------------------------------------------------------
# end to end: two folds as real DVC experiments on tiny params


@pytest.mark.slow
def test_cross_validate_runs_two_folds_as_experiments_and_summarises_them(tmp_path: Path) -> None:
    """With a profile (no validation split, snapshots): the label is the profile's, every fold
    trains on its train and validation patients, and the summary adds the per-epoch curve and the
    ensemble chosen out of fold."""
    from tests.pipeline_repo import TINY, commit, make_repo, run, set_args, stage

    repo = make_repo(tmp_path / "project")
    profile = {
        "version": 3,
        "description": "tiny, no validation split",
        "params": {"train": {"validation": "none", "lr_schedule": "cosine", "snapshot_epochs": [1]}},
    }
    (repo / "profiles").mkdir(exist_ok=True)
    (repo / "profiles/tiny.yaml").write_text(yaml.safe_dump(profile))
    commit(repo, "a profile")
    before = (repo / "params.yaml").read_text()
    output = stage("commands.cross_validate", "--profile", "tiny", "--folds", "2", *set_args(TINY), cwd=repo)
    assert "# Cross-validation `tiny-v3`: 2 of 2 folds, seed 42" in output

    # the workspace is as it was: the folds ran in temporary copies of the repository
    assert (repo / "params.yaml").read_text() == before
    assert run(["git", "diff", "--stat", "HEAD"], repo) == ""
    assert not (repo / "dvc.lock").exists() and not (repo / "metrics/evaluate.json").exists()

    folder = repo / "cv/tiny-v3/s42"
    summary = json.loads((folder / "summary.json").read_text())
    assert [e["name"] for e in summary["experiments"]] == ["cv-tiny-v3-s42-f0", "cv-tiny-v3-s42-f1"]
    assert summary["missing_folds"] == [] and summary["folds"] == 2
    for model in ("custom", "vgg19", "resnet50", "ensemble", "ensemble_oof"):
        pooled = summary["pooled"][model]
        assert pooled["images"] == 15 * 2 * 2 and pooled["patients"] == 15  # every image once
        for column in COLUMNS:
            interval = pooled["ci"].get(column)
            if interval:
                assert interval["low"] <= pooled[column] <= interval["high"], (model, column)
    assert "majority_baseline" in summary["pooled"]
    assert set(summary["ensemble_choice"]["per_test_fold"]) == {"0", "1"}
    # snapshots after epoch 1, and each model's last epoch (custom 3, vgg19 5, resnet50 2)
    for model, last in (("custom", 3), ("vgg19", 5), ("resnet50", 2)):
        curve = summary["epochs"][model]
        assert [row["epoch"] for row in curve["by_epoch"]] == [1, last] and curve["last_epoch"] == last
        assert all(row["images"] == 60 for row in curve["by_epoch"])
    folds = pd.read_csv(folder / "folds.csv")
    assert sorted(folds["fold"].unique()) == [0, 1]
    assert (folder / "summary.png").stat().st_size > 5000
    text = (folder / "summary.md").read_text()
    assert text.strip() in output
    assert "## Pooled ROC AUC by epoch" in text and "## The ensemble chosen out of fold" in text

    # summarising again trains nothing; one fold alone is summarised with a warning naming the other
    again = stage("commands.cross_validate", "--summarise", "cv-tiny-v3-s42-f1", cwd=repo)
    assert "Running stage" not in again and "fold(s) 0 of 2 missing" in again
    refused = stage(
        "commands.cross_validate", "--profile", "tiny", "--folds", "2", *set_args(TINY), cwd=repo, check=False
    )
    assert "exist on this commit already" in refused

    # a paired ablation on the same folds: the profile's cross-validation is the reference as it is
    ablation = stage(
        "commands.ablate", "--profile", "tiny", "--folds", "2", "--seeds", "42", *set_args(TINY),
        "--variant", "grey", "train.colour=grey", cwd=repo,
    )  # fmt: skip
    assert "cv-tiny-v3-s42-f0 exists, kept" in ablation and "cv-tiny-v3-s42-f1 exists, kept" in ablation
    assert "# Cross-validation `tiny-v3-grey`: 2 of 2 folds, seed 42" in ablation
    grey = json.loads((repo / "cv/tiny-v3-grey/s42/summary.json").read_text())["experiments"][0]
    variant_params = yaml.safe_load(run(["git", "show", f"{grey['rev']}:params.yaml"], repo))
    assert variant_params["train"]["colour"] == "grey"
    result = json.loads((repo / "cv/tiny-v3/ablation.json").read_text())
    assert result["variants"] == {"grey": ["train.colour=grey"]}
    for model in ("custom", "vgg19", "resnet50", "ensemble", "ensemble_oof", "colour_baseline"):
        entry = result["results"]["grey"][model]
        assert entry["seeds"]["42"]["base"] == pytest.approx(summary["pooled"][model]["image_roc_auc"])
        assert entry["pooled"]["low"] <= entry["pooled"]["difference"] <= entry["pooled"]["high"]
    assert result["results"]["grey"]["colour_baseline"]["pooled"]["difference"] == 0  # it sees no model
    assert "## grey: `train.colour=grey`" in (repo / "cv/tiny-v3/ablation.md").read_text()
    # --queue is covered with a stand-in for dvc above: a real queued re-run retrains every stage
    # (DVC does not run-cache stages with `cache: false` outputs) and would double this test's time


# ---------------------------------------------------------------------------------------------
# the ensemble chosen out of fold


def scored_patients(
    letters: list[str], slides: list[str], rng: np.random.Generator, signal: float, noise: float
) -> list[Patient]:
    """Four images per patient: 0.5 moved towards the truth by `signal / 2`, plus Gaussian noise."""
    return [
        (
            letter,
            slide,
            np.clip(0.5 + signal * ((letter == "M") - 0.5) + rng.normal(0, noise, 4), 0, 1).round(6).tolist(),
        )
        for letter, slide in zip(letters, slides, strict=True)
    ]


def three_model_folds(seed: int = 0, folds: int = 4, perfect_vgg_in: int | None = None) -> list[FoldResult]:
    """custom and resnet50 informative with independent noise, vgg19 pure noise, a weak colour
    baseline; the fold ensemble the mean of the three. `perfect_vgg_in`: in that fold only, vgg19
    separates the classes perfectly."""
    rng = np.random.default_rng(seed)
    results = []
    for fold in range(folds):
        letters = ["M" if p % 3 else "B" for p in range(9)]
        slides = [f"{fold}{p:02d}" for p in range(9)]
        custom = scored_patients(letters, slides, rng, 0.3, 0.25)
        resnet = scored_patients(letters, slides, rng, 0.3, 0.25)
        perfect = fold == perfect_vgg_in
        vgg = scored_patients(letters, slides, rng, 0.9 if perfect else 0.0, 0.01 if perfect else 0.25)
        colour = scored_patients(letters, slides, rng, 0.05, 0.25)
        ensemble = [
            (letter, slide, np.mean([a, b, c], axis=0).round(6).tolist())
            for (letter, slide, a), (_, _, b), (_, _, c) in zip(custom, vgg, resnet, strict=True)
        ]
        entries = {
            "custom": (custom, 0.5),
            "vgg19": (vgg, 0.5),
            "resnet50": (resnet, 0.5),
            "ensemble": (ensemble, 0.5),
            "colour_baseline": (colour, 0.5),
        }
        results.append(make_fold(fold, entries, folds=folds, seed=seed))
    return results


def test_the_ensemble_is_chosen_on_the_other_folds_and_leaves_out_models_below_the_colour_baseline() -> None:
    summary = summarise_folds(three_model_folds(), "t")
    assert summary.models[:5] == ["custom", "vgg19", "resnet50", "ensemble", "ensemble_oof"]
    choice = summary.ensemble_choice
    assert choice is not None and sorted(choice.per_fold) == [0, 1, 2, 3]
    for chosen in choice.per_fold.values():
        assert "vgg19" not in chosen.members  # at chance: never beats the colour baseline
    assert choice.all_folds.members == ("custom", "resnet50")
    pooled = summary.pooled
    assert pooled["ensemble_oof"]["image_roc_auc"] >= max(
        pooled[m]["image_roc_auc"] for m in ("custom", "resnet50")
    )
    assert pooled["ensemble_oof"]["image_roc_auc"] > pooled["ensemble"]["image_roc_auc"]  # vgg19 dragged it
    assert pooled["ensemble_oof"]["images"] == pooled["custom"]["images"]
    per_fold = summary.folds[summary.folds["model"] == "ensemble_oof"]
    assert len(per_fold) == 4 and per_fold["image_roc_auc"].notna().all()
    text = markdown(summary)
    assert "## The ensemble chosen out of fold" in text and "-S 'evaluate.members=[custom, resnet50]'" in text
    assert summary_json(summary)["ensemble_choice"]["recommended"] == {
        "evaluate.members": ["custom", "resnet50"],
        "evaluate.threshold": round(choice.all_folds.threshold, 3),
    }
    # each test fold's threshold: Youden's J of its members' mean on the other folds' images
    checked = check_folds(three_model_folds())
    frames = {m: pooled_predictions(checked, m).sort_values("filename") for m in ("custom", "resnet50")}
    others = frames["custom"]["fold"].to_numpy() != 1
    mean = (frames["custom"]["probability"].to_numpy() + frames["resnet50"]["probability"].to_numpy()) / 2
    assert choice.per_fold[1].members == ("custom", "resnet50")
    expected = choose_threshold(frames["custom"]["target"].to_numpy()[others], mean[others], YOUDEN)
    assert choice.per_fold[1].threshold == pytest.approx(expected)
    oof = choice.pooled
    assert (oof.loc[oof["fold"] == 1, "threshold"] == choice.per_fold[1].threshold).all()


def test_a_folds_own_predictions_never_choose_its_members() -> None:
    """vgg19 perfect in fold 2 only: fold 2's members are chosen without it (its labels unseen), the
    other folds' choices see it."""
    plain = summarise_folds(three_model_folds(), "t").ensemble_choice
    changed = summarise_folds(three_model_folds(perfect_vgg_in=2), "t").ensemble_choice
    assert plain is not None and changed is not None
    assert changed.per_fold[2] == plain.per_fold[2]
    assert any(
        changed.per_fold[f].model_aucs["vgg19"] > plain.per_fold[f].model_aucs["vgg19"] for f in (0, 1, 3)
    )


def test_repeated_cross_validation_gives_each_seed_and_the_mean_over_seeds() -> None:
    from breakhis.evaluation.cross_validation.documents import repeated_markdown

    summaries = [summarise_folds(three_model_folds(seed=seed), "t") for seed in (7, 8)]
    text = repeated_markdown(summaries)
    assert "# Repeated cross-validation `t`: 2 seeds" in text and "| seed 7 | seed 8 | mean ± std |" in text
    aucs = [s.pooled["ensemble_oof"]["image_roc_auc"] for s in summaries]
    row = next(line for line in text.splitlines() if line.startswith("| ensemble_oof | ROC AUC |"))
    assert f"{np.mean(aucs):.3f} ± {np.std(aucs, ddof=1):.3f}" in row
    assert "| majority_baseline | accuracy |" in text


# ---------------------------------------------------------------------------------------------
# task: subtype


def as_subtype_fold(result: FoldResult, majority: str = "DC") -> FoldResult:
    """The fold as a subtype run wrote it: every image's eight probabilities (its malignant
    probability q on DC, 1 - q on A; the derived P(malignant) is q again), actual and predicted
    subtype, the majority subtype of its train split, and `task: subtype`."""
    predictions = {}
    for model, frame in result.predictions.items():
        q = frame["probability"].to_numpy()
        columns = {f"p_{code}": 0.0 for code in ("A", "F", "PT", "TA", "DC", "LC", "MC", "PC")}
        predictions[model] = frame.assign(
            actual_subtype=np.where(frame["actual"] == "malignant", "DC", "A"),
            predicted_subtype=np.where(q > 0.5, "DC", "A"),
            **columns | {"p_A": 1 - q, "p_DC": q},
        )
    metrics = {**result.metrics, "majority_subtype_baseline": {"subtype": majority}}
    return FoldResult(
        result.name, result.rev, {**result.params, "task": "subtype"}, metrics, predictions, result.baseline
    )


def test_subtype_folds_pool_the_subtype_metrics_beside_the_majority_subtype(tmp_path: Path) -> None:
    """Separable folds on three probability scales: the subtype call (the larger of p_A and p_DC,
    i.e. q > 0.5) is wrong for fold 0's malignant images (q 0.2) and fold 2's benign ones (q 0.8):
    8 of 24 images, so subtype accuracy 16/24; recall A 8/12 (fold 2's benign wrong), DC 8/12."""
    summary = summarise_folds([as_subtype_fold(r) for r in separable_folds()], "t")
    pooled = summary.pooled["custom"]["subtype"]
    assert pooled["image"]["accuracy"] == pytest.approx(16 / 24)
    assert pooled["image"]["balanced_accuracy"] == pytest.approx((8 / 12 + 8 / 12) / 2)
    assert pooled["per_class"]["A"]["recall"] == pytest.approx(8 / 12)
    assert (
        pooled["ci"]["subtype_macro_f1"]["low"]
        <= pooled["image"]["macro_f1"]
        <= pooled["ci"]["subtype_macro_f1"]["high"]
    )
    # always DC: accuracy 6/12, balanced accuracy 1/2
    majority = summary.pooled["majority_subtype_baseline"]
    assert majority["subtypes"] == ["DC"] and majority["image"]["accuracy"] == pytest.approx(0.5)
    assert majority["image"]["balanced_accuracy"] == pytest.approx(0.5)
    assert "majority_subtype_baseline" not in summary.models  # not a row of the binary tables
    text = markdown(summary)
    assert "## Subtypes, pooled out-of-fold" in text and "| majority subtype of train (DC) |" in text
    write_summary(summary, tmp_path)  # JSON-safe
    assert json.loads((tmp_path / "summary.json").read_text())["pooled"]["custom"]["subtype"]["image"][
        "accuracy"
    ]


def test_folds_of_two_tasks_are_not_one_cross_validation() -> None:
    folds = separable_folds()
    with pytest.raises(ValueError, match=r"they differ in task \(cv-t-s42-f0 subtype, cv-t-s42-f1 binary"):
        summarise_folds([as_subtype_fold(folds[0]), *folds[1:]], "t")


def test_the_ensemble_chosen_out_of_fold_averages_its_members_subtype_probabilities() -> None:
    """Its eight probabilities are the mean of the members it chose for the fold (p_DC = q here, so
    p_DC equals its own malignant probability), not the fold ensemble's."""
    summary = summarise_folds([as_subtype_fold(r) for r in three_model_folds()], "t")
    chosen = summary.ensemble_choice.pooled
    np.testing.assert_allclose(chosen["p_DC"], chosen["probability"])
    np.testing.assert_allclose(chosen["p_A"], 1 - chosen["probability"])
    ensemble = summary.pooled["ensemble"]["subtype"]["image"]["accuracy"]
    assert summary.pooled["ensemble_oof"]["subtype"]["image"]["accuracy"] != pytest.approx(ensemble)


# ---------------------------------------------------------------------------------------------
# CV decides, the pipeline obeys: the ensemble a pipeline run should use, chosen over the seeds


def test_the_pipeline_ensemble_is_chosen_over_seeds_and_never_loses_to_its_best_member() -> None:
    from breakhis.evaluation.cross_validation.documents import recommendation_lines, recommended_yaml
    from breakhis.evaluation.cross_validation.ensemble import TOLERANCE
    from breakhis.evaluation.cross_validation.runs import recommend

    summaries = [summarise_folds(three_model_folds(seed=seed), "t") for seed in (7, 8, 9)]
    choice = recommend(summaries)
    assert choice is not None and len(choice.candidates) == 7  # every non-empty set of three models
    assert "vgg19" not in choice.members  # pure noise
    for summary in summaries:
        seed = summary.settings.seed
        tables = {
            m: summary.predictions[m].sort_values("filename").reset_index(drop=True) for m in choice.members
        }
        mean = np.mean([tables[m]["probability"] for m in choice.members], axis=0)
        auc = roc_auc_score(tables[choice.members[0]]["target"], mean)
        assert choice.aucs[seed] == pytest.approx(auc)
        best = max(summary.pooled[m]["image_roc_auc"] for m in choice.members)
        assert choice.aucs[seed] >= best - TOLERANCE
    text = "\n".join(recommendation_lines(choice))
    assert (
        "## The ensemble a pipeline run should use" in text
        and f"members: [{', '.join(choice.members)}]" in text
    )
    assert yaml.safe_load(recommended_yaml(choice)) == {
        "evaluate": {"members": list(choice.members), "threshold": round(choice.threshold, 3)}
    }


def test_a_set_that_loses_to_its_best_member_in_one_seed_is_not_chosen_whatever_its_mean() -> None:
    """Seed 1: a alone is perfect and b drags the pair down; seed 2: b is strong and the pair best.
    The pair has the highest mean over the seeds, but loses to a in seed 1."""
    from breakhis.evaluation.cross_validation.ensemble import choose_over_seeds

    target = [0, 0, 0, 1, 1, 1]
    seeds = {
        1: pd.DataFrame(
            {"target": target, "a": [0.1, 0.2, 0.3, 0.7, 0.8, 0.9], "b": [0.9, 0.1, 0.1, 0.1, 0.1, 0.9]}
        ),
        2: pd.DataFrame(
            {"target": target, "a": [0.5, 0.6, 0.4, 0.5, 0.4, 0.6], "b": [0.1, 0.3, 0.35, 0.3, 0.7, 0.9]}
        ),
    }
    choice = choose_over_seeds(seeds, ["a", "b"])
    means = {members: np.mean(list(aucs.values())) for members, aucs in choice.candidates}
    assert max(means, key=means.__getitem__) == ("a", "b")  # the best mean ...
    assert choice.aucs[1] >= choice.best_member[1][1] - 0.01
    assert choice.members != ("a", "b")  # ... but it lost to a in seed 1 by more than the tolerance
    assert choice.members == max((("a",), ("b",)), key=means.__getitem__)


def test_a_profile_that_ships_another_ensemble_than_cross_validation_chose_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from breakhis.evaluation.cross_validation.ensemble import SeedsChoice
    from breakhis.evaluation.cross_validation.runs import check_profile
    from breakhis.pipeline.profiles import load_profile

    profile = load_profile("real-patches")
    ships = profile.params.get("evaluate.members", ["custom", "vgg19", "resnet50"])
    other = ("vgg19",) if list(ships) != ["vgg19"] else ("custom",)
    choice = SeedsChoice(other, 0.41, {1: 0.7}, {1: (other[0], 0.7)}, [])
    check_profile(f"real-patches-v{profile.version}", choice)
    warning = capsys.readouterr().err
    assert f"profiles/real-patches.yaml version {profile.version} ships evaluate.members" in warning
    assert f"chose {list(other)} and 0.41" in warning and "recommended.yaml" in warning
    same = SeedsChoice(
        tuple(ships), profile.params.get("evaluate.threshold"), {1: 0.7}, {1: (ships[0], 0.7)}, []
    )
    check_profile(f"real-patches-v{profile.version}", same)
    check_profile("not-a-profile-v3", choice)
    assert capsys.readouterr().err == ""


def test_how_closely_a_model_follows_the_colour_baseline_over_patients() -> None:
    from breakhis.evaluation.cross_validation.pooled import follows_colour

    summary = summarise_folds(three_model_folds(), "t")
    colour = summary.predictions["colour_baseline"]
    assert follows_colour(colour, colour) == pytest.approx(1.0)
    assert follows_colour(colour.assign(probability=1 - colour["probability"]), colour) == pytest.approx(-1.0)
    assert follows_colour(colour.assign(probability=0.5), colour) is None  # constant: undefined
    rho = summary.pooled["custom"]["colour_spearman"]
    assert rho == pytest.approx(follows_colour(summary.predictions["custom"], colour)) and -1 < rho < 1
    assert "colour_spearman" not in summary.pooled["colour_baseline"]
    assert "| custom | " in markdown(summary).split("Following the stain")[1].split("##")[0]


# ---------------------------------------------------------------------------------------------
# paired ablations on fixed folds


def sharpened(results: list[FoldResult], model: str, amount: float) -> list[FoldResult]:
    """The folds with `model`'s probabilities moved `amount` towards each image's true class."""
    changed = []
    for result in results:
        frame = result.predictions[model]
        truth = (frame["actual"] == "malignant").astype(float)
        moved = frame.assign(probability=(frame["probability"] + amount * (2 * truth - 1)).clip(0, 1))
        changed.append(
            FoldResult(
                result.name,
                result.rev,
                result.params,
                result.metrics,
                {**result.predictions, model: moved},
                result.baseline,
            )
        )
    return changed


def test_a_paired_ablation_names_the_lever_that_holds_in_every_seed() -> None:
    from breakhis.evaluation.cross_validation.ablation import (
        HOLDS,
        HURTS,
        NO_EFFECT,
        Settings,
        ablation_markdown,
        compare_variant,
    )

    seeds = (7, 8)
    reference = {seed: summarise_folds(three_model_folds(seed=seed), "t") for seed in seeds}
    better = {
        seed: summarise_folds(sharpened(three_model_folds(seed=seed), "custom", 0.3), "t-v") for seed in seeds
    }
    worse = {
        seed: summarise_folds(sharpened(three_model_folds(seed=seed), "resnet50", -0.3), "t-w")
        for seed in seeds
    }
    settings = Settings(resamples=300, confidence=0.95, seed=0)
    gained = compare_variant(reference, better, settings)
    assert gained["custom"]["verdict"] == HOLDS
    assert gained["vgg19"]["verdict"] == NO_EFFECT and gained["vgg19"]["pooled"]["difference"] == 0
    for seed in seeds:
        entry = gained["custom"]["seeds"][seed]
        assert entry["base"] == pytest.approx(reference[seed].pooled["custom"]["image_roc_auc"])
        assert entry["new"] == pytest.approx(better[seed].pooled["custom"]["image_roc_auc"])
        assert entry["low"] > 0 and entry["verdict"] == "better"
    pooled = gained["custom"]["pooled"]  # both seeds' images together
    assert min(e["difference"] for e in gained["custom"]["seeds"].values()) <= pooled["difference"]
    assert compare_variant(reference, worse, settings)["resnet50"]["verdict"] == HURTS
    text = ablation_markdown("t", {"sharper": ["train.x=1"]}, {"sharper": gained}, 0.95)
    row = next(line for line in text.splitlines() if line.startswith("| custom |"))
    assert "**better**" in row and f"| {HOLDS} |" in row and "## sharper: `train.x=1`" in text
    with pytest.raises(ValueError, match="pair them seed by seed"):
        compare_variant(reference, {7: better[7]}, settings)


def test_the_ablate_command_refuses_unnamed_or_empty_variants() -> None:
    from commands.ablate import parse_args

    with pytest.raises(ValueError, match="give its overrides as KEY=VALUE"):
        parse_args(["--variant", "grey", "--seeds", "1"])
    with pytest.raises(ValueError, match="its own name"):
        parse_args(["--variant", "a", "x=1", "--variant", "a", "y=2", "--seeds", "1"])
    with pytest.raises(ValueError, match="its own name"):
        parse_args(["--variant", "reference", "x=1", "--seeds", "1"])
    args = parse_args(
        ["--variant", "grey", "train.colour=grey", "--seeds", "1", "2", "--profile", "real-patches"]
    )
    assert args.label.startswith("real-patches-v") and args.variant == [["grey", "train.colour=grey"]]
