"""How probabilities become a class: the one home of the decision rule.

Evaluate chooses on the validation split, never on test: each model's temperature
(`evaluate.calibration: temperature`), the ensemble's weights (`evaluate.ensemble`) and every
threshold (`evaluate.threshold`: a fixed probability, or youden / f1 chosen per model). It writes
each model's choice beside the model, in `models/<model>/decision.json` (and the ensemble's in
`models/ensemble/decision.json`), bound to the SHA-256 of the model file it was chosen for.
Predict, Grad-CAM and the model card read them back from there: a model and its decision travel
together (one DVC artifact folder), and a decision is never applied to another model file.

Whether a threshold is fixed or chosen (and by which criterion) is answered by `chosen_by` alone
(breakhis.pipeline.param_types: params validation asks it too).
What one evaluate run decided is one object, `RunDecision`, built once (breakhis.evaluation.scoring):
the metrics' thresholds and ensemble weights, the decision files, the plots, Grad-CAM and the report
are written from it; what reads a run back from its files reads each threshold with `stored_threshold`
(metrics/evaluate.json) and each decision with `read_decision` (decision.json).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sklearn import metrics as skm

from breakhis.evaluation.calibration import apply_temperature, fit_temperature, output_threshold
from breakhis.evaluation.metrics import ensemble_weights, image_metrics
from breakhis.evaluation.tables import is_number
from breakhis.pipeline.files import file_digest, write_json
from breakhis.pipeline.param_types import (  # the rule's names and its one test, for the layer below
    ENSEMBLE,
    FIXED,
    MODEL_NAMES,
    YOUDEN,
    Criterion,
    ThresholdRule,
    chosen_by,
)
from breakhis.pipeline.params import EvaluateParams

Probability = Annotated[float, Field(gt=0.0, lt=1.0, allow_inf_nan=False)]
Weight = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Temperature = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
Digest = Annotated[str, Field(pattern="^[0-9a-f]{64}$")]  # SHA-256, lower-case hex


def threshold_rule(setting: float | str) -> ThresholdRule:
    """`evaluate.threshold` as the rule a decision stores: fixed, or the criterion it is chosen by."""
    return chosen_by(setting) or FIXED


def choose_threshold(targets: np.ndarray, probabilities: np.ndarray, criterion: Criterion) -> float:
    """The threshold that maximises the criterion on these (validation) predictions.

    Youden's J (sensitivity + specificity - 1) is 2 x balanced accuracy - 1: both pick the same
    threshold. Ties resolve to the lowest qualifying threshold.
    """
    candidates = np.unique(np.clip(probabilities, 0.0, 1.0))
    if len(np.unique(targets)) < 2:
        raise ValueError("the validation split has one class only: a threshold cannot be chosen on it")
    scores = []
    for threshold in candidates:
        predicted = (probabilities >= threshold).astype(int)
        if criterion == YOUDEN:
            scores.append(skm.balanced_accuracy_score(targets, predicted))
        else:
            scores.append(skm.f1_score(targets, predicted, zero_division=0))
    return float(candidates[int(np.argmax(scores))])


class DecisionError(ValueError):
    """A decision file is missing, broken, or belongs to another model file."""


class Decision(BaseModel):
    """How one model (or the ensemble of `weights`) turns its output into a class."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    threshold: Probability  # malignant when the (calibrated) probability is at least this
    threshold_rule: ThresholdRule  # fixed, or chosen on the validation split
    temperature: Temperature | None = None  # the model's logits are divided by it (None: not calibrated)
    weights: dict[str, Weight] = {}  # the ensemble's: member -> weight (they sum to 1)
    test_time_flips: bool = False  # evaluate averaged every view with its mirrored copies
    model_digests: dict[str, Digest]  # SHA-256 of the model file(s) the decision was chosen for
    validation_images: int  # how many images it was chosen on

    @model_validator(mode="after")
    def _consistent(self) -> Decision:
        if self.model == ENSEMBLE:
            if set(self.weights) != set(self.model_digests) or not self.weights:
                raise ValueError("an ensemble decision needs one weight and one model digest per member")
            unknown = sorted(set(self.weights) - set(MODEL_NAMES))
            if unknown:
                choices = ", ".join(MODEL_NAMES)
                raise ValueError(
                    f"ensemble member(s) {', '.join(unknown)}: not a model (choose from {choices})"
                )
            if not math.isclose(sum(self.weights.values()), 1.0, abs_tol=1e-6):
                raise ValueError(f"ensemble weights sum to {sum(self.weights.values()):g}, not 1")
        elif self.model not in MODEL_NAMES or self.weights or set(self.model_digests) != {self.model}:
            raise ValueError(f"'{self.model}': not a model with one digest and no weights")
        return self

    def calibrate(self, probabilities: np.ndarray) -> np.ndarray:
        """The model's outputs as evaluate scored them: temperature-scaled when it fitted one."""
        if self.temperature is None:
            return np.asarray(probabilities, dtype="float64")
        return apply_temperature(probabilities, self.temperature)

    def output_threshold(self) -> float:
        """The threshold on the model's own output (Grad-CAM explains the class it predicts)."""
        return output_threshold(self.threshold, self.temperature)

    @property
    def criterion(self) -> Criterion | None:
        """What its threshold was chosen by on the validation split; None: fixed."""
        return chosen_by(self.threshold_rule)

    def describe(self) -> str:
        how = FIXED if self.criterion is None else f"{self.criterion} on the validation split"
        words = f"threshold {self.threshold:g} ({how})"
        if self.temperature is not None:
            words += f", temperature {self.temperature:.3g}"
        if self.weights:
            words += ", weights " + ", ".join(f"{name} {weight:.3f}" for name, weight in self.weights.items())
        return words


