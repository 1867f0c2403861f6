"""Stage `evaluate`: every model and their soft-vote ensemble on the test split.

Temperatures, thresholds (when not fixed) and ensemble weights are chosen on the validation split,
never on test (breakhis.evaluation.decision); when a model was trained on the validation split
(`train.validation: none`, as its description says), nothing is chosen there: the threshold is
fixed and the ensemble the mean of `evaluate.members`. The choices are written beside the models
(models/<model>/decision.json, models/ensemble/decision.json), bound to the model files' digests;
each model is read with its own description (how it sees an image), never with params.yaml's
`train` section. Writes metrics/evaluate.json (`<model>.image.*`, `<model>.patient.*`, `<model>.ci.*`,
`<model>.by_magnification.*`) and its ten-key headline metrics/headline.json, plot data and PNGs
under plots/evaluate/ (a Grad-CAM grid too), metrics/report.md and metrics/model_card.md.

`task: subtype`: the models output eight subtype probabilities. Temperatures are fitted on them;
every binary key above then holds the metrics of P(malignant) = the sum of the four malignant
subtypes (breakhis.pipeline.task), so reports, comparisons and cross-validation read them as before;
`<model>.subtype.*` adds the subtype metrics (breakhis.evaluation.subtype), with the majority-subtype
and the multinomial colour baselines beside them.
"""

from __future__ import annotations

import sys
from typing import Any

from breakhis.pipeline.cli import parse_no_options
from breakhis.pipeline.logs import quiet_native_logs

if __name__ == "__main__":  # before TensorFlow's import below: --help has no side effect and no wait,
    parse_no_options("stages.evaluate", __doc__)
    quiet_native_logs()  # and TensorFlow's C++ start-up chatter is dropped

import keras
import numpy as np
import pandas as pd

from breakhis.evaluation.baselines import (
    collapse_warnings,
    colour_baseline_probabilities,
    output_spread,
    paired_auc_difference,
)
from breakhis.evaluation.calibration import apply_temperature, calibration_metrics
from breakhis.evaluation.card.document import write_model_card
from breakhis.evaluation.decision import (
    choose_threshold_on,
    choose_weights,
    decisions,
    fit_temperatures,
    soft_vote,
    write_decisions,
)
from breakhis.evaluation.errors import ERROR_GALLERY, confident_mistakes
from breakhis.evaluation.headline import headline_metrics
from breakhis.evaluation.html_report import write_report_html
from breakhis.evaluation.metrics import (
    bootstrap_intervals,
    evaluate_predictions,
    image_metrics,
    majority_baseline,
)
from breakhis.evaluation.plots import write_evaluation_plots
from breakhis.evaluation.report import write_report
from breakhis.evaluation.subtype import (
    evaluate_subtypes,
    majority_subtype_baseline,
    paired_macro_f1_difference,
)
from breakhis.modeling.description import describe_models, load_model, read_description
from breakhis.modeling.gradcam import write_gradcam_grid
from breakhis.modeling.prediction import predict_ingested
from breakhis.pipeline.files import file_digest, output_unit, read_table, write_json, write_text_atomically
from breakhis.pipeline.params import COLOUR_BASELINE, ENSEMBLE, MODEL_NAMES, EvaluateParams, load_params
from breakhis.pipeline.paths import (
    EVALUATE_METRICS,
    EVALUATE_PLOTS,
    HEADLINE_METRICS,
    MODEL_CARD,
    MODELS_DIR,
    REPORT,
    REPORT_HTML,
    SPLIT_DIR,
    decision_file,
    epoch_predictions_file,
    model_file,
    snapshot_dir,
)
from breakhis.pipeline.stage import run_stage
from breakhis.pipeline.task import Task, malignant_probability, targets

SPLIT_COLUMNS = ("path", "filename", "target", "subtype", "patient", "patient_group", "magnification")


