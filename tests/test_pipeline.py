"""End to end: the real DVC pipeline in a temporary git repository, on tiny params."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import pytest
import yaml

from breakhis.modeling.description import load_model
from breakhis.modeling.seed_ensemble import members_of
from tests.docs_blocks import command_blocks
from tests.pipeline_repo import TINY, commit, dvc, make_repo, run, set_args, stage

pytestmark = pytest.mark.slow

COUNTS = {"tn", "fp", "fn", "tp", "patients", "resamples"}


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    repo = make_repo(tmp_path_factory.mktemp("pipeline"))
    output = dvc("exp", "run", *set_args(TINY), cwd=repo)
    return repo, output


def declared_outputs(repo: Path) -> list[Path]:
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    paths = []
    for definition in stages.values():
        for entry in definition.get("outs", []) + definition.get("metrics", []):
            paths.append(repo / (entry if isinstance(entry, str) else next(iter(entry))))
    return paths


def numbers(tree: object, path: str = "") -> dict[str, float]:
    if isinstance(tree, dict):
        return {
            k: v for key, value in tree.items() for k, v in numbers(value, f"{path}.{key}".strip(".")).items()
        }
    return {path: tree} if isinstance(tree, int | float) and not isinstance(tree, bool) else {}


def test_every_stage_ran_and_every_output_exists(pipeline_run: tuple[Path, str]) -> None:
    repo, output = pipeline_run
    for name in ("ingest", "split", "augment", "train-custom", "train-vgg19", "train-resnet50", "evaluate"):
        assert f"Running stage '{name}'" in output
    missing = [str(p.relative_to(repo)) for p in declared_outputs(repo) if not p.exists()]
    assert not missing, f"declared outputs not written: {missing}"
    for name in ("custom", "vgg19", "resnet50"):
        assert (repo / "metrics/train" / name / "plots/metrics/eval/auc.tsv").exists()
        assert (repo / "plots/evaluate" / f"confusion_{name}.png").stat().st_size > 1000
    assert (repo / "plots/evaluate/gradcam.png").stat().st_size > 1000
    card = (repo / "metrics/model_card.md").read_text()
    assert "Not for diagnosis" in card and "| ensemble | " in card and "| test | " in card


def test_every_metric_is_a_number_in_unit_range(pipeline_run: tuple[Path, str]) -> None:
    repo, _ = pipeline_run
    evaluation = json.loads((repo / "metrics/evaluate.json").read_text())
    assert set(evaluation) >= {
        "custom",
        "vgg19",
        "resnet50",
        "ensemble",
        "majority_baseline",
        "ensemble_weights",
    }
    assert evaluation["ensemble"]["threshold"] == 0.5
    assert evaluation["ensemble"]["ci"]["roc_auc"]["low"] <= evaluation["ensemble"]["image"]["roc_auc"]
    values = numbers(evaluation)
    assert "ensemble.patient.recognition_rate" in values
    differences = {
        k: v
        for k, v in values.items()
        if ".vs_colour_baseline." in k and k.rsplit(".", 1)[-1] not in {"resamples", "resamples_skipped"}
    }
    assert differences and all(-1.0 <= v <= 1.0 for v in differences.values()), differences
    rates = {
        k: v
        for k, v in values.items()
        if k.rsplit(".", 1)[-1] not in COUNTS and k != "test_images" and ".vs_colour_baseline." not in k
    }
    assert rates and all(0.0 <= v <= 1.0 for v in rates.values()), rates
    assert "colour_baseline" in evaluation and "vs_colour_baseline" not in evaluation["colour_baseline"]
    assert evaluation["custom"]["vs_colour_baseline"]["verdict"] in {"better", "worse", "within noise"}
    ingest = json.loads((repo / "metrics/ingest.json").read_text())
    assert ingest["images"] == 15 * 2 * 2 and ingest["duplicates"] == 0
    split = json.loads((repo / "metrics/split.json").read_text())
    assert split["leak_check"] == "passed"
    assert sum(split[s]["images"] for s in ("train", "val", "test")) == ingest["images"]


def test_augment_balances_train_and_links_sources(pipeline_run: tuple[Path, str]) -> None:
    import pandas as pd

    repo, _ = pipeline_run
    train = pd.read_csv(repo / "data/augmented/train.csv", keep_default_na=False)
    counts = train["label"].value_counts()
    assert counts["benign"] == counts["malignant"]
    new = train[train["source_path"] != ""]
    assert len(new) > 0
    original = pd.read_csv(repo / "data/split/train.csv").set_index("path")
    assert set(new["source_path"]) <= set(original.index)  # derived from train images only
    assert (new["patient"].to_numpy() == original.loc[new["source_path"], "patient"].to_numpy()).all()


def test_second_repro_runs_nothing(pipeline_run: tuple[Path, str]) -> None:
    repo, _ = pipeline_run
    output = dvc("repro", cwd=repo)
    assert "Running stage" not in output
    assert "up to date" in output


def test_a_models_own_setting_retrains_that_model_alone(pipeline_run: tuple[Path, str]) -> None:
    """A train stage lists `train` and its own `models.<model>` as whole sections (dvc.yaml): DVC tracks
    a dotted key naming a mapping as one value, so a change under it re-runs that model's training
    (and evaluate), never the other models'."""
    repo, _ = pipeline_run
    output = dvc("exp", "run", "-S", "models.vgg19.epochs=2", cwd=repo)  # tiny: its own default is 5
    ran = set(re.findall(r"Running stage '([^']+)'", output))
    assert ran == {"train-vgg19", "evaluate"}, output


