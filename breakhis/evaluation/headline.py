"""metrics/headline.json: the ten numbers a reviewer reads first, a pure function of evaluate.json.

    test_images                      how many test images every number below is measured on
    roc_auc.<entry>                  test ROC AUC of each model, the ensemble and the colour baseline
    ensemble.<metric>                the ensemble's image accuracy, balanced accuracy, patient
                                     recognition rate and patient accuracy

Evaluate writes it beside evaluate.json; dvc.yaml declares it first among evaluate's metrics, and
the pull-request comment leads with it (commands.pr_comment). A metric that is undefined on the test
split (ROC AUC with one class only) is null, as in evaluate.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from breakhis.evaluation.metrics import (
    ACCURACY,
    BALANCED_ACCURACY,
    PATIENT_ACCURACY,
    RECOGNITION_RATE,
    ROC_AUC,
)
from breakhis.pipeline.param_types import ENSEMBLE, EVALUATED
from breakhis.pipeline.paths import EVALUATE_METRICS

ENSEMBLE_METRICS = (ACCURACY, BALANCED_ACCURACY, RECOGNITION_RATE, PATIENT_ACCURACY)


def headline_metrics(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The headline of an evaluate.json summary (its values, unrounded)."""
    missing = [key for key in ("test_images", *EVALUATED) if key not in summary]
    if missing:
        raise ValueError(
            f"{EVALUATE_METRICS}: no {', '.join(f'`{key}`' for key in missing)} entry for the headline "
            "(an older or hand-edited file? run `dvc repro`)"
        )
    return {
        "test_images": summary["test_images"],
        ROC_AUC.key: {name: ROC_AUC.value_in(summary[name]) for name in EVALUATED},
        ENSEMBLE: {metric.name: metric.value_in(summary[ENSEMBLE]) for metric in ENSEMBLE_METRICS},
    }