def predict(name: str, splits: dict[str, pd.DataFrame], test_time_flips: bool) -> dict[str, np.ndarray]:
    """The named model's outputs on each split, one per image (P(malignant), or a row of subtype
    probabilities): the mean over the model's views of the image, as its own description says it
    sees one (not params.yaml)."""
    model, description = load_model(model_file(name), name)
    view = description.input.view_params(test_time_flips=test_time_flips)
    probabilities = {
        split: predict_ingested(name, model, rows["path"].tolist(), view) for split, rows in splits.items()
    }
    keras.backend.clear_session()
    return probabilities


def score_snapshots(
    name: str, test: pd.DataFrame, final: np.ndarray, test_time_flips: bool
) -> pd.DataFrame | None:
    """The test probabilities of the model's weights after each `train.snapshot_epochs` epoch, and
    of the model itself (its last epoch, `final`): one row per image and epoch. None without snapshots."""
    files = {
        int(path.name.removeprefix("epoch-").split(".")[0]): path
        for path in snapshot_dir(name).glob("epoch-*.weights.h5")
    }
    if not files:
        return None
    model, description = load_model(model_file(name), name)
    last = int(description.training["epochs_trained"])
    view = description.input.view_params(test_time_flips=test_time_flips)
    scored = {}
    for epoch, path in files.items():
        if epoch < last:  # the last epoch's weights are the model's own
            model.load_weights(path)
            scored[epoch] = malignant_probability(predict_ingested(name, model, test["path"].tolist(), view))
    keras.backend.clear_session()
    scored[last] = malignant_probability(final)
    columns = test[["filename", "patient", "patient_group", "target"]]
    return pd.concat(
        [columns.assign(epoch=epoch, probability=p) for epoch, p in sorted(scored.items())], ignore_index=True
    )