def test_a_fetched_model_predicts_as_in_the_project_with_nothing_else_in_sight(
    pipeline_run: tuple[Path, str], tmp_path: Path
) -> None:
    """`dvc artifacts get` delivers a model's folder (model.keras describing itself, decision.json);
    predict run from an empty folder, with no params.yaml anywhere near, gives the project's numbers
    bit for bit; a model fetched under another model's name is refused before anything runs."""
    repo, _ = pipeline_run
    commit(repo, "trained models")
    run(["git", "tag", "-a", "custom-cnn@v0.1.0", "-m", "custom CNN", "-m", "v0.1.0"], repo)
    run(["git", "tag", "-a", "vgg19@v0.1.0", "-m", "VGG19"], repo)
    images = tmp_path / "images"
    images.mkdir()
    for source in sorted((repo / "data/ingested/images").glob("*.png"))[:6]:
        shutil.copy(source, images)
    stage(
        "commands.predict", str(images), "--model", "custom", "--out", str(tmp_path / "project.csv"), cwd=repo
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dvc("artifacts", "get", str(repo), "custom-cnn", "-o", "custom-cnn", cwd=elsewhere)
    fetched = elsewhere / "custom-cnn"
    assert {"model.keras", "decision.json"} <= {p.name for p in fetched.iterdir()}
    assert (fetched / "model.keras").read_bytes() == (repo / "models/custom/model.keras").read_bytes()
    output = stage(
        "commands.predict", str(images), "--models-dir", "custom-cnn", "--out", "fetched.csv", cwd=elsewhere
    )
    assert "trained on SYNTHETIC images only" in output
    assert (elsewhere / "fetched.csv").read_text() == (tmp_path / "project.csv").read_text()

    dvc("artifacts", "get", str(repo), "vgg19", "-o", "models/custom", cwd=elsewhere)  # mislabeled
    refused = stage(
        "commands.predict", str(images), "--model", "custom", "--out", "x.csv", cwd=elsewhere, check=False
    )
    assert "models/custom/model.keras: this is the vgg19 model" in refused and "Traceback" not in refused
    assert not (elsewhere / "x.csv").exists()


def test_a_changed_param_gives_a_reviewable_diff(pipeline_run: tuple[Path, str], tmp_path: Path) -> None:
    """What a reviewer sees in a PR: metrics diff, plots diff, and the PR comment."""
    repo, _ = pipeline_run
    commit(repo, "baseline results")
    output = dvc(
        "exp", "run", "-S", "evaluate.threshold=youden", "-S", "evaluate.calibration=temperature", cwd=repo
    )
    assert "Running stage 'evaluate'" in output and "Running stage 'train-custom'" not in output
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    assert all(metrics[m]["calibration"]["temperature"] > 0 for m in ("custom", "vgg19", "resnet50"))
    assert "| Model | Brier score | ECE | Temperature |" in (repo / "metrics/report.md").read_text()

    diff = json.loads(dvc("metrics", "diff", "HEAD", "--json", cwd=repo))
    changed = diff["metrics/evaluate.json"]
    assert any(key.endswith(".threshold") for key in changed), changed
    dvc("plots", "diff", "HEAD", "-o", str(tmp_path / "plots"), cwd=repo)
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "ROC (test split)" in html and "Reliability (test split)" in html and "Infinity" not in html

    comment = stage("commands.pr_comment", "--base", "HEAD", cwd=repo)
    assert "| Model | Metric | `HEAD` | `this PR` | difference (95% interval) | verdict |" in comment
    assert "| ensemble | ROC AUC |" in comment and "test patient groups both revisions share" in comment
    assert "evaluate.threshold" in comment  # the params diff
    assert "![ROC](plots/evaluate/roc.png)" in comment


def test_a_queued_sweep_lists_both_experiments_with_metrics(pipeline_run: tuple[Path, str]) -> None:
    repo, _ = pipeline_run
    commit(repo, "threshold on validation")
    dvc("exp", "run", "--queue", "-S", "evaluate.confidence=0.9,0.8", cwd=repo)
    output = dvc("exp", "run", "--run-all", cwd=repo)
    assert "Running stage 'train-resnet50'" not in output  # unchanged stages come from the cache

    shown = json.loads(dvc("exp", "show", "--json", cwd=repo))
    experiments = [exp for entry in shown for exp in (entry.get("experiments") or [])]
    confidences, recognition_rates = set(), []
    for experiment in experiments:
        data = experiment["revs"][0]["data"]
        confidences.add(data["params"]["params.yaml"]["data"]["evaluate"]["confidence"])
        metrics = data["metrics"]["metrics/evaluate.json"]["data"]
        recognition_rates.append(metrics["ensemble"]["patient"]["recognition_rate"])
    assert {0.9, 0.8} <= confidences
    assert all(0.0 <= rate <= 1.0 for rate in recognition_rates)


def test_the_docs_command_blocks_run(pipeline_run: tuple[Path, str]) -> None:
    """Every command block of the tutorials and how-to guides without a `not run:` marker
    (tests/docs_blocks.py), as written, in this repository: the revisions and input files the
    blocks name exist here, and each block exits with status 0."""
    repo, _ = pipeline_run
    commit(repo, "trained models")
    commit(repo, "docs")  # HEAD~1 has metrics too
    for branch in ("main", "exp-a1b2c", "exp-d3e4f"):  # the revisions the blocks compare
        run(["git", "branch", "-f", branch, "HEAD"], repo)
    images = sorted((repo / "data/ingested/images").glob("*.png"))
    for folder in ("new_images", "slides"):
        (repo / folder).mkdir()
        for source in images[:3]:
            shutil.copy(source, repo / folder)
    shutil.copy(images[3], repo / "more.png")
    (repo / "list.csv").write_text("path\n" + "".join(f"{p.relative_to(repo)}\n" for p in images[4:6]))

    blocks = [block for block in command_blocks() if block.not_run is None]
    assert len(blocks) >= 5
    for block in blocks:
        output = run(["bash", "-e", "-c", block.runnable_text()], repo)
        assert "Traceback" not in output, f"{block.name}:\n{output}"
    assert (repo / "predictions.csv").is_file() and (repo / "resnet.csv").is_file()
    assert any((repo / "gradcam").iterdir())
    assert (repo / "comparison.json").is_file() and (repo / "pr_comment.md").is_file()


def test_a_seed_ensemble_is_one_model_to_evaluate_explain_and_predict(
    pipeline_run: tuple[Path, str], tmp_path: Path
) -> None:
    """`models.custom.seeds: 2` retrains the custom CNN alone as two networks (the second logs into
    its own DVCLive folder) saved as one model that averages them; evaluate, its Grad-CAM figure,
    the model card and predict's overlays take it as any model."""
    repo, _ = pipeline_run
    before = (repo / "plots/evaluate/gradcam.png").read_bytes()
    output = dvc("exp", "run", "-S", "models.custom.seeds=2", cwd=repo)
    assert set(re.findall(r"Running stage '([^']+)'", output)) == {"train-custom", "evaluate"}, output

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, description = load_model(repo / "models/custom/model.keras", "custom")
    # saved without an optimizer: Keras warns when it skips a saved optimizer's variables
    assert not [w for w in caught if "optimizer" in str(w.message)], [str(w.message) for w in caught]
    seed = description.training["seed"]
    assert [member.name for member in members_of(model)] == [f"custom_seed{seed}", f"custom_seed{seed + 1}"]
    assert [member["seed"] for member in description.training["members"]] == [seed, seed + 1]
    assert (repo / f"metrics/train/custom/seed-{seed + 1}/metrics.json").is_file()
    assert "kept" in json.loads((repo / "metrics/train/custom/metrics.json").read_text())
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    assert 0.0 <= metrics["custom"]["image"]["roc_auc"] <= 1.0
    assert (repo / "plots/evaluate/gradcam.png").read_bytes() != before
    assert "the mean of 2 networks" in (repo / "metrics/model_card.md").read_text()

    images = tmp_path / "images"
    images.mkdir()
    for source in sorted((repo / "data/ingested/images").glob("*.png"))[:2]:
        shutil.copy(source, images)
    explained = tmp_path / "explained"
    stage(
        "commands.predict",
        str(images),
        "--model",
        "custom",
        "--explain",
        str(explained),
        "--out",
        str(tmp_path / "p.csv"),
        cwd=repo,
    )
    assert len(list(explained.iterdir())) >= 2
