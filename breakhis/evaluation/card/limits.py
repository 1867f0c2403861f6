"""The model card's fixed text: what the models are for and not for, and what is known to be wrong with
the BreakHis data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from breakhis.pipeline.params import Params


def intended_use(task: str) -> list[str]:
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


def issues_section(params: Params, ingest: Mapping[str, Any]) -> list[str]:
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
