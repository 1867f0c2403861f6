"""The eight-subtype task: derived binary metrics by hand, subtype metrics by hand, baselines,
temperature scaling and Grad-CAM of a softmax model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from breakhis.evaluation.calibration import apply_temperature, fit_temperature
from breakhis.evaluation.metrics import evaluate_predictions
from breakhis.evaluation.subtype import (
    MACRO_F1,
    evaluate_subtypes,
    majority_subtype_baseline,
    paired_macro_f1_difference,
)
from breakhis.evaluation.subtype import image_metrics as subtype_image_metrics
from breakhis.pipeline.task import SUBTYPE_CLASSES, malignant_probability, predicted_subtypes, targets

#                A    F    PT   TA   DC   LC   MC   PC
PROBABILITIES = np.array(
    [
        [0.4, 0.2, 0.1, 0.1, 0.1, 0.1, 0.0, 0.0],  # A, benign:     call A,  P(malignant) 0.2
        [0.1, 0.0, 0.0, 0.1, 0.8, 0.0, 0.0, 0.0],  # F, benign:     call DC, P(malignant) 0.8
        [0.3, 0.0, 0.0, 0.0, 0.4, 0.3, 0.0, 0.0],  # DC, malignant: call DC, P(malignant) 0.7
        [0.0, 0.1, 0.0, 0.0, 0.0, 0.2, 0.3, 0.4],  # LC, malignant: call PC, P(malignant) 0.9
    ]
)


def rows(subtypes: list[str], patients: list[str] | None = None) -> pd.DataFrame:
    malignant = [code in ("DC", "LC", "MC", "PC") for code in subtypes]
    return pd.DataFrame(
        {
            "subtype": subtypes,
            "target": np.asarray(malignant, dtype=int),
            "patient": patients or [f"P{i}" for i in range(len(subtypes))],
            "patient_group": patients or [f"G{i}" for i in range(len(subtypes))],
            "magnification": 100,
        }
    )


def test_binary_metrics_derived_from_subtype_probabilities_by_hand() -> None:
    """P(malignant) is the sum of DC, LC, MC and PC: 0.2, 0.8, 0.7, 0.9. By hand, of the four
    benign-malignant pairs (0.2, 0.7), (0.2, 0.9), (0.8, 0.7), (0.8, 0.9) three are ordered right:
    ROC AUC 0.75. At 0.5: image 1 benign (TN), 2 malignant (FP), 3 and 4 malignant (TP)."""
    derived = malignant_probability(PROBABILITIES)
    np.testing.assert_allclose(derived, [0.2, 0.8, 0.7, 0.9])
    result = evaluate_predictions(rows(["A", "F", "DC", "LC"]), derived, 0.5)
    image = result["image"]
    assert image["roc_auc"] == pytest.approx(0.75)
    assert (image["tn"], image["fp"], image["fn"], image["tp"]) == (1, 1, 0, 2)
    assert image["accuracy"] == pytest.approx(0.75)
    assert image["recall"] == pytest.approx(1.0) and image["specificity"] == pytest.approx(0.5)
    assert image["balanced_accuracy"] == pytest.approx(0.75)
    assert malignant_probability(derived) is not None and np.array_equal(
        malignant_probability(derived), derived
    )


def test_the_subtype_call_and_the_derived_call_can_disagree() -> None:
    """Adenosis is the most probable subtype at 0.4, but the carcinomas share 0.6."""
    p = np.array([[0.4, 0.0, 0.0, 0.0, 0.2, 0.2, 0.2, 0.0]])
    assert predicted_subtypes(p) == ["A"] and malignant_probability(p)[0] == pytest.approx(0.6)


def test_subtype_metrics_by_hand() -> None:
    """Calls A, DC, DC, PC for A, F, DC, LC: accuracy 2/4. Recall A 1, F 0, DC 1, LC 0 -> balanced
    accuracy 0.5. F1: A 1, F 0, DC 2/3 (precision 1/2, recall 1), LC 0 -> macro-F1 (1 + 2/3) / 4
    over the four subtypes present; PC is predicted once and never right (precision 0)."""
    actual = targets(rows(["A", "F", "DC", "LC"]), "subtype")
    np.testing.assert_array_equal(actual, [0, 1, 4, 5])
    result = subtype_image_metrics(actual, PROBABILITIES)
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["balanced_accuracy"] == pytest.approx(0.5)
    assert result["macro_f1"] == pytest.approx((1 + 2 / 3) / 4)
    per_class = result["per_class"]
    assert per_class["DC"] == {
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "images": 1,
        "predicted": 2,
    }
    assert per_class["PC"]["precision"] == 0.0 and per_class["PC"]["recall"] is None
    assert per_class["PT"] == {"precision": None, "recall": None, "f1": None, "images": 0, "predicted": 0}
    by_hand = np.mean([skm.roc_auc_score(actual == i, PROBABILITIES[:, i]) for i in (0, 1, 4, 5)])
    assert result["roc_auc_ovr"] == pytest.approx(by_hand)


def test_patient_subtype_accuracy_uses_the_mean_of_a_patients_images() -> None:
    """Patient X (DC): image calls A and DC, but the mean of the two rows calls DC."""
    p = np.array(
        [
            [0.6, 0.0, 0.0, 0.0, 0.4, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.9, 0.1, 0.0, 0.0],
            [0.0, 0.7, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0],
        ]
    )
    entry = evaluate_subtypes(
        rows(["DC", "DC", "F"], ["X", "X", "Y"]), p, resamples=100, confidence=0.95, seed=0
    )
    assert entry["image"]["accuracy"] == pytest.approx(2 / 3)
    assert entry["patient"] == {"accuracy": 1.0, "patients": 2}
    assert set(entry["ci"]) == {"subtype_accuracy", "subtype_balanced_accuracy", "subtype_macro_f1"}
    # Brier by hand: (0.6^2 + 0.6^2) + (0.1^2 + 0.1^2) + (0.3^2 + 0.3^2), over 3 images
    assert entry["calibration"]["brier"] == pytest.approx((0.72 + 0.02 + 0.18) / 3)


def test_majority_subtype_comes_from_train_never_from_test() -> None:
    train = rows(["DC", "DC", "DC", "A"])
    test = rows(["A", "A", "F", "DC"])
    baseline = majority_subtype_baseline(test, train)
    assert baseline["subtype"] == "DC" and baseline["accuracy"] == pytest.approx(0.25)
    assert baseline["balanced_accuracy"] == pytest.approx(1 / 3)  # recall 1 for DC, 0 for A and F


def test_paired_macro_f1_against_a_baseline() -> None:
    """A perfect model against a constant one, on 16 patients of four subtypes: better; a model
    against itself: within noise, difference 0."""
    codes = ["A", "F", "DC", "LC"] * 4
    frame = rows(codes)
    perfect = np.eye(8)[targets(frame, "subtype")]
    constant = np.tile(np.eye(8)[0], (len(codes), 1))
    better = paired_macro_f1_difference(frame, perfect, constant, resamples=200, confidence=0.95, seed=0)
    assert better["verdict"] == "better" and better["macro_f1_difference"] == pytest.approx(1 - 0.4 / 4)
    same = paired_macro_f1_difference(frame, perfect, perfect, resamples=200, confidence=0.95, seed=0)
    assert same["verdict"] == "within noise" and same["macro_f1_difference"] == 0
    assert MACRO_F1.value_in({"subtype": {"image": {"macro_f1": 0.3}}}) == 0.3


def test_temperature_of_a_softmax_keeps_the_call_and_fits_overconfidence() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(400, 8)) * 3
    truth = np.array([rng.choice(8, p=np.exp(row) / np.exp(row).sum()) for row in logits])
    overconfident = apply_temperature(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), 1 / 3)
    temperature = fit_temperature(truth, overconfident)
    assert 2.0 < temperature < 4.5  # the true temperature is 3
    calibrated = apply_temperature(overconfident, temperature)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    np.testing.assert_array_equal(calibrated.argmax(axis=1), overconfident.argmax(axis=1))
    np.testing.assert_allclose(apply_temperature(calibrated, 1.0), calibrated, atol=1e-5)


def test_class_order_puts_the_benign_subtypes_first() -> None:
    assert SUBTYPE_CLASSES == ("A", "F", "PT", "TA", "DC", "LC", "MC", "PC")
    with pytest.raises(ValueError, match="unknown subtype 'XX'"):
        targets(rows(["A"]).assign(subtype="XX"), "subtype")


@pytest.mark.slow
def test_class_weights_and_the_macro_auc_of_a_subtype_model() -> None:
    """Balanced weights n / (k n_c) over the subtypes present, 1 for an absent one (Keras needs a
    weight per index); the `auc` a subtype model monitors is the one-vs-rest macro AUC."""
    from breakhis.modeling.training import MacroAUC, balanced_class_weights

    weights = balanced_class_weights(np.array([0, 0, 0, 4, 5, 5]), classes=8)
    assert weights == {0: 2 / 3, 1: 1.0, 2: 1.0, 3: 1.0, 4: 2.0, 5: 1.0, 6: 1.0, 7: 1.0}
    assert balanced_class_weights(np.array([0, 1, 1, 1])) == {0: 2.0, 1: 2 / 3}  # binary as before
    truth = np.array([0, 1, 4, 5, 0, 1, 4, 5])
    p = np.full((8, 8), 0.01)
    p[np.arange(8), truth] = 0.93
    p[7] = np.roll(p[7], 1)  # one image ranked wrong
    metric = MacroAUC(8)
    metric.update_state(truth, p)
    by_hand = np.mean([skm.roc_auc_score(truth == i, p[:, i]) for i in (0, 1, 4, 5)])
    assert float(metric.result()) == pytest.approx(by_hand, abs=0.02)
