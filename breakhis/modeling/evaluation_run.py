"""The evaluate stage's run (`python -m stages.evaluate`): the trained models' outputs on the val and
test splits, each model read with its own description (how it sees an image), never with
params.yaml's `train` section; then the metrics (breakhis.evaluation.scoring), the decisions beside
the models, the plots (a Grad-CAM grid too), the report and the model card.
"""

from __future__ import annotations

import sys
from typing import Any

import keras
import numpy as np
import pandas as pd

from breakhis.data.task_of import one_task
from breakhis.evaluation.baselines import collapse_warnings
from breakhis.evaluation.card.document import write_model_card
from breakhis.evaluation.decision import write_decisions
from breakhis.evaluation.errors import ERROR_GALLERY, confident_mistakes
from breakhis.evaluation.headline import headline_metrics
from breakhis.evaluation.html_report import write_report_html
from breakhis.evaluation.plots import write_evaluation_plots
from breakhis.evaluation.report import write_report
from breakhis.evaluation.scoring import evaluate_all, mark_unseen_magnifications
from breakhis.modeling.description import describe_models, load_model, read_description
from breakhis.modeling.gradcam import write_gradcam_grid
from breakhis.modeling.prediction import predict_ingested
from breakhis.pipeline.files import file_digest, output_unit, read_table, write_json, write_text_atomically
from breakhis.pipeline.param_types import ENSEMBLE, MODEL_NAMES
from breakhis.pipeline.params import Params
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
from breakhis.pipeline.task import Task, malignant_probability

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


def trained_task(names: tuple[str, ...]) -> Task:
    """The task the models were trained for, as their descriptions say; one for all of them."""
    tasks = {name: read_description(model_file(name)).task for name in names}
    task = one_task(tasks)
    if task is None:
        raise ValueError(
            "the models were trained for different tasks ("
            + ", ".join(f"{name}: {task}" for name, task in tasks.items())
            + "): run `dvc repro` to train them all for params.yaml's task"
        )
    return task


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


def run_evaluation(params: Params) -> dict[str, Any]:
    """The evaluate stage: the models (models/) on the val and test splits (data/split/), scored
    (breakhis.evaluation.scoring); writes the decisions beside the models, metrics/evaluate.json and
    headline.json, plots/evaluate/, the report and the model card, as one unit (all of them or none),
    and returns the summary."""
    splits = {
        name: read_table(SPLIT_DIR / f"{name}.csv", SPLIT_COLUMNS, "split")
        for name in ("train", "val", "test")
    }
    if trained_on_validation(MODEL_NAMES):  # val is training data: train on both, choose nothing there
        splits["train"] = pd.concat([splits["train"], splits.pop("val")], ignore_index=True)
    scored: dict[str, pd.DataFrame] = {name: splits[name] for name in ("val", "test") if name in splits}
    probabilities = {name: predict(name, scored, params.evaluate.test_time_flips) for name in MODEL_NAMES}
    task = trained_task(MODEL_NAMES)
    summary, decision = evaluate_all(splits, probabilities, params.evaluate, params.seed, task)
    mark_unseen_magnifications(
        summary, {name: set(read_description(model_file(name)).data.magnifications) for name in MODEL_NAMES}
    )
    chosen = decision.decisions({name: file_digest(model_file(name)) for name in MODEL_NAMES})
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
        write_evaluation_plots(EVALUATE_PLOTS, splits["test"], test_outputs, summary, decision)
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
            | {ENSEMBLE: decision.threshold(ENSEMBLE)},
        )
        synthetic = [name for name in MODEL_NAMES if read_description(model_file(name)).synthetic]
        write_report(REPORT, summary, decision, EVALUATE_PLOTS, params.evaluate.confidence, synthetic)
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
    return summary
