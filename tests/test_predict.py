"""breakhis-predict: inputs, preprocessing shared with training, per-patient summaries, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from breakhis.data.images import ImageError, cover_and_crop, read_rgb, write_rgb
from breakhis.data.input_files import read_inputs
from breakhis.evaluation.decision import Decision, DecisionError, prediction_rule
from breakhis.modeling.description import ModelFileError
from breakhis.modeling.models_folder import find_models
from breakhis.modeling.per_patient import aggregate_by_patient, name_info
from breakhis.modeling.prediction import check_images, load_for_model
from breakhis.pipeline.files import file_digest, write_json
from breakhis.pipeline.param_types import ENSEMBLE, MODEL_NAMES
from breakhis.pipeline.paths import decision_file, model_file
from tests.conftest import PROJECT_ROOT, TINY_INGEST_SIZE, described_file

SIZE = (230, 350)
ENSEMBLE_COLUMNS = [
    "path",
    "custom_probability",
    "vgg19_probability",
    "resnet50_probability",
    "ensemble_probability",
    "predicted_class",
    "threshold",
    "patient",
    "patient_group",
    "magnification",
    "label_from_name",
    "unseen_by",
]
PATIENT_COLUMNS = [
    "patient",
    "patient_group",
    "label_from_name",
    "images",
    "mean_probability",
    "malignant_fraction",
    "predicted_class",
    "threshold",
]


def tissue(height: int = 230, width: int = 350, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def run_predict(args: list[str]) -> None:
    from commands.predict import main

    main([*args, "--quiet"])


# ---- inputs --------------------------------------------------------------------------------------


def test_collects_files_folders_and_csvs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = write_png(tmp_path / "a.png", tissue())
    write_png(tmp_path / "folder" / "deep" / "b.PNG", tissue())
    write_png(tmp_path / "folder" / "c.jpg", tissue())
    (tmp_path / "folder" / "notes.txt").write_text("not an image")
    lists = tmp_path / "lists"
    write_png(lists / "d.png", tissue())
    (lists / "paths.csv").write_text(f"path,label\nd.png,x\n{a},y\n")  # relative to the CSV, absolute
    monkeypatch.chdir(tmp_path)
    paths = read_inputs(["a.png", "folder", "lists/paths.csv"]).named
    assert paths == [
        "a.png",
        str(Path("folder/c.jpg")),
        str(Path("folder/deep/b.PNG")),
        str(Path("lists/d.png")),
        str(a),
    ]


def test_input_errors_name_the_problem(tmp_path: Path) -> None:
    write_png(tmp_path / "ok.png", tissue())
    (tmp_path / "empty").mkdir()
    (tmp_path / "nopath.csv").write_text("file\nok.png\n")
    (tmp_path / "listing.csv").write_text("path\nmissing.png\n")
    with pytest.raises(
        FileNotFoundError, match=r"2 input\(s\) not found[\s\S]*nothere.png[\s\S]*missing.png"
    ):
        read_inputs([tmp_path / "nothere.png", tmp_path / "listing.csv"])
    with pytest.raises(ValueError, match="no image files"):
        read_inputs([tmp_path / "empty"])
    with pytest.raises(ValueError, match="no 'path' column"):
        read_inputs([tmp_path / "nopath.csv"])


def test_bad_images_are_all_reported_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("breakhis.data.images.MAX_PIXELS", 1000 * 1000)
    good = write_png(tmp_path / "good.png", tissue())
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:100])
    text = tmp_path / "text.png"
    text.write_text("hello")
    grey = write_png(tmp_path / "grey.png", tissue()[..., 0])
    small = write_png(tmp_path / "small.png", tissue(150, 228))  # ingest would enlarge it
    square = write_png(tmp_path / "square.png", tissue(300, 300))  # not a BreakHis field of view
    huge = write_png(tmp_path / "huge.png", np.zeros((1000, 1522, 3), np.uint8))
    large = write_png(tmp_path / "large.png", np.zeros((800, 1217, 3), np.uint8))  # fine
    breakhis_456 = write_png(tmp_path / "456.png", tissue(456, 700))  # fine
    bad = [truncated, text, grey, small, square, huge]
    with pytest.raises(ImageError) as error:
        check_images([str(p) for p in [good, large, breakhis_456, *bad]], SIZE)
    message = str(error.value)
    assert message.startswith("6 image(s) cannot be used")
    reasons = ["not a readable image"] * 2 + ["grayscale", "enlarged", "width/height", "whole-slide"]
    for path, reason in zip(bad, reasons, strict=True):
        assert any(str(path) in line and reason in line for line in message.splitlines()), (path, message)
    assert all(str(p) not in message for p in (good, large, breakhis_456))


def test_raw_and_ingested_files_give_the_same_image(sample_tree: Path, tmp_path: Path) -> None:
    raw = next(sample_tree.rglob("SOB_M_PC-14-12465-100-001.png"))  # the 700x456 one
    ingested = write_png(tmp_path / "ingested.png", cover_and_crop(read_rgb(raw), SIZE)[..., ::-1])
    from_raw = load_for_model(raw, SIZE)
    assert from_raw.shape == (*SIZE, 3)
    assert np.array_equal(from_raw, load_for_model(ingested, SIZE))
    assert np.array_equal(from_raw, load_for_model(ingested, None))


@pytest.mark.slow  # imports TensorFlow
def test_model_input_is_the_training_pipeline_s(sample_tree: Path, tmp_path: Path) -> None:
    """predict's path (raw file -> cover-and-crop -> model input) equals training's, which reads the
    ingested PNG with `input_pipeline.load_image` and applies `preprocess`."""
    import keras
    import tensorflow as tf

    from breakhis.modeling.input_pipeline import load_image, preprocess
    from breakhis.modeling.prediction import model_inputs

    raw = next(sample_tree.rglob("SOB_B_A-14-22549AB-100-027.png"))
    ingested = tmp_path / "ingested.png"
    write_rgb(ingested, cover_and_crop(read_rgb(raw), SIZE))
    for name in ("custom", "vgg19"):
        model = keras.Sequential([keras.Input((40, 56, 3)), keras.layers.GlobalAveragePooling2D()])
        ours = model_inputs(name, model, load_for_model(raw, SIZE)[np.newaxis])[0]
        training = preprocess(name, load_image(tf.constant(str(ingested)), (40, 56))).numpy()
        np.testing.assert_allclose(ours, training, atol=1e-4)


# ---- names and patients --------------------------------------------------------------------------


def test_breakhis_names_are_recognised_outside_the_layout() -> None:
    info = name_info("/anywhere/SOB_M_LC-14-13412-200-003.png")
    assert (info.patient, info.patient_group, info.magnification, info.label_from_name) == (
        "SOB_M_LC_14-13412",
        "14-13412",
        "200X",
        "malignant",
    )
    assert name_info("slide_17.png").patient == ""
    assert name_info("SOB_B_ZZ-14-1-100-001.png").patient == ""  # unknown type: not BreakHis


def test_aggregates_per_patient_like_the_metrics() -> None:
    table = pd.DataFrame(
        {
            "path": ["a", "b", "c", "d", "e"],
            "p": [0.9, 0.2, 0.4, 0.45, 0.99],
            "patient": ["P1", "P1", "P2", "P2", ""],
            "patient_group": ["G1", "G1", "G2", "G2", ""],
            "label_from_name": ["malignant", "malignant", "benign", "benign", ""],
        }
    )
    result = aggregate_by_patient(table, "p", 0.5).set_index("patient")
    assert list(result.reset_index().columns) == PATIENT_COLUMNS
    assert list(result.index) == ["P1", "P2"]  # the unnamed image is left out
    assert result.loc["P1", "mean_probability"] == pytest.approx(0.55)
    assert result.loc["P1", "malignant_fraction"] == 0.5
    assert result.loc["P1", "predicted_class"] == "malignant"
    assert result.loc["P2", "predicted_class"] == "benign"
    assert result.loc["P2", "images"] == 2


# ---- models that describe themselves, and the decisions beside them ------------------------------


def decide(folder: Path, name: str, threshold: float, **fields: object) -> Decision:
    """A decision for the model file(s) in `folder`, written where evaluate writes it."""
    members = fields.pop("weights", {}) if name == ENSEMBLE else {}
    names = list(members) if members else [name]
    decision = Decision(
        model=name,
        threshold=threshold,
        threshold_rule="youden",
        weights=members,
        model_digests={n: file_digest(model_file(n, folder)) for n in names},
        validation_images=10,
        **fields,
    )
    write_json(decision_file(name, folder), decision.model_dump(mode="json"))
    return decision


def test_models_folder_layouts_and_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no model files"):
        find_models(tmp_path, "ensemble")
    with pytest.raises(ModelFileError, match=r"vgg19/model\.keras: model file not found"):
        find_models(tmp_path, "vgg19")
    for name in ("custom", "resnet50"):
        described_file(tmp_path, name)
    found = find_models(tmp_path, "ensemble")
    assert (found.names, found.missing, found.deciding, found.ensemble) == (
        ["custom", "resnet50"],
        ["vgg19"],
        "ensemble",
        None,
    )
    assert [entry.decision for entry in found.entries] == [None, None]
    # one model's folder, as `dvc artifacts get` delivers it: the name comes from the file
    single = find_models(tmp_path / "resnet50", "ensemble")
    assert (single.names, single.deciding) == (["resnet50"], "resnet50")
    assert find_models(tmp_path / "resnet50", "resnet50").names == ["resnet50"]


def test_a_mislabeled_model_file_is_refused(tmp_path: Path) -> None:
    """A VGG19 saved as the custom model is named, in a models folder and in a fetched folder."""
    vgg19 = described_file(tmp_path / "elsewhere", "vgg19")
    (tmp_path / "custom").mkdir()
    shutil.copy(vgg19, model_file("custom", tmp_path))
    for model in ("ensemble", "custom"):
        with pytest.raises(
            ModelFileError, match=r"custom/model\.keras: this is the vgg19 model[\s\S]*not custom"
        ):
            find_models(tmp_path, model)
    with pytest.raises(ModelFileError, match="this is the vgg19 model"):
        find_models(tmp_path / "custom", "custom")


def test_a_model_file_without_a_description_is_refused(tmp_path: Path) -> None:
    path = model_file("custom", tmp_path)
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")  # a Keras file from elsewhere
    with pytest.raises(ModelFileError, match="does not say what it is"):
        find_models(tmp_path, "custom")
    path.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a Keras model file"):
        find_models(tmp_path, "custom")
    path.unlink()
    (tmp_path / "custom.keras").write_bytes(b"the layout before models described themselves")
    with pytest.raises(ModelFileError, match="custom.keras in the layout before"):
        find_models(tmp_path, "ensemble")


def test_decisions_are_read_checked_and_bound_to_their_model_file(tmp_path: Path) -> None:
    for name in MODEL_NAMES:
        described_file(tmp_path, name)
    decide(tmp_path, "custom", 0.3, temperature=2.0)
    decide(tmp_path, "vgg19", 0.4)
    decide(tmp_path, ENSEMBLE, 0.55, weights={"custom": 0.0, "vgg19": 0.25, "resnet50": 0.75})
    found = find_models(tmp_path, "ensemble")
    assert found.ensemble is not None and found.ensemble.threshold == 0.55
    # a retrained (or swapped) model file: its old decision must not be applied to it
    described_file(tmp_path, "vgg19", training={"epochs_trained": 3})
    with pytest.raises(DecisionError, match=r"vgg19/decision\.json: chosen for another vgg19 model file"):
        find_models(tmp_path, "vgg19")
    decision_file("vgg19", tmp_path).unlink()  # the model's own is gone: the ensemble's still binds it
    with pytest.raises(DecisionError, match=r"ensemble/decision\.json: chosen for another vgg19"):
        find_models(tmp_path, "ensemble")


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("threshold", float("nan"), "threshold"),
        ("threshold", float("inf"), "threshold"),
        ("threshold", 1.5, "threshold"),
        ("temperature", float("inf"), "temperature"),
        ("temperature", 0, "temperature"),
        ("model_digests", {}, "one digest"),
    ],
)
def test_a_decision_file_with_a_bad_number_is_refused(
    tmp_path: Path, field: str, value: object, named: str
) -> None:
    """Never every image benign because a threshold or temperature is not a number."""
    described_file(tmp_path, "custom")
    decision = decide(tmp_path, "custom", 0.3).model_dump(mode="json")
    path = decision_file("custom", tmp_path)
    path.write_text(json.dumps({**decision, field: value}))  # json writes NaN / Infinity
    with pytest.raises(DecisionError, match=rf"custom/decision\.json: invalid decision: .*{named}"):
        find_models(tmp_path, "custom")


def test_the_prediction_rule_comes_from_the_decisions() -> None:
    digests = dict.fromkeys(MODEL_NAMES, "0" * 64)
    own = {
        name: Decision(
            model=name,
            threshold=threshold,
            threshold_rule="youden",
            model_digests={name: digests[name]},
            validation_images=10,
        )
        for name, threshold in (("custom", 0.3), ("vgg19", 0.4), ("resnet50", 0.6))
    }
    ensemble = Decision(
        model=ENSEMBLE,
        threshold=0.55,
        threshold_rule="youden",
        weights={"custom": 0.0, "vgg19": 0.25, "resnet50": 0.75},
        model_digests=digests,
        validation_images=10,
    )
    rule, warnings = prediction_rule(["custom", "vgg19"], ENSEMBLE, own, ensemble)  # resnet50 missing
    assert rule.threshold == 0.55 and "youden on the validation split" in rule.threshold_source
    assert rule.weights == {"custom": 0.0, "vgg19": 1.0}  # renormalised over the models present
    assert (rule.output_threshold("custom"), rule.output_threshold("vgg19")) == (0.3, 0.4)
    assert warnings == []
    assert prediction_rule(["resnet50"], "resnet50", own, None)[0].threshold == 0.6
    only_custom, _ = prediction_rule(["custom"], ENSEMBLE, own, ensemble)
    assert only_custom.weights == {"custom": 1.0}  # no weight left: equal weights, as evaluate does
    assert prediction_rule(["vgg19"], "vgg19", own, None, threshold=0.2)[0].threshold == 0.2
    with pytest.raises(ValueError, match="--threshold 1.5"):
        prediction_rule(["vgg19"], "vgg19", own, None, threshold=1.5)
    never, warnings = prediction_rule(["custom"], "custom", {"custom": None}, None)
    assert never.threshold == 0.5 and never.weights == {"custom": 1.0}
    assert warnings and "never evaluated" in warnings[0]


def test_images_at_magnifications_a_model_never_saw_are_named(tmp_path: Path) -> None:
    from commands.predict import unseen_by, unseen_magnifications

    described_file(tmp_path, "custom")  # trained at 100/200/400X (the synthetic default's)
    found = find_models(tmp_path, "custom")
    warnings = unseen_magnifications(found, pd.Series(["40X", "100X", "40X", "", "400X"]))
    assert warnings == [
        "2 at 40X: custom was trained on 100X/200X/400X only; its outputs at other magnifications are "
        "extrapolation"
    ]
    assert unseen_magnifications(found, pd.Series(["100X", "200X", ""])) == []
    assert unseen_by(found, pd.Series(["40X", "100X", ""])).tolist() == ["custom", "", ""]


@pytest.mark.slow  # imports TensorFlow
def test_a_broken_model_file_is_named(tmp_path: Path) -> None:
    from breakhis.modeling.description import load_model

    path = described_file(tmp_path, "custom")  # a description, but no network
    with pytest.raises(ModelFileError, match=r"custom/model\.keras: not a loadable Keras model"):
        load_model(path, "custom")


def test_the_command_fails_cleanly_before_loading_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    described_file(tmp_path / "models", "custom")  # no network inside: it must not even be loaded
    good = write_png(tmp_path / "good.png", tissue(48, 72))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n")
    out = tmp_path / "predictions.csv"
    args = ["--models-dir", str(tmp_path / "models"), "--out", str(out)]
    with pytest.raises(SystemExit) as exit_:
        run_predict([str(good), str(broken), *args])
    assert exit_.value.code == 1
    error = capsys.readouterr().err
    assert "error: 1 image(s) cannot be used" in error and "broken.png" in error
    assert "Traceback" not in error and not out.exists()
    with pytest.raises(SystemExit):
        run_predict([str(good), *args, "--model", "resnet50"])
    assert "resnet50/model.keras: model file not found" in capsys.readouterr().err


def test_console_script_is_declared() -> None:
    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["breakhis-predict"].split(":")
    assert (module, function) == ("commands.predict", "main")
    from commands import predict

    assert callable(getattr(predict, function))


# ---- against trained tiny models -----------------------------------------------------------------


@pytest.mark.slow
def test_predicts_the_shared_sample_per_image_and_per_patient(
    sample_tree: Path, tiny_models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "predictions.csv"
    run_predict([str(sample_tree), "--models-dir", str(tiny_models), "--out", str(out)])
    error = capsys.readouterr().err
    assert "trained on SYNTHETIC images only" in error  # the tiny models: synthetic, never evaluated
    assert "ensemble was never evaluated (no decision file): threshold 0.5" in error
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == ENSEMBLE_COLUMNS
    assert len(table) == 11
    probabilities = table[["custom_probability", "vgg19_probability", "resnet50_probability"]]
    assert ((probabilities >= 0) & (probabilities <= 1)).all().all()
    np.testing.assert_allclose(table["ensemble_probability"], probabilities.mean(axis=1), atol=2e-6)
    expected = np.where(table["ensemble_probability"] >= 0.5, "malignant", "benign")
    assert (table["predicted_class"] == expected).all() and (table["threshold"] == 0.5).all()
    assert (table["patient"] != "").all()

    patients = pd.read_csv(tmp_path / "out" / "predictions_patients.csv")
    assert list(patients.columns) == PATIENT_COLUMNS
    assert len(patients) == 10  # 11 images; SOB_M_LC_14-13412 has two
    lobular = patients.set_index("patient").loc["SOB_M_LC_14-13412"]
    rows = table[table["patient"] == "SOB_M_LC_14-13412"]
    assert lobular["images"] == 2
    assert lobular["mean_probability"] == pytest.approx(rows["ensemble_probability"].mean(), abs=1e-6)
    assert lobular["malignant_fraction"] == (rows["predicted_class"] == "malignant").mean()
    # the DC/LC duplicates are pixel-identical, so their predictions are too
    twins = table[table["path"].str.endswith("14-13412-100-026.png")]
    assert len(twins) == 2 and twins["ensemble_probability"].nunique() == 1


@pytest.mark.slow
def test_one_model_on_renamed_images_from_a_csv_with_explanations(
    synthetic_images: list[Path], tiny_models: Path, tmp_path: Path
) -> None:
    images = []
    for index, source in enumerate(synthetic_images[::6]):  # 4 images, names not BreakHis
        target = tmp_path / ("a" if index % 2 else "b") / "tile.png"  # two stems collide
        target.parent.mkdir(exist_ok=True)
        images.append(shutil.copy(source, tmp_path / f"tile_{index}.png" if index < 2 else target))
    listing = tmp_path / "images.csv"
    pd.DataFrame({"path": images}).to_csv(listing, index=False)
    out, explain = tmp_path / "custom.csv", tmp_path / "cams"
    args = ["--model", "custom", "--models-dir", str(tiny_models)]
    run_predict([str(listing), *args, "--out", str(out), "--explain", str(explain), "--threshold", "0.3"])
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == [
        "path",
        "custom_probability",
        "predicted_class",
        "threshold",
        "patient",
        "patient_group",
        "magnification",
        "label_from_name",
        "unseen_by",
    ]
    assert table["custom_probability"].between(0, 1).all() and (table["threshold"] == 0.3).all()
    assert (table["patient"] == "").all()
    assert not (tmp_path / "custom_patients.csv").exists()
    overlays = sorted(p.name for p in explain.iterdir())
    assert overlays == [
        "tile-2__custom.png",
        "tile-3__custom.png",
        "tile_0__custom.png",
        "tile_1__custom.png",
    ]
    shown = read_rgb(explain / "tile_0__custom.png")  # the overlay with its title and colour bar
    assert shown.shape[0] >= TINY_INGEST_SIZE[0] and shown.shape[1] > TINY_INGEST_SIZE[1]


@pytest.mark.slow
def test_the_ensemble_is_the_mean_of_the_models_present(
    synthetic_images: list[Path],
    tiny_models: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    models = tmp_path / "models"
    for name in ("custom", "resnet50"):
        shutil.copytree(tiny_models / name, models / name)
    out = tmp_path / "p.csv"
    run_predict([*map(str, synthetic_images[:5]), "--models-dir", str(models), "--out", str(out)])
    error = capsys.readouterr().err
    assert "vgg19/model.keras not in the models folder" in error and "never evaluated" in error
    table = pd.read_csv(out)
    assert "vgg19_probability" not in table
    np.testing.assert_allclose(
        table["ensemble_probability"],
        table[["custom_probability", "resnet50_probability"]].mean(axis=1),
        atol=2e-6,
    )
    patients = pd.read_csv(tmp_path / "p_patients.csv")
    assert patients["images"].sum() == 5

    # the evaluated ensemble's weights (made for the models present) and its threshold; each
    # model's temperature applied to its own outputs
    decide(models, "custom", 0.4, temperature=2.0)
    decide(models, ENSEMBLE, 0.45, weights={"custom": 0.25, "resnet50": 0.75})
    run_predict([*map(str, synthetic_images[:5]), "--models-dir", str(models), "--out", str(out)])
    weighted = pd.read_csv(out)
    raw = table.set_index("path").loc[weighted["path"]]
    from breakhis.evaluation.calibration import apply_temperature

    np.testing.assert_allclose(
        weighted["custom_probability"],
        apply_temperature(raw["custom_probability"].to_numpy(), 2.0),
        atol=2e-6,
    )
    np.testing.assert_allclose(
        weighted["ensemble_probability"],
        0.25 * weighted["custom_probability"] + 0.75 * weighted["resnet50_probability"],
        atol=2e-6,
    )
    assert (weighted["threshold"] == 0.45).all()

    # an ensemble made for a model that is gone is refused, never renormalised over the others
    (models / "vgg19").mkdir()
    shutil.copy(model_file("vgg19", tiny_models), models / "vgg19")
    decide(models, ENSEMBLE, 0.45, weights={"custom": 0.1, "vgg19": 0.6, "resnet50": 0.3})
    shutil.rmtree(models / "vgg19")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        run_predict([*map(str, synthetic_images[:5]), "--models-dir", str(models), "--out", str(out)])
    assert "but vgg19 is not in the models folder" in capsys.readouterr().err


@pytest.mark.slow
def test_runs_as_a_module(synthetic_images: list[Path], tiny_models: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "commands.predict",
            *map(str, synthetic_images[:2]),
            "--models-dir",
            str(tiny_models),
        ]
        + ["--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stderr and len(pd.read_csv(out)) == 2