def evaluate_all(
    splits: dict[str, pd.DataFrame],
    probabilities: dict[str, dict[str, np.ndarray]],
    params: EvaluateParams,
    seed: int,
    task: Task = "binary",
) -> dict[str, Any]:
    """Metrics of every model and the ensemble on test, with temperatures, thresholds and weights
    from val. `probabilities` (model -> split -> outputs) gains the ensemble's and the colour
    baseline's, and holds the calibrated outputs when `params.calibration` is `temperature`.
    Without a "val" split (the models trained on it), nothing is chosen: the threshold is fixed,
    the ensemble the mean of `params.members`, and the colour baseline fits train and val as the
    models did (`splits["train"]` holds both). With `task` subtype the outputs are rows of eight
    probabilities: temperatures and the soft vote work on them, everything else on P(malignant)."""
    train, val, test = splits["train"], splits.get("val"), splits["test"]
    val_targets = None if val is None else val["target"].to_numpy()
    scored = ("test",) if val is None else ("val", "test")
    uncalibrated = {name: dict(probs) for name, probs in probabilities.items()}
    if val is not None:
        temperatures = fit_temperatures(
            targets(val, task), {n: p["val"] for n, p in probabilities.items()}, params
        )
    else:
        temperatures = {}
    for name, temperature in temperatures.items():
        probabilities[name] = {
            split: apply_temperature(p, temperature) for split, p in probabilities[name].items()
        }
    weights, val_auc = choose_weights(
        val_targets,
        {n: malignant_probability(p["val"]) for n, p in probabilities.items() if "val" in p},
        params,
    )

    def vote(outputs: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {split: soft_vote({n: outputs[n][split] for n in weights}, weights) for split in scored}

    probabilities[ENSEMBLE] = vote(probabilities)
    uncalibrated[ENSEMBLE] = vote(uncalibrated)
    if val_targets is not None:
        ensemble_val = malignant_probability(probabilities[ENSEMBLE]["val"])
        val_auc[ENSEMBLE] = image_metrics(val_targets, ensemble_val, 0.5).get("roc_auc", 0.5)
    summary: dict[str, Any] = {
        "test_images": len(test),
        "majority_baseline": majority_baseline(test, train),
        "ensemble_weights": weights,
    }
    if task == "subtype":
        summary["majority_subtype_baseline"] = majority_subtype_baseline(test, train)
    probabilities[COLOUR_BASELINE] = colour_baseline_probabilities(
        train, {split: splits[split] for split in scored}, task
    )
    for name, outputs in probabilities.items():
        probs = {split: malignant_probability(p) for split, p in outputs.items()}
        threshold = choose_threshold_on(val_targets, probs.get("val"), params)
        result = evaluate_predictions(test, probs["test"], threshold)
        result["ci"] = bootstrap_intervals(
            test,
            probs["test"],
            threshold,
            resamples=params.bootstrap_resamples,
            confidence=params.confidence,
            seed=seed,
        )
        if val_targets is not None:  # the colour baseline is not in the ensemble's val_auc
            result["val_roc_auc"] = (
                val_auc[name]
                if name in val_auc
                else image_metrics(val_targets, probs["val"], 0.5).get("roc_auc")
            )
        if task == "subtype":
            result["subtype"] = subtype_entry(name, test, outputs["test"], probabilities, params, seed)
        result["output"] = output_spread(probs["test"])
        calibration: dict[str, Any] = calibration_metrics(test["target"].to_numpy(), probs["test"])
        if name in temperatures:
            calibration["temperature"] = temperatures[name]
        if temperatures and name in uncalibrated:
            calibration["uncalibrated"] = calibration_metrics(
                test["target"].to_numpy(), malignant_probability(uncalibrated[name]["test"])
            )
        result["calibration"] = calibration
        if name != COLOUR_BASELINE:
            result["vs_colour_baseline"] = paired_auc_difference(
                test,
                probs["test"],
                malignant_probability(probabilities[COLOUR_BASELINE]["test"]),
                resamples=params.bootstrap_resamples,
                confidence=params.confidence,
                seed=seed,
            )
        summary[name] = result
    return summary


def subtype_entry(
    name: str,
    test: pd.DataFrame,
    outputs: np.ndarray,
    probabilities: dict[str, dict[str, np.ndarray]],
    params: EvaluateParams,
    seed: int,
) -> dict[str, Any]:
    """A model's `subtype` section: its subtype metrics on test, and (not for the colour baseline
    itself) the paired macro-F1 difference with the colour baseline."""
    resamples, confidence = params.bootstrap_resamples, params.confidence
    entry = evaluate_subtypes(test, outputs, resamples=resamples, confidence=confidence, seed=seed)
    if name != COLOUR_BASELINE:
        entry["vs_colour_baseline"] = paired_macro_f1_difference(
            test,
            outputs,
            probabilities[COLOUR_BASELINE]["test"],
            resamples=resamples,
            confidence=confidence,
            seed=seed,
        )
    return entry


def mark_unseen_magnifications(summary: dict[str, Any], seen: dict[str, set[int]]) -> None:
    """Add `seen_in_training` to each model's (and the ensemble's: all members) per-magnification
    entries: false where the model never trained on an image of that magnification."""
    members = summary["ensemble_weights"]
    seen = {**seen, ENSEMBLE: set.intersection(*(seen[name] for name in members))}
    for name, magnifications in seen.items():
        for key, entry in summary[name]["by_magnification"].items():
            entry["seen_in_training"] = int(key.removesuffix("X")) in magnifications


def model_task(names: tuple[str, ...]) -> Task:
    """The task the models were trained for, as their descriptions say; one for all of them."""
    tasks = {name: read_description(model_file(name)).task for name in names}
    if len(set(tasks.values())) > 1:
        raise ValueError(
            "the models were trained for different tasks ("
            + ", ".join(f"{name}: {task}" for name, task in tasks.items())
            + "): run `dvc repro` to train them all for params.yaml's task"
        )
    return next(iter(tasks.values()))


def trained_on_validation(names: tuple[str, ...]) -> list[str]:
    """The models whose descriptions say they trained on the validation split (`train.validation: none`)."""
    return [name for name in names if read_description(model_file(name)).training.get("validation") == "none"]


def write_gradcam_figures(test: pd.DataFrame, ensemble: np.ndarray, thresholds: dict[str, float]) -> None:
    """Grad-CAM of every model: on a few test images of each class, right and wrong (gradcam.png),
    and on the ensemble's most confident mistakes (the report's error gallery)."""
    models = {name: model_file(name) for name in MODEL_NAMES}
    write_gradcam_grid(models, test, ensemble, thresholds, EVALUATE_PLOTS / "gradcam.png")
    mistakes = confident_mistakes(test["target"].to_numpy(), ensemble, thresholds[ENSEMBLE])
    gallery = EVALUATE_PLOTS / ERROR_GALLERY
    if mistakes:
        title = f"The ensemble's most confident mistakes (threshold {thresholds[ENSEMBLE]:.2f})"
        write_gradcam_grid(models, test, ensemble, thresholds, gallery, chosen=mistakes, title=title)
    else:
        gallery.unlink(missing_ok=True)


def main() -> None:
    params = load_params()
    splits = {
        name: read_table(SPLIT_DIR / f"{name}.csv", SPLIT_COLUMNS, "split")
        for name in ("train", "val", "test")
    }
    if trained_on_validation(MODEL_NAMES):  # val is training data: train on both, choose nothing there
        splits["train"] = pd.concat([splits["train"], splits.pop("val")], ignore_index=True)
    scored: dict[str, pd.DataFrame] = {name: splits[name] for name in ("val", "test") if name in splits}
    probabilities = {name: predict(name, scored, params.evaluate.test_time_flips) for name in MODEL_NAMES}
    task = model_task(MODEL_NAMES)
    summary = evaluate_all(splits, probabilities, params.evaluate, params.seed, task)
    mark_unseen_magnifications(
        summary, {name: set(read_description(model_file(name)).data.magnifications) for name in MODEL_NAMES}
    )
    chosen = decisions(
        summary,
        params.evaluate,
        {name: file_digest(model_file(name)) for name in MODEL_NAMES},
        validation_images=len(splits["val"]) if "val" in splits else 0,
    )
    outputs = [
        HEADLINE_METRICS,
        EVALUATE_METRICS,
        EVALUATE_PLOTS,
        REPORT,
        REPORT_HTML,
        MODEL_CARD,
        *(decision_file(n) for n in chosen),
    ]
    with output_unit("evaluate", outputs):  # all of this run's outputs, or all of the earlier run's
        write_decisions(chosen, {name: decision_file(name) for name in chosen})
        write_json(EVALUATE_METRICS, summary)
        write_json(HEADLINE_METRICS, headline_metrics(summary))
        test_outputs = {name: probs["test"] for name, probs in probabilities.items()}
        test_probabilities = {name: malignant_probability(p) for name, p in test_outputs.items()}
        write_evaluation_plots(EVALUATE_PLOTS, splits["test"], test_outputs, summary)
        for name in MODEL_NAMES:  # snapshots need train.validation none, which calibrates nothing
            by_epoch = score_snapshots(
                name, splits["test"], probabilities[name]["test"], params.evaluate.test_time_flips
            )
            if by_epoch is not None:
                write_text_atomically(epoch_predictions_file(name), by_epoch.to_csv(index=False))
        write_gradcam_figures(
            splits["test"],
            test_probabilities[ENSEMBLE],
            {name: chosen[name].output_threshold() for name in MODEL_NAMES}
            | {ENSEMBLE: chosen[ENSEMBLE].threshold},
        )
        synthetic = [name for name in MODEL_NAMES if read_description(model_file(name)).synthetic]
        write_report(REPORT, summary, EVALUATE_PLOTS, params.evaluate.confidence, synthetic)
        write_report_html(REPORT, REPORT_HTML)  # after every figure it inlines
        write_model_card(MODEL_CARD, params, summary, describe_models(MODELS_DIR))
    for warning in collapse_warnings(summary):
        print(f"warning: {warning}", file=sys.stderr)
    for name in test_probabilities:
        result = summary[name]
        print(
            f"{name:>9}: image accuracy {result['image']['accuracy']:.3f}, "
            f"patient recognition rate {result['patient']['recognition_rate']:.3f}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    run_stage(main)
