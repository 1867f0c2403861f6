"""The model card's Models section: what each model file says it is, and how it was trained."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from breakhis.data.task_of import one_task, params_task
from breakhis.pipeline.files import file_digest
from breakhis.pipeline.param_types import MODEL_NAMES
from breakhis.pipeline.params import Params
from breakhis.pipeline.paths import model_file


def describe_file(path: Path) -> str:
    if not path.is_file():
        return "not present"
    return f"sha256 {file_digest(path)[:16]}, {path.stat().st_size / 1e6:.1f} MB"


def models_section(
    params: Params, models: Mapping[str, Mapping[str, Any] | str], models_dir: Path
) -> list[str]:
    """What each model file says it is (`models`: each model's description, as
    breakhis.modeling.description.describe_models reads them, or why it has none)."""
    lines = [
        "## Models",
        "",
        "| Model | Architecture | Initial weights | Sees | Trained on | Epochs (kept) | File |",
        "|---|---|---|---|---|---:|---|",
    ]
    synthetic = []
    for name in MODEL_NAMES:
        path = model_file(name, models_dir)
        description = models.get(name, "no description read")
        if isinstance(description, str):
            lines.append(f"| {name} | {description} | | | | | `{path}` |")
            continue
        view, data, training = description["input"], description["data"], description["training"]
        height, width = view["image_size"]
        sees = (
            f"{height}x{width} patches at scale {view['patch_scale']:g}"
            if view["view"] == "patches"
            else f"field resized to {height}x{width}"
        ) + ("" if view["stain_normalization"] == "none" else f", {view['stain_normalization']} stain")
        if view.get("colour", "rgb") != "rgb":
            sees += f", {view['colour']} only"
        copies = data.get("copies")
        counted = (
            "" if copies is None else f" ({data['images'] - copies} originals, {copies} augmented copies)"
        )
        trained_on = (
            f"{data['images']} {data['source']} images{counted}, "
            f"{'/'.join(f'{m}X' for m in data['magnifications'])}"
        )
        kept = training.get("kept_epoch", -1)
        epochs = f"{training.get('epochs_trained', 'n/a')} ({kept_name(kept)})"
        if members := training.get("members"):  # a seed ensemble: each network's epochs
            each = [
                f"seed {m['seed']}: {m['epochs_trained']} ({kept_name(m['kept_epoch'])})" for m in members
            ]
            epochs = f"{'; '.join(each)}: the mean of {len(members)} networks"
        weights = description["initial_weights"]
        weights = "none (from scratch)" if weights == "none" else weights
        lines.append(
            f"| {name} | {description['architecture']} | {weights} | "
            f"{sees} | {trained_on} | {epochs} | `{path}` ({describe_file(path)}) |"
        )
        if data["source"] == "synthetic":
            synthetic.append(name)
    train = params.train
    selection = (
        f"Early stopping monitors `{train.monitor}` on the validation split (patience {train.patience})"
        if train.validation == "split"
        else "No validation split (`train.validation: none`): every model trained on the train and "
        "validation patients for exactly its epochs, chosen by cross-validation"
    )
    lines += [
        "",
        f"{selection}; class weights {'on' if train.class_weights else 'off'}. Each model file carries this "
        "description (`breakhis-model.json` inside the `.keras` zip): predict reads it, not params.yaml.",
        "",
    ]
    if synthetic:
        lines += [
            f"**Trained on synthetic images only** ({', '.join(synthetic)}): the embedded demo data. "
            "These models have never seen a real slide; their outputs on real images mean nothing.",
            "",
        ]
    return lines


def summary_task(params: Params, models: Mapping[str, Mapping[str, Any] | str]) -> str:
    """The task the models' descriptions say they were trained for (params.yaml's when they cannot say)."""
    described = {
        name: params_task(entry, f"{name}'s description")
        for name, entry in models.items()
        if isinstance(entry, Mapping)
    }
    return one_task(described) or params.task


def kept_name(kept: int) -> str:
    """The kept epoch as the card names it: 1-based, or `last`."""
    return "last" if kept == -1 else str(kept + 1)
