"""The paired comparison of two runs: verdicts on crafted predictions, `not comparable` for other
test images, and the command on revisions of a git repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from breakhis.evaluation.bootstrap import BETTER, NOISE, NOT_COMPARABLE, WORSE
from breakhis.evaluation.comparison import compare_runs, comparison_markdown, paired_comparison

SETTINGS = {"resamples": 300, "confidence": 0.95, "seed": 0}


def predictions(correct: np.ndarray, confidence: np.ndarray | float = 0.9) -> pd.DataFrame:
    """20 patients (10 benign, 10 malignant) of 5 images each; `correct` says, per image, whether
    the run classifies it right, with `confidence` as the probability of the class it picks."""
    patients = np.repeat([f"SOB_{'BM'[i >= 10]}_X-14-{i:03d}" for i in range(20)], 5)
    actual = np.where(np.repeat(np.arange(20) >= 10, 5), "malignant", "benign")
    predicted = np.where(correct, actual, np.where(actual == "malignant", "benign", "malignant"))
    probability = np.where(predicted == "malignant", confidence, 1 - np.asarray(confidence))
    return pd.DataFrame(
        {
            "filename": [
                f"{p}-100-{n:03d}.png" for p, n in zip(patients, np.tile(np.arange(5), 20), strict=True)
            ],
            "patient": patients,
            "patient_group": patients,
            "magnification": 100,
            "actual": actual,
            "predicted": predicted,
            "probability": probability,
        }
    )


def half_right() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return predictions(rng.uniform(size=100) < 0.5, rng.uniform(0.5, 1.0, size=100))


def test_a_copy_is_within_noise_with_zero_difference() -> None:
    base = half_right()
    result = paired_comparison(
        base, base.sample(frac=1, random_state=0), **SETTINGS
    )  # row order is irrelevant
    assert result["comparable"] and result["patient_groups"] == 20
    for entry in result["metrics"].values():
        assert entry["difference"] == 0 and entry["low"] == entry["high"] == 0
        assert entry["verdict"] == NOISE


def test_a_strictly_better_run_is_better_and_the_reverse_worse() -> None:
    base, perfect = half_right(), predictions(np.ones(100, dtype=bool))
    better = paired_comparison(base, perfect, **SETTINGS)
    assert {name: e["verdict"] for name, e in better["metrics"].items()} == dict.fromkeys(
        ("image_accuracy", "balanced_accuracy", "roc_auc", "patient_recognition_rate"), BETTER
    )
    assert better["metrics"]["image_accuracy"]["new"] == 1.0
    worse = paired_comparison(perfect, base, **SETTINGS)
    assert all(e["verdict"] == WORSE for e in worse["metrics"].values())


def test_a_small_change_on_one_patient_is_within_noise() -> None:
    base = half_right()
    changed = base.copy()
    wrong = changed.index[
        (changed["patient"] == changed["patient"].iloc[0]) & (changed["predicted"] != changed["actual"])
    ]
    changed.loc[wrong, "predicted"] = changed.loc[wrong, "actual"]  # one patient's errors fixed
    result = paired_comparison(base, changed, **SETTINGS)
    assert result["metrics"]["image_accuracy"]["difference"] > 0
    assert result["metrics"]["image_accuracy"]["verdict"] == NOISE


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda f: f.iloc[5:], "the test images differ"),
        (lambda f: f.assign(filename=f["filename"].str.replace("-100-", "-200-")), "the test images differ"),
        (lambda f: f.assign(actual=f["actual"][::-1].to_numpy()), "another actual"),
        (lambda f: pd.concat([f, f.iloc[:1]]), "list an image twice"),
        (lambda f: f.drop(columns="probability"), "no probability column"),
        (
            lambda f: f.assign(predicted_subtype="DC"),
            "the base run predicts benign vs malignant, the new run the eight subtypes (task differs)",
        ),
    ],
)
def test_other_test_images_are_not_comparable(change, reason: str) -> None:
    base = half_right()
    result = paired_comparison(base, change(base.copy()), **SETTINGS)
    assert not result["comparable"] and result["verdict"] == NOT_COMPARABLE
    assert reason in result["reason"]


def test_a_model_only_one_run_has_is_not_comparable_and_the_table_says_so() -> None:
    base = half_right()
    results = compare_runs({"custom": base}, {"custom": base, "vgg19": base}, **SETTINGS)
    assert results["vgg19"] == {
        "comparable": False,
        "verdict": NOT_COMPARABLE,
        "reason": "no predictions in the base",
    }
    table = "\n".join(comparison_markdown(results, "main", "workspace", 0.95))
    assert "| vgg19 | all | | | | not comparable: no predictions in the base |" in table
    assert "| custom | ROC AUC |" in table and "within noise" in table


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_command_compares_two_revisions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from commands.compare import main

    git("init", "-q", cwd=tmp_path)
    git("config", "user.email", "t@example.com", cwd=tmp_path)
    git("config", "user.name", "t", cwd=tmp_path)
    folder = tmp_path / "plots/evaluate/predictions"
    folder.mkdir(parents=True)
    half_right().to_csv(folder / "custom.csv", index=False)
    git("add", ".", cwd=tmp_path)
    git("commit", "-qm", "base", cwd=tmp_path)
    predictions(np.ones(100, dtype=bool)).to_csv(folder / "custom.csv", index=False)
    monkeypatch.chdir(tmp_path)

    main(["HEAD"])  # against the workspace
    out = capsys.readouterr()
    assert "| custom | ROC AUC |" in out.out and "**better**" in out.out
    assert "20 test patient groups" in out.out
    assert "verdicts: 4 better" in out.err
    with pytest.raises(ValueError, match="unknown experiment or revision: nope"):
        main(["nope"])
    (folder / "custom.csv").unlink()
    with pytest.raises(ValueError, match=r"no test predictions .* in the workspace"):
        main(["HEAD"])
