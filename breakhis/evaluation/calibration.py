"""Do the probabilities mean what they say? Brier score, expected calibration error, reliability
curves, and temperature scaling fitted on the validation split.

ECE here is the binary (malignant-probability) form: test images binned by predicted probability
into `ECE_BINS` equal-width bins; the mean over bins, weighted by their share of images, of
|fraction malignant - mean predicted probability|. Temperature scaling divides each model's logit
log(p / (1 - p)) by one number T > 0 fitted by maximum likelihood on validation (Guo et al., ICML
2017): ranks, ROC AUC and the 0.5 decision are unchanged; T > 1 softens over-confident outputs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, logit, softmax
from sklearn import metrics as skm

from breakhis.data.task_of import task_of

ECE_BINS = 10
TEMPERATURE_BOUNDS = (0.05, 20.0)
EPSILON = 1e-6  # probabilities are clipped into [EPSILON, 1 - EPSILON] before taking logits


def brier_score(targets: np.ndarray, probabilities: np.ndarray) -> float:
    return float(skm.brier_score_loss(targets, probabilities, pos_label=1))


def reliability_bins(targets: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS) -> pd.DataFrame:
    """The non-empty equal-width bins ([0, 0.1), ..., [0.9, 1.0]): mean predicted probability,
    fraction malignant, images (sklearn's `calibration_curve` drops the counts the ECE weights by)."""
    index = np.clip((np.asarray(probabilities) * bins).astype(int), 0, bins - 1)
    frame = pd.DataFrame({"bin": index, "probability": probabilities, "target": targets})
    table = frame.groupby("bin", sort=True).agg(
        mean_predicted=("probability", "mean"),
        fraction_malignant=("target", "mean"),
        images=("target", "size"),
    )
    return table.reset_index(drop=True)


def expected_calibration_error(targets: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS) -> float:
    table = reliability_bins(targets, probabilities, bins)
    gaps = np.abs(table["fraction_malignant"] - table["mean_predicted"])
    return float((gaps * table["images"]).sum() / table["images"].sum())


def calibration_metrics(targets: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    return {
        "brier": brier_score(targets, probabilities),
        "ece": expected_calibration_error(targets, probabilities),
    }


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """sigmoid(logit(p) / T) for one probability per image; softmax(log(p) / T) for rows of class
    probabilities (the subtype task: the softmax's logits up to a constant)."""
    probabilities = np.asarray(probabilities, dtype=float)
    if task_of(probabilities) == "subtype":
        return softmax(np.log(np.clip(probabilities, EPSILON, 1.0)) / temperature, axis=1)
    clipped = np.clip(probabilities, EPSILON, 1 - EPSILON)
    return expit(logit(clipped) / temperature)


def output_threshold(threshold: float, temperature: float | None) -> float:
    """The threshold on a model's own (uncalibrated) output that decides as `threshold` does on its
    calibrated probability: what Grad-CAM compares the raw output with."""
    return (
        threshold if temperature is None else float(apply_temperature(np.asarray(threshold), 1 / temperature))
    )


def fit_temperature(targets: np.ndarray, probabilities: np.ndarray) -> float:
    """The T that minimises the log loss of `apply_temperature(probabilities, T)` on these
    (validation) images, searched in log space within TEMPERATURE_BOUNDS."""
    if len(targets) == 0:
        raise ValueError("no validation images: a temperature cannot be fitted")
    if task_of(probabilities) == "subtype":  # rows of class probabilities, targets the class indices
        log_p = np.log(np.clip(np.asarray(probabilities, dtype=float), EPSILON, 1.0))
        rows = np.arange(len(targets)), np.asarray(targets, dtype=int)

        def multiclass_log_loss(log_temperature: float) -> float:
            return float(-log_softmax(log_p / np.exp(log_temperature), axis=1)[rows].mean())

        return _minimise(multiclass_log_loss)
    logits = logit(np.clip(np.asarray(probabilities, dtype=float), EPSILON, 1 - EPSILON))
    targets = np.asarray(targets, dtype=float)

    def log_loss(log_temperature: float) -> float:
        scaled = logits / np.exp(log_temperature)
        # -[y log s(z) + (1 - y) log(1 - s(z))] = log(1 + e^z) - y z, computed stably
        return float(np.mean(np.logaddexp(0.0, scaled) - targets * scaled))

    return _minimise(log_loss)


def _minimise(log_loss: Callable[[float], float]) -> float:
    low, high = np.log(TEMPERATURE_BOUNDS[0]), np.log(TEMPERATURE_BOUNDS[1])
    result = minimize_scalar(log_loss, bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))
