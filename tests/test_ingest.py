"""The ingest stage on copies of the real BreakHis sample: every source form, every kind of bad
input (each error names the file or key, and leaves earlier output alone), duplicates and sizes."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from breakhis.data.archives import ArchiveError
from breakhis.data.dataset import LayoutError
from breakhis.data.folds import FoldsError
from breakhis.pipeline.params import ParamsError
from stages import ingest as ingest_stage
from tests.raw_data import (
    DUPLICATE,
    DUPLICATE_OF,
    SAMPLE_GROUPS,
    SHORT_IMAGE,
    copy_tree,
    expected_fold,
    folds_rows,
    image_path,
    make_kaggle_zip,
    make_tar_gz,
    tar_member,
    truncate,
    write_png,
)

SIZE = (92, 140)  # small, so the tests stay fast; BreakHis's 700x460 aspect
# a train section that fits every small ingested field here (params refuse patches larger than the
# scaled field before any stage works: breakhis.pipeline.coherence)
TRAIN_FITS = {"input": "field", "image_size": [32, 32]}
ALL = (40, 100, 200, 400)  # every magnification of the sample (the default leaves 40X out)


@pytest.fixture
def tree(sample_tree: Path, tmp_path: Path) -> Path:
    return copy_tree(sample_tree, tmp_path / "raw")


def run(path: Path | str | None, source: str = "breakhis", **ingest: object) -> dict:
    """Run the stage in the current folder on `path`; return metrics/ingest.json."""
    params = {
        "data": {"source": source, "path": None if path is None else str(path), "magnifications": list(ALL)},
        "ingest": {"image_size": list(SIZE), **ingest},
        "train": TRAIN_FITS,
    }
    Path("params.yaml").write_text(yaml.safe_dump(params))
    ingest_stage.main()
    return json.loads(Path("metrics/ingest.json").read_text())


def outputs(project: Path) -> dict[str, bytes]:
    """Every output file's bytes, to check that a failed run changed nothing."""
    files = [*(project / "data/ingested").rglob("*"), project / "metrics/ingest.json"]
    return {str(f.relative_to(project)): f.read_bytes() for f in files if f.is_file()}


def manifest(project: Path) -> pd.DataFrame:
    return pd.read_csv(project / "data/ingested/manifest.csv", keep_default_na=False)


def test_the_official_tree_gives_the_sample_counts(project: Path, tree: Path) -> None:
    metrics = run(tree)
    assert metrics["files"] == 11
    assert metrics["images"] == 10
    assert metrics["duplicates"] == 1
    assert metrics["subtypes"] == 8
    assert metrics["patients"] == 10
    assert metrics["patient_groups"] == 9
    assert metrics["patient_groups_by_class"] == {"benign": 4, "malignant": 5}
    assert metrics["rejected"] == 0
    assert metrics["original_sizes"] == {"700x456": 1, "700x460": 9}
    table = manifest(project)
    assert set(table["patient_group"]) == SAMPLE_GROUPS
    assert not any(c.startswith("fold_") for c in table.columns)  # no published folds here
    record = table.set_index("filename").loc["SOB_B_A-14-22549AB-100-027.png"]
    assert (record["label"], record["subtype"], record["magnification"]) == ("benign", "A", 100)
    assert (record["patient"], record["patient_group"]) == ("SOB_B_A_14-22549AB", "14-22549")
    for path in table["path"]:
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        assert image.shape == (*SIZE, 3)
    assert not (project / "data/ingested.partial").exists()


def test_the_duplicate_pair_is_found_by_pixels_and_one_kept(project: Path, tree: Path) -> None:
    first, second = image_path(tree, DUPLICATE_OF), image_path(tree, DUPLICATE)
    assert first.read_bytes() != second.read_bytes()  # only the pixels are equal
    run(tree)
    duplicates = pd.read_csv(project / "data/ingested/duplicates.csv")
    assert duplicates[["filename", "duplicate_of"]].values.tolist() == [[DUPLICATE, DUPLICATE_OF]]
    assert duplicates["duplicate_of_patient"].tolist() == ["SOB_M_DC_14-13412"]
    table = manifest(project)
    assert DUPLICATE_OF in set(table["filename"]) and DUPLICATE not in set(table["filename"])
    assert not (project / "data/ingested/images" / DUPLICATE).exists()
    assert table["pixel_hash"].is_unique


