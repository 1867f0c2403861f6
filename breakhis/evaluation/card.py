"""The model card (metrics/model_card.md): what the models are for, what they were trained and
tested on, how well they did, what is known to be wrong with the data, and the exact versions.

Written by evaluate from the run's params and metrics, the models' own descriptions and the
decisions beside them, or on its own: `python -m commands.model_card` (reads params.yaml,
metrics/{evaluate,ingest,split}.json, models/).

Metrics are read tolerantly: nested (`resnet50.image.accuracy`) or flat keys, and optional
confidence intervals as `<model>.ci.<metric>` / `<model>.ci.<level>.<metric>` /
`<model>.<level>.ci.<metric>` / `<model>.<level>.<metric>_ci`, each [low, high] or {low, high}.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from breakhis.evaluation.decision import read_decision
from breakhis.evaluation.metrics import HEADLINE, majority_cells
from breakhis.evaluation.report import subtype_lines
from breakhis.evaluation.tables import MISSING, estimate, table
from breakhis.evaluation.tables import number as formatted
from breakhis.pipeline.environment import describe_environment
from breakhis.pipeline.files import file_digest
from breakhis.pipeline.param_types import ENSEMBLE, EVALUATED, MODEL_NAMES, SCORED_MODELS
from breakhis.pipeline.params import Params
from breakhis.pipeline.paths import (
    EVALUATE_METRICS,
    INGEST_METRICS,
    MODELS_DIR,
    SPLIT_METRICS,
    decision_file,
    model_file,
)
from breakhis.pipeline.train_params import fit_settings

CRITERIA = {"youden": "Youden's J (balanced accuracy)", "f1": "F1"}
IMAGE_METRIC_NAMES = {metric.key for metric in HEADLINE if metric.level == "image"}
PACKAGES = (
    "tensorflow",
    "keras",
    "numpy",
    "pandas",
    "scikit-learn",
    "opencv-python-headless",
    "pydantic",
    "dvc",
    "dvclive",
    "breakhis-dvc",
)


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


def interval(summary: Mapping[str, Any], model: str, level: str, metric: str) -> tuple[float, float] | None:
    keys = [f"{model}.ci.{level}.{metric}", f"{model}.ci.{level}_{metric}"]
    if level == "image" or metric not in IMAGE_METRIC_NAMES:  # `ci.accuracy` is the image accuracy
        keys.append(f"{model}.ci.{metric}")
    keys += [f"{model}.{level}.ci.{metric}", f"{model}.{level}.{metric}_ci"]
    for key in keys:
        found = as_interval(lookup(summary, key))
        if found is not None:
            return found
    return None


def number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def metric_cell(summary: Mapping[str, Any], model: str, level: str, metric: str) -> str:
    value = number(lookup(summary, f"{model}.{level}.{metric}"))
    return estimate(value, interval(summary, model, level, metric), interval_digits=3)


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


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_file(path: Path) -> str:
    if not path.is_file():
        return "not present"
    return f"sha256 {file_digest(path)[:16]}, {path.stat().st_size / 1e6:.1f} MB"


def _models_section(
    params: Params, models: Mapping[str, Mapping[str, Any] | str], models_dir: Path
) -> list[str]:
    """What each model file says it is (`models`: each model's description, as
    breakhis.modeling.description.describe_models reads them, or why it has none)."""
    lines = [
        "## Models",
        "",
        "| Model | Architecture | Initial weights | Sees | Trained on | Epochs (kept) | File |",
        "|---|---|---|---|---|---:|---|",
    ]
    synthetic = []
    for name in MODEL_NAMES:
        path = model_file(name, models_dir)
        description = models.get(name, "no description read")
        if isinstance(description, str):
            lines.append(f"| {name} | {description} | | | | | `{path}` |")
            continue
        view, data, training = description["input"], description["data"], description["training"]
        height, width = view["image_size"]
        sees = (
            f"{height}x{width} patches at scale {view['patch_scale']:g}"
            if view["view"] == "patches"
            else f"field resized to {height}x{width}"
        ) + ("" if view["stain_normalization"] == "none" else f", {view['stain_normalization']} stain")
        if view.get("colour", "rgb") != "rgb":
            sees += f", {view['colour']} only"
        copies = data.get("copies")
        counted = (
            "" if copies is None else f" ({data['images'] - copies} originals, {copies} augmented copies)"
        )
        trained_on = (
            f"{data['images']} {data['source']} images{counted}, "
            f"{'/'.join(f'{m}X' for m in data['magnifications'])}"
        )
        kept = training.get("kept_epoch", -1)
        epochs = f"{training.get('epochs_trained', 'n/a')} ({'last' if kept == -1 else kept + 1})"
        weights = description["initial_weights"]
        weights = "none (from scratch)" if weights == "none" else weights
        lines.append(
            f"| {name} | {description['architecture']} | {weights} | "
            f"{sees} | {trained_on} | {epochs} | `{path}` ({describe_file(path)}) |"
        )
        if data["source"] == "synthetic":
            synthetic.append(name)
    train = params.train
    selection = (
        f"Early stopping monitors `{train.monitor}` on the validation split (patience {train.patience})"
        if train.validation == "split"
        else "No validation split (`train.validation: none`): every model trained on the train and "
        "validation patients for exactly its epochs, chosen by cross-validation"
    )
    lines += [
        "",
        f"{selection}; class weights {'on' if train.class_weights else 'off'}. Each model file carries this "
        "description (`breakhis-model.json` inside the `.keras` zip): predict reads it, not params.yaml.",
        "",
    ]
    if synthetic:
        lines += [
            f"**Trained on synthetic images only** ({', '.join(synthetic)}): the embedded demo data. "
            "These models have never seen a real slide; their outputs on real images mean nothing.",
            "",
        ]
    return lines


def _decision_lines(models_dir: Path, weights_rule: str = "mean") -> list[str]:
    """The decision rule, from the decisions evaluate wrote beside the models; `weights_rule`:
    `evaluate.ensemble` of the run (mean: equal weights, nothing chosen)."""
    ensemble = read_decision(decision_file(ENSEMBLE, models_dir))
    if ensemble is None:
        return [f"No decisions in `{models_dir}` (written by evaluate).", ""]
    weights = ensemble.weights
    how = (
        "the mean"
        if len({round(w, 9) for w in weights.values()}) == 1
        else ("a weighted mean (weights " + ", ".join(f"{n} {w:.3f}" for n, w in weights.items()) + ")")
    )
    if ensemble.threshold_rule == "fixed":
        rule = f"at least the threshold **{ensemble.threshold:g}** (`evaluate.threshold`)"
    else:
        criterion = CRITERIA.get(ensemble.threshold_rule, ensemble.threshold_rule)
        rule = (
            f"at least a threshold chosen per model on the validation split to maximise {criterion} "
            "(never on test; the thresholds are in the table below)"
        )
    models = [read_decision(decision_file(name, models_dir)) for name in MODEL_NAMES]
    temperatures = [f"{d.model} {d.temperature:.3g}" for d in models if d is not None and d.temperature]
    calibrated = (
        f" Each model's logits are divided by a temperature fitted on validation ({', '.join(temperatures)})."
        if temperatures
        else ""
    )
    # only what was actually chosen on validation: a fixed threshold and equal weights are params
    chosen = [
        *(["the thresholds"] if ensemble.threshold_rule != "fixed" else []),
        *(["the temperatures"] if temperatures else []),
        *(["the ensemble weights"] if weights_rule == "val_auc" else []),
    ]
    if ensemble.validation_images and chosen:
        chosen_on = (
            f"{' and '.join(chosen).capitalize()} were chosen on {ensemble.validation_images} "
            "validation images; the decisions are stored"
        )
    elif ensemble.validation_images:
        chosen_on = (
            "Nothing was chosen on the validation images: the threshold and the equal weights are "
            "params (`evaluate.threshold`, `evaluate.ensemble`); they are stored"
        )
    else:
        chosen_on = (
            "Nothing was chosen on these images (the models trained on the validation split): the "
            "threshold and the members are params, as cross-validation recommended them; they are stored"
        )
    members = " and ".join(weights) if len(weights) < len(MODEL_NAMES) else "the three models"
    return [
        f"**Ensemble**: soft vote, {how} of the malignant probabilities of {members}. An image is "
        f"called malignant when its probability is {rule}.{calibrated} {chosen_on} beside the models "
        f"(`{models_dir}/<model>/decision.json`, `{models_dir}/ensemble/decision.json`), where predict "
        "reads them.",
        "",
    ]


def _data_section(params: Params, ingest: Mapping[str, Any], split: Mapping[str, Any]) -> list[str]:
    lines = ["## Data and split", ""]
    source = ingest.get("source", params.data.source)
    lines.append(
        f"- Source: `{source}`"
        + (f" at `{params.data.path}`" if params.data.path else "")
        + f"; magnifications {', '.join(f'{m}X' for m in params.data.magnifications)}; images "
        f"cover-and-cropped to {params.ingest.image_size[0]}x{params.ingest.image_size[1]} (height x width)."
    )
    if source == "synthetic":
        lines.append(
            "- **These data are synthetic** (generated H&E-like images in the BreakHis layout): the "
            "metrics below test the pipeline, not the models' value on real tissue."
        )
    if ingest:
        by_class = ingest.get("by_class", {})
        lines.append(
            f"- Ingested: {ingest.get('images', 'n/a')} images of {ingest.get('patients', 'n/a')} "
            f"patients ({ingest.get('patient_groups', 'n/a')} patient groups); "
            f"benign {by_class.get('benign', 'n/a')}, malignant {by_class.get('malignant', 'n/a')}; "
            f"{ingest.get('duplicates', 'n/a')} pixel-identical duplicate(s) dropped, "
            f"{ingest.get('rejected', 0)} unreadable image(s) rejected."
        )
    else:
        lines.append(f"- Ingest summary not found ({INGEST_METRICS}).")
    if not split:
        lines += [f"- Split summary not found ({SPLIT_METRICS}).", ""]
        return lines
    if split.get("leaky"):
        lines.append(
            "- **WARNING: this split is by image; patients are in more than one split and the "
            "metrics are inflated.**"
        )
    strategy = split.get("strategy", params.split.strategy)
    fold = {
        "kfold": f" (test fold {params.split.fold} of {params.split.folds})",
        "official": f" (official fold {params.split.fold + 1} of 5)",
    }.get(strategy, "")
    lines += [
        f"- Split strategy **{strategy}**{fold}, grouped by "
        f"`{split.get('group_by', params.split.group_by)}`, stratified by "
        f"{split.get('stratified_by', 'class')}, seed {params.seed}; "
        f"leak check: {split.get('leak_check', 'n/a')}.",
        "",
    ]
    rows = []
    for name in ("train", "val", "test"):
        part = split.get(name, {})
        images, patients = part.get("images_by_class", {}), part.get("patients_by_class", {})
        rows.append(
            [
                name,
                str(part.get("images", MISSING)),
                f"{images.get('benign', MISSING)} / {images.get('malignant', MISSING)}",
                str(part.get("patients", MISSING)),
                f"{patients.get('benign', MISSING)} / {patients.get('malignant', MISSING)}",
                str(part.get("patient_groups", MISSING)),
            ]
        )
    header = [
        "Split",
        "Images",
        "Benign / malignant images",
        "Patients",
        "Benign / malignant patients",
        "Patient groups",
    ]
    lines += table(header, rows, "lrrrrr")
    augment = params.augment
    transforms = [
        name
        for name, on in (
            ("flips", augment.flip),
            ("quarter turns", augment.rotate90),
            (f"zoom {augment.zoom:g}", augment.zoom),
        )
        if on
    ]
    lines += [
        "",
        f"Train is augmented offline (classes balanced to a minority/majority ratio of "
        f"{augment.target_ratio:g}; {', '.join(transforms) or 'no transforms'}); validation and test "
        "are never augmented.",
    ]
    train = params.train
    online = [
        text
        for text, on in (
            (f"H&E stain jitter {train.hed_jitter:g}", train.hed_jitter),
            (f"HSV jitter {train.hsv_jitter:g}", train.hsv_jitter),
            ("random flips and rotations", train.online_augmentation),
        )
        if on
    ]
    if online:
        lines.append(f"On-line, every train image of both classes, each epoch: {', '.join(online)}.")
    if params.ingest.stain_normalization != "none":
        lines.append(
            f"Every image is stain-normalised ({params.ingest.stain_normalization}, fixed reference) "
            "at ingest and in predict."
        )
    if train.input == "patches":
        counts = ", ".join(f"{name} {fit_settings(train, name).patches_per_image}" for name in MODEL_NAMES)
        lines.append(
            f"Models see patches of the field scaled by {train.patch_scale:g} (random patches per image "
            f"and epoch in training: {counts}; a covering grid, averaged, in evaluation)."
        )
    lines.append("")
    return lines


def _metrics_section(params: Params, summary: Mapping[str, Any], models_dir: Path) -> list[str]:
    if not summary:
        return ["## Metrics (test split)", "", f"No metrics found ({EVALUATE_METRICS}).", ""]
    has_intervals = any(
        interval(summary, model, metric.level, metric.key) for model in SCORED_MODELS for metric in HEADLINE
    )
    evaluate = params.evaluate
    lines = [
        "## Metrics (test split)",
        "",
        f"{summary.get('test_images', 'n/a')} test images."
        + (
            f" In brackets: {evaluate.confidence:.0%} confidence intervals from "
            f"{evaluate.bootstrap_resamples} bootstrap resamples of whole test patients."
            if has_intervals
            else ""
        ),
        "",
        *_decision_lines(models_dir, evaluate.ensemble),
    ]
    rows = []
    for model in EVALUATED:  # the colour baseline too, as the report shows it
        if model in summary or any(k.startswith(f"{model}.") for k in summary):
            threshold = number(lookup(summary, f"{model}.threshold"))
            if threshold is None:
                threshold = number(summary.get("threshold"))
            cells = [metric_cell(summary, model, metric.level, metric.key) for metric in HEADLINE]
            rows.append([model, formatted(threshold, 2), *cells])
    baseline = summary.get("majority_baseline", {})
    if baseline:
        rows.append(["majority class", "", *majority_cells(baseline)])
    lines += table(
        ["Model", "Threshold", *(metric.title for metric in HEADLINE)], rows, "lr" + "r" * len(HEADLINE)
    )
    lines += [
        "",
        "Sensitivity: recall of malignant. Patient recognition rate: mean over test patients of the "
        "fraction of their images classified correctly (the BreakHis measure). Patient accuracy: each "
        "patient classified by the mean probability of their images.",
    ]
    patients = number(lookup(summary, "ensemble.patient.patients"))
    accuracy = number(lookup(summary, "ensemble.patient.accuracy"))
    if not has_intervals and patients and accuracy is not None:
        low, high = wilson_interval(accuracy * patients, int(patients))
        lines.append(
            f"\nNo bootstrap intervals in this run's metrics. The test split has only {int(patients)} "
            f"patients: the ensemble's patient accuracy of {accuracy:.3f} has a 95% Wilson interval of "
            f"{low:.3f}-{high:.3f}. Image-level intervals that treat images as independent would be too "
            "narrow: images of one patient are correlated, so the effective sample size is closer to "
            "the number of patients."
        )
    lines.append("")
    return lines


def _issues_section(params: Params, ingest: Mapping[str, Any]) -> list[str]:
    group_by = params.split.group_by
    return [
        "## Known dataset issues",
        "",
        "- **Duplicates**: the folders `SOB_M_DC_14-13412` and `SOB_M_LC_14-13412` hold pixel-identical "
        "images under two different subtypes (their PNG bytes differ); the official "
        "fold files put one in train and its twin in test. Ingest drops pixel-identical duplicates "
        f"({ingest.get('duplicates', 'n/a')} in this run) and both folders share one patient group.",
        "- **Shared slide roots**: several numeric slide roots appear in more than one folder (22549 "
        "AB/CD/G; 21998 AB as phyllodes tumour and CD/EF as fibroadenoma; 29960; 16184; 14134; 23060; "
        "15570; 18842; 19979; 13412). Whether the letter suffixes are different patients is not "
        "documented, so the split groups by the numeric root by default (70 groups instead of 82 "
        f"folders); this run grouped by `{group_by}`"
        + (
            " (folders: images of one slide root may sit in train and test)." if group_by == "folder" else "."
        ),
        '- **Image-level splits leak**: the "97-99% accuracy" often reported on BreakHis comes from '
        "splits by image, with the same patient in train and test. Published patient-level results are "
        "far lower (about 82-90% for the 2016 baselines, 91-93% for modern transfer learning).",
        "- **Stain and scanner variation** between patients is strong; a CNN can learn patients' stain "
        "signatures instead of tissue. Class imbalance: about 31% benign / 69% malignant images.",
        "- Most images are 700x460; some are 700x456 (cover-and-crop makes them the same size).",
        "",
    ]


def _intended_use(task: str) -> list[str]:
    what = (
        "classified into the eight BreakHis tumour subtypes (adenosis, fibroadenoma, phyllodes tumour, "
        "tubular adenoma; ductal, lobular, mucinous, papillary carcinoma), with the benign/malignant "
        "call derived from them"
        if task == "subtype"
        else "classified as benign vs malignant"
    )
    out_of_scope = (
        "other subtypes than these eight, grading" if task == "subtype" else "tumour subtypes, grading"
    )
    return [
        "## Intended use and limits",
        "",
        "- **Research and education only. Not for diagnosis**, treatment decisions or any clinical use; "
        "not a medical device; not validated prospectively or on any other cohort.",
        "- Intended input: H&E-stained breast tissue microscopy images like BreakHis (surgical biopsy "
        f"slides, 40X-400X, 700x460 RGB fields of view), {what}.",
        "- Out of scope: whole-slide images (tile them first), other stains (IHC), other organs, "
        f"frozen sections, other scanners or labs without revalidation, {out_of_scope}.",
        "- The training set is small (BreakHis: 82 patients, 7,909 images); test figures rest on a "
        "handful of patients and vary a lot between splits and seeds.",
        "- Every prediction is one field of view; a patient-level call should aggregate many images "
        "(`breakhis-predict` writes per-patient means for BreakHis-named files) and be reviewed by a "
        "pathologist. Grad-CAM maps (`--explain`) show where the evidence lies, not why.",
        "",
    ]


def _versions_section(params: Params) -> list[str]:
    lines = [
        "## Versions",
        "",
        f"- Python {platform.python_version()} on {platform.system()} {platform.machine()}",
        f"- Environment: {describe_environment()}",
    ]
    lines += [f"- {name} {package_version(name)}" for name in PACKAGES]
    dump = yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False, default_flow_style=False)
    lines += ["", "Params of the run (`params.yaml`):", "", "```yaml", dump.rstrip(), "```", ""]
    return lines


def model_task(params: Params, models: Mapping[str, Mapping[str, Any] | str]) -> str:
    """The task the models say they were trained for (params.yaml's when none can say)."""
    tasks = {str(entry.get("task", "binary")) for entry in models.values() if isinstance(entry, Mapping)}
    return tasks.pop() if len(tasks) == 1 else params.task


def model_card(
    params: Params,
    summary: Mapping[str, Any],
    models: Mapping[str, Mapping[str, Any] | str],
    ingest: Mapping[str, Any] | None = None,
    split: Mapping[str, Any] | None = None,
    models_dir: Path = MODELS_DIR,
) -> str:
    """The card's markdown. ingest / split: the summaries (read from metrics/ when None)."""
    ingest = read_json(INGEST_METRICS) if ingest is None else ingest
    split = read_json(SPLIT_METRICS) if split is None else split
    task = model_task(params, models)
    title = "eight-subtype" if task == "subtype" else "benign/malignant"
    what = (
        "the eight BreakHis tumour subtypes, with benign vs malignant derived from them"
        if task == "subtype"
        else "benign vs malignant"
    )
    lines = [
        f"# Model card: BreakHis {title} classifiers",
        "",
        f"Task: `{task}`. Four classifiers of breast histopathology images ({what}): a custom CNN, "
        "VGG19, ResNet50 and their soft-vote ensemble, trained and tested on patient-disjoint splits. "
        "Generated from this run's params and metrics; do not edit by hand.",
        "",
        *_intended_use(task),
        *_models_section(params, models, models_dir),
        *_data_section(params, ingest, split),
        *_metrics_section(params, summary, models_dir),
        *subtype_lines(dict(summary), params.evaluate.confidence),
        *_issues_section(params, ingest),
        *_versions_section(params),
    ]
    return "\n".join(lines)


def write_model_card(
    path: Path,
    params: Params,
    summary: Mapping[str, Any],
    models: Mapping[str, Mapping[str, Any] | str],
    ingest: Mapping[str, Any] | None = None,
    split: Mapping[str, Any] | None = None,
    models_dir: Path = MODELS_DIR,
) -> None:
    """Write the card; ingest / split summaries default to metrics/ingest.json and metrics/split.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(model_card(params, summary, models, ingest, split, models_dir))
