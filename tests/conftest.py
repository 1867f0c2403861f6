"""Shared fixtures: the project root, the BreakHis sample in tests/data, and tiny crafted manifests."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from breakhis.pipeline.code import PACKAGES
from breakhis.pipeline.params import Params

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def project_files(pattern: str = "*.py") -> list[Path]:
    """The project's code files matching `pattern`: the library's, the stages' and the commands'."""
    return sorted(p for package in PACKAGES for p in (PROJECT_ROOT / package).rglob(pattern))


def command_modules() -> list[str]:
    """Every project module with a `__main__` block (dotted names): each is a command."""
    return [
        ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
        for path in project_files()
        if re.search(r'^if __name__ == "__main__":', path.read_text(), re.MULTILINE)
    ]


# 11 real BreakHis images in the official layout (tests/data/breakhis-sample/README.md): part of the
# repository, so the tests that need real images run on every clone instead of skipping
SAMPLE_TREE = PROJECT_ROOT / "tests" / "data" / "breakhis-sample" / "BreaKHis_v1"


@pytest.fixture
def sample_tree() -> Path:
    assert SAMPLE_TREE.is_dir(), f"the BreakHis sample is missing from {SAMPLE_TREE}"
    return SAMPLE_TREE


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the working directory (where the stage writes its outputs)."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


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


# ---- tiny trained models for predict and Grad-CAM tests ------------------------------------------

TINY_INGEST_SIZE = (48, 72)  # `ingest.image_size` of the tiny models' "run"
TINY_MODEL_SIZE = (32, 32)


def tiny_run_params() -> Params:
    """The params the tiny models describe themselves with: synthetic 64x96 images ingested at
    TINY_INGEST_SIZE, the whole field resized to TINY_MODEL_SIZE."""
    return Params.model_validate(
        {
            "data": {"synthetic": {"image_size": [64, 96]}},
            "ingest": {"image_size": list(TINY_INGEST_SIZE)},
            "train": {"input": "field", "image_size": list(TINY_MODEL_SIZE)},
        }
    )


@pytest.fixture(scope="session")
def synthetic_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """24 synthetic BreakHis images (3 benign and 3 malignant patients, 100X and 400X, 64x96)."""
    from breakhis.data.synthetic import write_synthetic_breakhis

    tree = write_synthetic_breakhis(
        tmp_path_factory.mktemp("synthetic"),
        seed=7,
        benign_patients=3,
        malignant_patients=3,
        images_per_magnification=2,
        magnifications=(100, 400),
        image_size=(64, 96),
    )
    return sorted(tree.rglob("*.png"), key=lambda p: p.name)


def described_file(folder: Path, name: str, params: Params | None = None, **changes: object) -> Path:
    """`<folder>/<name>/model.keras` holding only its description (as the train stage writes it, from
    `params`, default TINY_RUN's): enough for everything that runs before TensorFlow loads a model."""
    import zipfile

    from breakhis.modeling.description import DESCRIPTION_MEMBER, describe
    from breakhis.pipeline.paths import model_file

    description = describe(
        name,
        params or tiny_run_params(),
        data_files=[],
        images=24,
        copies=6,
        validation_images=0,
        magnifications=(params or tiny_run_params()).data.magnifications,
        training={"epochs_trained": 2, "kept_epoch": 1},
    ).model_copy(update=changes)
    path = model_file(name, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(DESCRIPTION_MEMBER, description.model_dump_json())
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, synthetic_images: list[Path]) -> Path:
    """custom, vgg19 and resnet50 at 32x32 (weights: none, whole field), trained 2 epochs on the
    synthetic images through the prediction preprocessing and saved as the train stage saves them
    (`<model>/model.keras`, described by TINY_RUN's params); returns their folder. No decisions."""
    import keras
    import numpy as np

    from breakhis.data.dataset import parse_image_name
    from breakhis.modeling.architectures import build_custom_cnn, build_transfer_model
    from breakhis.modeling.description import describe, save_model
    from breakhis.modeling.prediction import load_for_model, model_inputs
    from breakhis.pipeline.param_types import MODEL_NAMES
    from breakhis.pipeline.paths import model_file

    folder = tmp_path_factory.mktemp("models")
    images = np.stack([load_for_model(p, TINY_INGEST_SIZE) for p in synthetic_images])
    targets = np.array([parse_image_name(p).target for p in synthetic_images], dtype="float32")
    for name in MODEL_NAMES:
        keras.utils.set_random_seed(0)
        if name == "custom":
            model = build_custom_cnn(TINY_MODEL_SIZE, [8, 16, 16, 32], 0.2, True)
        else:
            model = build_transfer_model(name, TINY_MODEL_SIZE, "none", 0.2).model
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        model.fit(model_inputs(name, model, images), targets, epochs=2, batch_size=8, verbose=0)
        description = describe(
            name,
            tiny_run_params(),
            data_files=[],
            images=len(images),
            validation_images=0,
            magnifications=tiny_run_params().data.magnifications,
            training={"epochs_trained": 2, "kept_epoch": -1},
        )
        save_model(model, model_file(name, folder), description)
        keras.backend.clear_session()
    return folder


def module_from_file(path: Path, name: str) -> ModuleType:
    """A Python file that is not in a package (run.py, docs/hooks.py), loaded as module `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