def test_the_700x456_image_ends_at_the_same_size_by_cover_and_crop(project: Path, tree: Path) -> None:
    run(tree, image_size=[460, 700])
    row = manifest(project).set_index("filename").loc[SHORT_IMAGE]
    assert (row["original_height"], row["original_width"]) == (456, 700)
    image = cv2.imread(row["path"])
    assert image.shape == (460, 700, 3)
    raw = cv2.imread(str(image_path(tree, SHORT_IMAGE)))
    scaled = cv2.resize(raw, (706, 460), interpolation=cv2.INTER_LINEAR)  # 460/456 * 700 = 706
    assert np.array_equal(image, scaled[:, 3:703])  # centre crop, 3 columns off each side


def test_a_parent_folder_a_tar_gz_and_a_zip_give_identical_output(
    project: Path, tree: Path, tmp_path: Path
) -> None:
    run(tree.parent)
    expected = outputs(project)
    archive = make_tar_gz(tree, tmp_path / "BreaKHis_v1.tar.gz")
    run(archive)
    assert outputs(project) == expected
    bundle = tmp_path / "BreaKHis_v1.zip"
    make_kaggle_zip(tree, bundle, folds=None)  # the nested Kaggle tree, read as source breakhis
    run(bundle)
    nested = outputs(project)
    assert nested.keys() == expected.keys()
    assert all(nested[k] == v for k, v in expected.items() if not k.endswith((".csv", ".json")))


def test_the_kaggle_zip_keeps_the_published_folds(project: Path, tree: Path, tmp_path: Path) -> None:
    bundle = make_kaggle_zip(tree, tmp_path / "breakhis.zip", folds_rows(tree))
    metrics = run(bundle, source="kaggle")
    assert (metrics["source"], metrics["images"], metrics["duplicates"]) == ("kaggle", 10, 1)
    table = manifest(project)
    for row in table.itertuples():
        for fold in range(1, 6):
            assert getattr(row, f"fold_{fold}") == expected_fold(tree, row.filename, fold)
    assert table["source"].str.startswith("BreaKHis_v1/BreaKHis_v1/histology_slides/").all()


def test_the_kaggle_folder_works_too(project: Path, tree: Path, tmp_path: Path) -> None:
    kaggle = tmp_path / "kaggle"
    copy_tree(tree, kaggle / "BreaKHis_v1")
    (kaggle / "Folds.csv").write_text("\n".join(folds_rows(tree)) + "\n")
    assert run(kaggle, source="kaggle")["images"] == 10
    assert set(manifest(project)["fold_3"]) == {"train", "test"}


def test_kaggle_without_folds_csv_names_the_path(project: Path, tree: Path, tmp_path: Path) -> None:
    run(tree)
    before = outputs(project)
    bundle = make_kaggle_zip(tree, tmp_path / "breakhis.zip", folds=None)
    with pytest.raises(FoldsError, match=f"no Folds.csv in data.path '{bundle}'"):
        run(bundle, source="kaggle")
    assert outputs(project) == before


def test_a_folds_csv_with_wrong_columns_or_missing_images_is_named(
    project: Path, tree: Path, tmp_path: Path
) -> None:
    kaggle = tmp_path / "kaggle"
    copy_tree(tree, kaggle / "BreaKHis_v1")
    run(tree)
    before = outputs(project)
    folds = kaggle / "Folds.csv"
    folds.write_text("fold,magnification,grp,filename\n1,100,train,x.png\n")
    with pytest.raises(FoldsError, match=r"Folds.csv: missing column\(s\) mag"):
        run(kaggle, source="kaggle")
    folds.write_text("\n".join(line for line in folds_rows(tree) if SHORT_IMAGE not in line) + "\n")
    with pytest.raises(FoldsError, match=f"{SHORT_IMAGE}: not in Folds.csv"):
        run(kaggle, source="kaggle")
    assert outputs(project) == before


def test_a_truncated_png_stops_ingest_and_keeps_the_earlier_output(project: Path, tree: Path) -> None:
    run(tree)
    before = outputs(project)
    broken = image_path(tree, SHORT_IMAGE)
    truncate(broken)
    with pytest.raises(ingest_stage.IngestError, match="1 image") as error:
        run(tree)
    assert f"{SHORT_IMAGE}: not a readable image (truncated" in str(error.value)
    assert outputs(project) == before
    assert not (project / "data/ingested.partial").exists()