# ---- choosing (evaluate) -------------------------------------------------------------------------


def fit_temperatures(
    val_targets: np.ndarray, val_probabilities: Mapping[str, np.ndarray], evaluate: EvaluateParams
) -> dict[str, float]:
    """Each model's temperature on validation (`evaluate.calibration: temperature`), else none."""
    if evaluate.calibration != "temperature":
        return {}
    return {name: fit_temperature(val_targets, probs) for name, probs in val_probabilities.items()}


def choose_weights(
    val_targets: np.ndarray | None, val_probabilities: Mapping[str, np.ndarray], evaluate: EvaluateParams
) -> tuple[dict[str, float], dict[str, float]]:
    """The weights of the ensemble's members (`evaluate.members`, `evaluate.ensemble`) and each
    model's validation ROC AUC they came from; with no validation (`val_targets` None), equal weights
    and no AUCs."""
    if val_targets is None:
        return {name: 1 / len(evaluate.members) for name in evaluate.members}, {}
    val_auc: dict[str, float] = {
        name: image_metrics(val_targets, probs, 0.5).get("roc_auc", 0.5)
        for name, probs in val_probabilities.items()
    }
    return ensemble_weights({name: val_auc[name] for name in evaluate.members}, evaluate.ensemble), val_auc


def soft_vote(probabilities: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The ensemble's probability: the weighted mean of its members' (calibrated) probabilities."""
    return np.sum([weights[name] * probabilities[name] for name in weights], axis=0)


def choose_threshold_on(
    val_targets: np.ndarray | None, val_probabilities: np.ndarray | None, evaluate: EvaluateParams
) -> float:
    """`evaluate.threshold` when fixed, else the one that maximises it on these validation outputs."""
    criterion = chosen_by(evaluate.threshold)
    if criterion is None:
        return float(evaluate.threshold)
    if val_targets is None or val_probabilities is None:
        raise ValueError(
            f"evaluate.threshold: {evaluate.threshold} needs a validation split the models did not train on"
        )
    return choose_threshold(val_targets, val_probabilities, criterion)


@dataclass(frozen=True)
class RunDecision:
    """What one evaluate run decided, once: the rule, every scored entry's threshold, the ensemble's
    members and weights, each model's temperature. Every output of the run is written from it."""

    rule: ThresholdRule  # fixed, or the criterion every threshold was chosen by on validation
    thresholds: dict[str, float]  # every scored entry: the models, the ensemble, the colour baseline
    weights: dict[str, float]  # the ensemble's members -> weight (they sum to 1)
    temperatures: dict[str, float]  # model -> temperature fitted on validation (empty: not calibrated)
    validation_images: int  # how many images it was chosen on (0: none, the models trained on val)
    test_time_flips: bool = False  # evaluate averaged every view with its mirrored copies

    @property
    def criterion(self) -> Criterion | None:
        return chosen_by(self.rule)

    def threshold(self, name: str) -> float:
        return self.thresholds[name]

    def members_of(self, name: str) -> tuple[str, ...]:
        """The models whose outputs make `name`'s: the ensemble's members, or the model itself."""
        return tuple(self.weights) if name == ENSEMBLE else (name,)

    def decisions(self, digests: Mapping[str, str]) -> dict[str, Decision]:
        """The decision of every model and of the ensemble, bound to their model files' `digests`."""
        return {
            name: Decision(
                model=name,
                threshold=self.thresholds[name],
                threshold_rule=self.rule,
                temperature=None if name == ENSEMBLE else self.temperatures.get(name),
                weights=dict(self.weights) if name == ENSEMBLE else {},
                test_time_flips=self.test_time_flips,
                model_digests={n: digests[n] for n in self.members_of(name)},
                validation_images=self.validation_images,
            )
            for name in (*MODEL_NAMES, ENSEMBLE)
        }


def write_decisions(chosen: Mapping[str, Decision], files: Mapping[str, Path]) -> None:
    for name, decision in chosen.items():
        write_json(files[name], decision.model_dump(mode="json"))


# ---- reading (predict, Grad-CAM, the model card, cross-validation) ------------------------------


def stored_threshold(metrics: Mapping[str, Any], name: str) -> float | None:
    """A scored entry's threshold as metrics/evaluate.json stores the run's decision
    (`<name>.threshold`; in older metrics one top-level `threshold` for every entry); None when
    there is none."""
    entry = metrics.get(name)
    value = entry.get("threshold") if isinstance(entry, Mapping) else None
    value = metrics.get("threshold") if value is None else value
    return float(value) if is_number(value) else None


def read_decision(path: Path) -> Decision | None:
    """A decision file, validated (every number finite and in range); None when there is none."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecisionError(f"{path}: not a readable decision file ({exc})") from exc
    try:
        return Decision.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in issue['loc']) or '(top level)'}: {issue['msg']} "
            f"(got {issue.get('input')!r})"
            for issue in exc.errors()
        )
        raise DecisionError(f"{path}: invalid decision: {problems}") from None


def check_digests(path: Path, decision: Decision, model_files: Mapping[str, Path]) -> None:
    """Refuse a decision chosen for other model files than these (a retrained or swapped model)."""
    for name, model_path in model_files.items():
        expected = decision.model_digests.get(name)
        if expected is not None and expected != file_digest(model_path):
            raise DecisionError(
                f"{path}: chosen for another {name} model file than {model_path} (sha256 "
                f"{expected[:12]} there, {file_digest(model_path)[:12]} here): re-run `dvc repro evaluate` "
                "to choose for this model, or delete the decision file and pass --threshold"
            )


def check_members(path: Path, decision: Decision, model_files: Mapping[str, Path]) -> None:
    """Refuse an ensemble decision unless every member it was made for is among `model_files` (the
    models present) with the digest it was made for: an ensemble never silently loses a member."""
    absent = [name for name in decision.weights if name not in model_files]
    if absent:
        raise DecisionError(
            f"{path}: made for the ensemble of {', '.join(decision.weights)}, but "
            f"{', '.join(absent)} {'is' if len(absent) == 1 else 'are'} not in the models folder: fetch "
            "the models it was made for (`dvc pull`), re-run `dvc repro evaluate` to decide for the "
            "models present, or predict with one --model"
        )
    check_digests(path, decision, {name: model_files[name] for name in decision.weights})


@dataclass(frozen=True)
class PredictionRule:
    """How one prediction run turns the outputs of the models it runs into classes."""

    deciding: str  # the model whose probability decides, or the ensemble
    threshold: float
    threshold_source: str
    weights: dict[str, float]  # the ensemble's over the models run (one model: {name: 1.0})
    model_decisions: dict[str, Decision | None]  # each model's own (None: never evaluated)

    def calibrate(self, name: str, probabilities: np.ndarray) -> np.ndarray:
        decision = self.model_decisions.get(name)
        return (
            np.asarray(probabilities, dtype="float64")
            if decision is None
            else decision.calibrate(probabilities)
        )

    def output_threshold(self, name: str) -> float:
        """The model's own threshold on its raw output (Grad-CAM explains the class it predicts)."""
        decision = self.model_decisions.get(name)
        return self.threshold if decision is None else decision.output_threshold()


def prediction_rule(
    names: Sequence[str],
    deciding: str,
    model_decisions: Mapping[str, Decision | None],
    ensemble: Decision | None,
    threshold: float | None = None,
    source: str = "",
) -> tuple[PredictionRule, list[str]]:
    """The rule for a prediction run of the models `names`, deciding by `deciding`, and warnings.

    The threshold is `--threshold` when given, else the deciding decision's; a model or ensemble that
    was never evaluated decides at 0.5, uncalibrated, with a warning. The ensemble's weights are the
    evaluated ensemble's, renormalised over the models present."""
    warnings: list[str] = []
    decision = ensemble if deciding == ENSEMBLE else model_decisions.get(deciding)
    if threshold is not None:
        if not (0.0 < threshold < 1.0 and math.isfinite(threshold)):
            raise ValueError(f"--threshold {threshold}: must be between 0 and 1")
        chosen, chosen_from = threshold, "--threshold"
    elif decision is not None:
        chosen, chosen_from = decision.threshold, f"{source or 'the decision'}: {decision.describe()}"
    else:
        chosen, chosen_from = 0.5, "default: never evaluated"
        warnings.append(
            f"{deciding} was never evaluated (no decision file): threshold 0.5, no calibration; "
            "run `dvc repro evaluate`, or pass --threshold"
        )
    unevaluated = [name for name in names if model_decisions.get(name) is None]
    if unevaluated and deciding == ENSEMBLE:
        warnings.append(f"{', '.join(unevaluated)} never evaluated: uncalibrated outputs")
    weights = {name: 1.0 / len(names) for name in names}
    if deciding == ENSEMBLE and ensemble is not None:
        total = sum(ensemble.weights.get(name, 0.0) for name in names)
        if total > 0:
            weights = {name: ensemble.weights.get(name, 0.0) / total for name in names}
    rule = PredictionRule(deciding, chosen, chosen_from, weights, {n: model_decisions.get(n) for n in names})
    return rule, warnings
