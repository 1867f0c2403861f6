"""What a BreakHis file name says about a predicted image (patient, magnification, label), and
the per-patient summary of a prediction table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from breakhis.data.dataset import LayoutError, parse_image_name
from breakhis.data.task_of import SUBTYPE_PROBABILITY_COLUMNS
from breakhis.pipeline.task import predicted_subtypes


@dataclass(frozen=True)
class NameInfo:
    """What a BreakHis file name says; empty strings for other names."""

    patient: str = ""
    patient_group: str = ""
    magnification: str = ""
    label_from_name: str = ""


def name_info(path: str) -> NameInfo:
    try:
        record = parse_image_name(Path(path))
    except LayoutError:
        return NameInfo()
    return NameInfo(record.patient, record.patient_group, f"{record.magnification}X", record.label)


def aggregate_by_patient(predictions: pd.DataFrame, probability: str, threshold: float) -> pd.DataFrame:
    """Per patient (BreakHis-named rows only), as in breakhis.evaluation.metrics: the mean probability decides
    the patient's class; `malignant_fraction` is the fraction of their images predicted malignant. With
    subtype probabilities (`p_A`...), also their means and the patient's most probable subtype.
    Unlike metrics.per_patient (evaluate's and CV's), it has no labels to score: it describes
    predictions (the patient's group, image count, fraction predicted malignant), not correctness."""
    named = predictions[predictions["patient"] != ""]
    frame = named.assign(malignant=(named[probability] >= threshold).astype(float))
    per_patient = frame.groupby("patient", sort=True).agg(
        patient_group=("patient_group", "first"),
        label_from_name=("label_from_name", "first"),
        images=("path", "size"),
        mean_probability=(probability, "mean"),
        malignant_fraction=("malignant", "mean"),
    )
    per_patient["predicted_class"] = np.where(
        per_patient["mean_probability"] >= threshold, "malignant", "benign"
    )
    per_patient["threshold"] = threshold
    columns = list(SUBTYPE_PROBABILITY_COLUMNS)
    if set(columns) <= set(named.columns):
        means = named.groupby("patient", sort=True)[columns].mean()
        per_patient[columns] = means.round(6)
        per_patient["predicted_subtype"] = predicted_subtypes(means.to_numpy())
    return per_patient.reset_index().round({"mean_probability": 6, "malignant_fraction": 6})