def test_every_unusable_image_is_reported_in_one_error(project: Path, tree: Path) -> None:
    run(tree)
    before = outputs(project)
    folder = image_path(tree, "SOB_B_F-14-14134E-400-001.png").parent
    color = cv2.imread(str(folder / "SOB_B_F-14-14134E-400-001.png"))
    bad = {
        "SOB_B_F-14-14134E-400-002.png": "grayscale",
        "SOB_B_F-14-14134E-400-003.png": "RGBA",
        "SOB_B_F-14-14134E-400-004.png": "not a readable image",
        "SOB_B_F-14-14134E-400-005.png": "smaller than ingest.image_size",
        "SOB_B_F-14-14134E-400-006.png": "width/height 0.66",
        "SOB_B_F-14-14134E-400-007.png": "empty file",
    }
    names = iter(bad)
    write_png(folder / next(names), cv2.cvtColor(color, cv2.COLOR_BGR2GRAY))
    write_png(folder / next(names), cv2.cvtColor(color, cv2.COLOR_BGR2BGRA))
    (folder / next(names)).write_text("this is not an image\n")
    write_png(folder / next(names), cv2.resize(color, (70, 46)))
    write_png(folder / next(names), np.ascontiguousarray(color.transpose(1, 0, 2)))  # portrait 460x700
    (folder / next(names)).write_bytes(b"")
    with pytest.raises(ingest_stage.IngestError, match=f"{len(bad)} image") as error:
        run(tree)
    for name, reason in bad.items():
        assert any(name in line and reason in line for line in str(error.value).splitlines()), name
    assert outputs(project) == before


def test_skip_leaves_bad_images_out_and_lists_them(project: Path, tree: Path) -> None:
    truncate(image_path(tree, SHORT_IMAGE))
    (image_path(tree, "SOB_B_F-14-14134E-400-001.png").parent / "SOB_B_F-14-14134E-400-002.png").write_text(
        "x"
    )
    metrics = run(tree, on_error="skip")
    assert (metrics["files"], metrics["images"], metrics["rejected"], metrics["duplicates"]) == (12, 9, 2, 1)
    rejected = pd.read_csv(project / "data/ingested/rejected.csv")
    assert sorted(rejected["filename"]) == ["SOB_B_F-14-14134E-400-002.png", SHORT_IMAGE]
    assert rejected["reason"].str.contains("not a readable image").all()
    assert SHORT_IMAGE not in set(manifest(project)["filename"])


def test_a_file_renamed_against_its_folder_is_named(project: Path, tree: Path) -> None:
    run(tree)
    before = outputs(project)
    original = image_path(tree, "SOB_M_DC-14-3909-100-014.png")
    renamed = original.with_name("SOB_M_LC-14-3909-100-014.png")  # lobular name, ductal folder
    original.rename(renamed)
    with pytest.raises(LayoutError, match="SOB_M_LC-14-3909-100-014.png: the name says patient folder"):
        run(tree)
    assert outputs(project) == before


def test_a_file_name_outside_the_grammar_is_named(project: Path, tree: Path) -> None:
    original = image_path(tree, "SOB_M_DC-14-3909-100-014.png")
    run(tree)
    before = outputs(project)
    original.rename(original.with_name("IMG_0001.png"))
    with pytest.raises(LayoutError, match="IMG_0001.png: file name does not follow"):
        run(tree)
    assert outputs(project) == before


def test_clutter_and_documents_are_ignored(project: Path, tree: Path) -> None:
    breast = tree / "histology_slides/breast"
    (breast / "count_per_image.xls").write_bytes(b"\xd0\xcf")
    (image_path(tree, SHORT_IMAGE).parent / ".DS_Store").write_bytes(b"\0")
    (image_path(tree, SHORT_IMAGE).parent / "Thumbs.db").write_bytes(b"\0")
    metrics = run(tree)
    assert (metrics["images"], metrics["ignored_files"]) == (10, 3)


