"""The BreakHis file-name grammar and folder checks, on crafted paths and on the real sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from breakhis.data.dataset import (
    LayoutError,
    find_slides_root,
    parse_image_name,
    parse_image_path,
    scan_images,
)

BREAST = Path("BreaKHis_v1/histology_slides/breast")


def official_path(label: str, subtype_dir: str, folder: str, mag: str, name: str) -> Path:
    return BREAST / label / "SOB" / subtype_dir / folder / mag / name


def test_parses_the_official_grammar() -> None:
    record = parse_image_path(
        official_path("benign", "adenosis", "SOB_B_A_14-22549AB", "100X", "SOB_B_A-14-22549AB-100-001.png")
    )
    assert (record.label, record.subtype, record.magnification) == ("benign", "A", 100)
    assert record.patient == "SOB_B_A_14-22549AB"
    assert record.patient_group == "14-22549"
    assert record.target == 0


def test_letter_suffixes_share_the_numeric_root() -> None:
    a = parse_image_path(
        official_path(
            "benign", "phyllodes_tumor", "SOB_B_PT_14-21998AB", "40X", "SOB_B_PT-14-21998AB-40-001.png"
        )
    )
    b = parse_image_path(
        official_path("benign", "fibroadenoma", "SOB_B_F_14-21998CD", "40X", "SOB_B_F-14-21998CD-40-001.png")
    )
    assert a.patient != b.patient
    assert a.patient_group == b.patient_group == "14-21998"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (official_path("benign", "adenosis", "SOB_B_A_14-22549AB", "100X", "IMG_0001.png"), "grammar"),
        (
            official_path(
                "benign", "adenosis", "SOB_B_A_14-22549AB", "100X", "SOB_B_ZZ-14-22549AB-100-001.png"
            ),
            "unknown tumour type",
        ),
        (
            official_path(
                "benign", "adenosis", "SOB_B_A_14-22549AB", "100X", "SOB_M_A-14-22549AB-100-001.png"
            ),
            "name says malignant",
        ),
        (
            official_path(
                "benign", "adenosis", "SOB_B_A_14-22549AB", "40X", "SOB_B_A-14-22549AB-100-001.png"
            ),
            "magnification folder",
        ),
        (
            official_path("benign", "adenosis", "SOB_B_A_14-11111", "100X", "SOB_B_A-14-22549AB-100-001.png"),
            "patient folder",
        ),
        (
            official_path(
                "benign", "fibroadenoma", "SOB_B_A_14-22549AB", "100X", "SOB_B_A-14-22549AB-100-001.png"
            ),
            "subtype folder",
        ),
        (
            official_path(
                "malignant", "adenosis", "SOB_B_A_14-22549AB", "100X", "SOB_B_A-14-22549AB-100-001.png"
            ),
            "class folder",
        ),
        (
            official_path(
                "benign", "adenosis", "SOB_B_A_14-22549AB", "100X", "SOB_B_A-14-22549AB-300-001.png"
            ),
            "magnification 300",
        ),
    ],
)
def test_refuses_names_that_break_the_grammar_or_contradict_folders(path: Path, message: str) -> None:
    with pytest.raises(LayoutError, match=message) as error:
        parse_image_path(path)
    assert path.name in str(error.value)


def test_names_parse_alone_outside_the_layout(sample_tree: Path) -> None:
    for record in scan_images(sample_tree):
        assert parse_image_name(Path("elsewhere") / record.filename) == record.__class__(
            **{**record.as_row(), "source": str(Path("elsewhere") / record.filename)}
        )
    with pytest.raises(LayoutError, match="grammar"):
        parse_image_name(Path("IMG_0001.png"))
    with pytest.raises(LayoutError, match="name says malignant"):
        parse_image_name(Path("SOB_M_A-14-22549AB-100-001.png"))


def test_scans_the_real_sample(sample_tree: Path) -> None:
    records = scan_images(sample_tree)
    assert len(records) == 11
    assert {r.subtype for r in records} == {"A", "F", "PT", "TA", "DC", "LC", "MC", "PC"}
    assert {r.magnification for r in records} == {40, 100, 200, 400}
    assert sum(r.label == "benign" for r in records) == 4
    assert len({r.patient_group for r in records}) == 9  # DC and LC 14-13412 share a root


def test_scan_filters_magnifications(sample_tree: Path) -> None:
    assert {r.magnification for r in scan_images(sample_tree, [100])} == {100}


def test_finds_the_tree_from_a_parent_folder(sample_tree: Path) -> None:
    assert find_slides_root(sample_tree.parent) == sample_tree / "histology_slides" / "breast"


def test_missing_and_empty_paths_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_slides_root(tmp_path / "nowhere")
    with pytest.raises(LayoutError, match=str(tmp_path)):
        scan_images(tmp_path)
