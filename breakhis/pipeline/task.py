"""The two BreakHis tasks (`task` in params.yaml): what a model predicts, and how its outputs read.

- `binary`: one sigmoid output, P(malignant); targets 0 (benign) and 1 (malignant).
- `subtype`: eight softmax outputs, one per tumour subtype in `SUBTYPE_CLASSES` order (the four
  benign subtypes first); targets 0..7. The predicted subtype is the most probable one (no
  threshold); P(malignant) is the sum of the four malignant subtypes' probabilities, and the
  benign/malignant call compares it with the decision threshold, as in the binary task. So every
  binary metric of a subtype model is *derived*, and the two calls can disagree (adenosis at 0.30
  is the most probable subtype when the four carcinomas share 0.70).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

Task = Literal["binary", "subtype"]
# BreakHis's tumour subtypes: code -> (class, the subtype's folder in the official layout)
SUBTYPES: dict[str, tuple[str, str]] = {
    "A": ("benign", "adenosis"),
    "F": ("benign", "fibroadenoma"),
    "PT": ("benign", "phyllodes_tumor"),
    "TA": ("benign", "tubular_adenoma"),
    "DC": ("malignant", "ductal_carcinoma"),
    "LC": ("malignant", "lobular_carcinoma"),
    "MC": ("malignant", "mucinous_carcinoma"),
    "PC": ("malignant", "papillary_carcinoma"),
}
BINARY_CLASSES = ("benign", "malignant")
SUBTYPE_CLASSES = tuple(SUBTYPES)  # A, F, PT, TA (benign), DC, LC, MC, PC (malignant)
MALIGNANT_SUBTYPES = tuple(code for code, (label, _) in SUBTYPES.items() if label == "malignant")
FIRST_MALIGNANT = SUBTYPE_CLASSES.index(MALIGNANT_SUBTYPES[0])
assert SUBTYPE_CLASSES[FIRST_MALIGNANT:] == MALIGNANT_SUBTYPES  # benign first: P(malignant) is a tail sum


def classes(task: Task) -> tuple[str, ...]:
    return SUBTYPE_CLASSES if task == "subtype" else BINARY_CLASSES


def outputs(task: Task) -> int:
    """Units of a model's output layer: one sigmoid (binary), one softmax unit per subtype."""
    return len(SUBTYPE_CLASSES) if task == "subtype" else 1


def task_of(probabilities: np.ndarray) -> Task:
    """The task of a model's outputs: one probability per image, or a row of eight."""
    return "subtype" if np.ndim(probabilities) == 2 else "binary"


def subtype_index(rows: pd.DataFrame, source: str = "the split") -> np.ndarray:
    """Each row's subtype as its index in SUBTYPE_CLASSES; ValueError naming the first bad value."""
    if "subtype" not in rows:
        raise ValueError(f"{source}: no subtype column (task: subtype needs the subtype of every image)")
    index = rows["subtype"].map({code: i for i, code in enumerate(SUBTYPE_CLASSES)})
    if index.isna().any():
        bad = rows.loc[index.isna(), "subtype"].iloc[0]
        raise ValueError(f"{source}: unknown subtype {bad!r} (expected one of {', '.join(SUBTYPE_CLASSES)})")
    return index.to_numpy(dtype=int)


def targets(rows: pd.DataFrame, task: Task, source: str = "the split") -> np.ndarray:
    """What a model of the task learns for each row: 0/1 (binary) or the subtype index."""
    return subtype_index(rows, source) if task == "subtype" else rows["target"].to_numpy(dtype=int)


def malignant_probability(probabilities: np.ndarray) -> np.ndarray:
    """P(malignant) per image: a binary model's output, or a subtype model's four malignant columns summed."""
    probabilities = np.asarray(probabilities, dtype="float64")
    if probabilities.ndim == 1:
        return probabilities
    return probabilities[:, FIRST_MALIGNANT:].sum(axis=1).clip(0.0, 1.0)


def predicted_subtypes(probabilities: np.ndarray) -> list[str]:
    return [SUBTYPE_CLASSES[i] for i in np.asarray(probabilities).argmax(axis=1)]
