"""Shared fixtures: the project root, the shared BreakHis sample, and tiny crafted manifests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_TREE = PROJECT_ROOT.parent / "shared" / "breakhis-sample" / "BreaKHis_v1"


@pytest.fixture
def sample_tree() -> Path:
    if not SAMPLE_TREE.is_dir():
        pytest.skip(f"the shared BreakHis sample is not at {SAMPLE_TREE}")
    return SAMPLE_TREE


def crafted_manifest(benign_patients: int = 8, malignant_patients: int = 16, images: int = 6) -> pd.DataFrame:
    """A manifest with `images` images per patient; patients 2k and 2k+1 of a class share a group."""
    rows = []
    for label, count in (("benign", benign_patients), ("malignant", malignant_patients)):
        for p in range(count):
            root = f"14-{label[0]}{p // 2}"
            patient = f"SOB_{label[0].upper()}_X_{root}{'CD' if p % 2 else 'AB'}"
            for i in range(images):
                rows.append(
                    {
                        "path": f"data/ingested/images/{patient}-{i}.png",
                        "filename": f"{patient}-{i}.png",
                        "label": label,
                        "target": int(label == "malignant"),
                        "subtype": "X",
                        "patient": patient,
                        "patient_group": root,
                        "magnification": (40, 100, 200, 400)[i % 4],
                        "pixel_hash": f"{patient}-{i}",
                    }
                )
    return pd.DataFrame(rows)
