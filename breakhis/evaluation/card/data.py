"""The model card's Data and split section: the source and what ingest kept, the patient-grouped
split and its counts, and what the models see of the train images (augmentation, jitter, stain,
patches)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from breakhis.evaluation.tables import MISSING, table
from breakhis.pipeline.param_types import MODEL_NAMES
from breakhis.pipeline.params import Params
from breakhis.pipeline.paths import INGEST_METRICS, SPLIT_METRICS
from breakhis.pipeline.train_params import fit_settings


def data_section(params: Params, ingest: Mapping[str, Any], split: Mapping[str, Any]) -> list[str]:
    lines = ["## Data and split", "", *_source_lines(params, ingest)]
    if not split:
        return [*lines, f"- Split summary not found ({SPLIT_METRICS}).", ""]
    return [*lines, *_split_lines(params, split), *_split_table(split), *_training_inputs(params), ""]


def _source_lines(params: Params, ingest: Mapping[str, Any]) -> list[str]:
    """Where the images come from, and what ingest kept of them (from its summary, `ingest`)."""
    lines = []
    source = ingest.get("source", params.data.source)
    lines.append(
        f"- Source: `{source}`"
        + (f" at `{params.data.path}`" if params.data.path else "")
        + f"; magnifications {', '.join(f'{m}X' for m in params.data.magnifications)}; images "
        f"cover-and-cropped to {params.ingest.image_size[0]}x{params.ingest.image_size[1]} (height x width)."
    )
    if source == "synthetic":
        lines.append(
            "- **These data are synthetic** (generated H&E-like images in the BreakHis layout): the "
            "metrics below test the pipeline, not the models' value on real tissue."
        )
    if ingest:
        by_class = ingest.get("by_class", {})
        lines.append(
            f"- Ingested: {ingest.get('images', 'n/a')} images of {ingest.get('patients', 'n/a')} "
            f"patients ({ingest.get('patient_groups', 'n/a')} patient groups); "
            f"benign {by_class.get('benign', 'n/a')}, malignant {by_class.get('malignant', 'n/a')}; "
            f"{ingest.get('duplicates', 'n/a')} pixel-identical duplicate(s) dropped, "
            f"{ingest.get('rejected', 0)} unreadable image(s) rejected."
        )
    else:
        lines.append(f"- Ingest summary not found ({INGEST_METRICS}).")
    return lines


def _split_lines(params: Params, split: Mapping[str, Any]) -> list[str]:
    """How the split was made (from its summary, `split`), with a warning when it leaks patients."""
    lines = []
    if split.get("leaky"):
        lines.append(
            "- **WARNING: this split is by image; patients are in more than one split and the "
            "metrics are inflated.**"
        )
    strategy = split.get("strategy", params.split.strategy)
    fold = {
        "kfold": f" (test fold {params.split.fold} of {params.split.folds})",
        "official": f" (official fold {params.split.fold + 1} of 5)",
    }.get(strategy, "")
    lines += [
        f"- Split strategy **{strategy}**{fold}, grouped by "
        f"`{split.get('group_by', params.split.group_by)}`, stratified by "
        f"{split.get('stratified_by', 'class')}, seed {params.seed}; "
        f"leak check: {split.get('leak_check', 'n/a')}.",
        "",
    ]
    return lines


def _split_table(split: Mapping[str, Any]) -> list[str]:
    """Images, patients and patient groups of each split, by class."""
    rows = []
    for name in ("train", "val", "test"):
        part = split.get(name, {})
        images, patients = part.get("images_by_class", {}), part.get("patients_by_class", {})
        rows.append(
            [
                name,
                str(part.get("images", MISSING)),
                f"{images.get('benign', MISSING)} / {images.get('malignant', MISSING)}",
                str(part.get("patients", MISSING)),
                f"{patients.get('benign', MISSING)} / {patients.get('malignant', MISSING)}",
                str(part.get("patient_groups", MISSING)),
            ]
        )
    header = [
        "Split",
        "Images",
        "Benign / malignant images",
        "Patients",
        "Benign / malignant patients",
        "Patient groups",
    ]
    return table(header, rows, "lrrrrr")


def _training_inputs(params: Params) -> list[str]:
    """What the models see of the train images: offline augmentation, on-line jitter, stain
    normalisation, patches."""
    augment = params.augment
    transforms = [
        name
        for name, on in (
            ("flips", augment.flip),
            ("quarter turns", augment.rotate90),
            (f"zoom {augment.zoom:g}", augment.zoom),
        )
        if on
    ]
    lines = [
        "",
        f"Train is augmented offline (classes balanced to a minority/majority ratio of "
        f"{augment.target_ratio:g}; {', '.join(transforms) or 'no transforms'}); validation and test "
        "are never augmented.",
    ]
    train = params.train
    online = [
        text
        for text, on in (
            (f"H&E stain jitter {train.hed_jitter:g}", train.hed_jitter),
            (f"HSV jitter {train.hsv_jitter:g}", train.hsv_jitter),
            ("random flips and rotations", train.online_augmentation),
        )
        if on
    ]
    if online:
        lines.append(f"On-line, every train image of both classes, each epoch: {', '.join(online)}.")
    if params.ingest.stain_normalization != "none":
        lines.append(
            f"Every image is stain-normalised ({params.ingest.stain_normalization}, fixed reference) "
            "at ingest and in predict."
        )
    if train.input == "patches":
        counts = ", ".join(
            f"{name} {fit_settings(train, params.models.of(name)).patches_per_image}" for name in MODEL_NAMES
        )
        lines.append(
            f"Models see patches of the field scaled by {train.patch_scale:g} (random patches per image "
            f"and epoch in training: {counts}; a covering grid, averaged, in evaluation)."
        )
    return lines