def test_an_archive_member_escaping_the_target_is_refused(project: Path, tree: Path, tmp_path: Path) -> None:
    run(tree)
    before = outputs(project)
    archive = make_tar_gz(
        tree,
        tmp_path / "evil.tar.gz",
        {
            "escape": tar_member("../escaped.png"),
            "link": tar_member("BreaKHis_v1/l", tarfile.SYMTYPE, "/etc"),
        },
    )
    with pytest.raises(ArchiveError) as error:
        run(archive)
    message = str(error.value)
    assert "../escaped.png: path leaves the extraction folder" in message
    assert "BreaKHis_v1/l: symbolic link to '/etc'" in message
    assert not list(project.parent.rglob("escaped.png"))
    assert outputs(project) == before
    assert not list((project / "data/extracted").iterdir())  # nothing of it is kept


def test_an_unchanged_archive_is_extracted_once(
    project: Path, tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = make_tar_gz(tree, tmp_path / "BreaKHis_v1.tar.gz")
    run(archive)
    (first,) = (project / "data/extracted").iterdir()
    marker = first / "marker"
    marker.touch()  # would vanish with a new extraction
    capsys.readouterr()
    run(archive, image_size=[46, 70])
    assert "unchanged, reusing" in capsys.readouterr().err
    assert marker.exists()
    image_path(tree, SHORT_IMAGE).unlink()
    make_tar_gz(tree, archive)  # new content, same name
    assert run(archive)["files"] == 10
    (second,) = (project / "data/extracted").iterdir()
    assert second != first  # the stale extraction is gone


@pytest.mark.parametrize("kind", ["missing", "empty", "blank", "null", "file"])
def test_a_missing_or_empty_data_path_is_named(project: Path, tree: Path, tmp_path: Path, kind: str) -> None:
    run(tree)
    before = outputs(project)
    target = tmp_path / "nowhere"
    if kind == "missing":
        with pytest.raises(FileNotFoundError, match=f"data.path '{target}' does not exist"):
            run(target)
    elif kind == "empty":
        target.mkdir()
        with pytest.raises(LayoutError, match=f"data.path '{target}': no BreaKHis_v1 tree"):
            run(target)
    elif kind in ("blank", "null"):
        with pytest.raises(ParamsError, match="data.path is required when data.source is 'breakhis'"):
            run("" if kind == "blank" else None)
    else:
        target.write_text("not data")
        with pytest.raises(ArchiveError, match=f"data.path '{target}' is neither a folder nor an archive"):
            run(target)
    assert outputs(project) == before


def test_one_or_several_workers_give_identical_output(project: Path, tree: Path) -> None:
    run(tree, workers=1)
    single = outputs(project)
    run(tree, workers=3)
    assert outputs(project) == single


def test_the_synthetic_default_still_ingests(project: Path) -> None:
    Path("params.yaml").write_text(
        yaml.safe_dump(
            {
                "data": {
                    "magnifications": [100],
                    "synthetic": {
                        "benign_patients": 2,
                        "malignant_patients": 2,
                        "images_per_magnification": 3,
                        "image_size": [96, 128],
                    },
                },
                "ingest": {"image_size": [48, 64]},
                "train": TRAIN_FITS,
            }
        )
    )
    ingest_stage.main()
    metrics = json.loads(Path("metrics/ingest.json").read_text())
    assert (metrics["source"], metrics["images"], metrics["rejected"]) == ("synthetic", 12, 0)
    assert manifest(project)["source"].str.startswith("BreaKHis_v1/histology_slides/breast/").all()


def test_the_stage_exits_with_one_readable_line(project: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    Path("params.yaml").write_text(
        yaml.safe_dump({"data": {"source": "breakhis", "path": str(tmp_path / "gone.tar.gz")}})
    )
    env = {**os.environ, "PYTHONPATH": str(Path(ingest_stage.__file__).parents[1])}
    result = subprocess.run(
        [sys.executable, "-m", "stages.ingest"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: data.path '{tmp_path / 'gone.tar.gz'}' does not exist"


def test_skip_with_nothing_usable_is_an_error(project: Path, tree: Path) -> None:
    for file in tree.rglob("*.png"):
        truncate(file)
    with pytest.raises(ingest_stage.IngestError, match=f"data.path '{tree}' has no usable image. 11 image"):
        run(tree, on_error="skip")
    assert not (project / "data/ingested").exists()
