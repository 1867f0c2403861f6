"""The bad-input catalogue of the data stages (issue 24): ingest, split and augment, as a hostile but
realistic user feeds them.

Each case changes a copy of the real BreakHis sample (or a crafted manifest, or the project) and
names the one line the user gets; a failed run leaves the previous output whole with no partial
folder. The classes: a manifest whose rows contradict each other or leave a key empty (the empty
`patient_group` that looped forever among them); file names that only look like BreakHis names
(a trailing newline, non-ASCII digits); symbolic links, FIFOs and folders where images belong;
archives with too many members, Windows separators or a file listed twice; two runs at once,
SIGTERM and SIGKILL in the middle of a run. Every case runs under an alarm, so a loop without end
fails the test instead of hanging it; the stage itself runs once in a subprocess with a timeout.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import random
import re
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from breakhis.data import archives
from breakhis.data.manifest_checks import check_manifest
from breakhis.data.partition import make_splits
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.stage import USER_ERRORS
from stages import augment as augment_stage
from stages import ingest as ingest_stage
from stages import split as split_stage
from tests.conftest import PROJECT_ROOT, crafted_manifest
from tests.raw_data import copy_tree, folds_rows, image_path, make_tar_gz, tar_member
from tests.test_bad_input import leftovers, snapshot
from tests.test_ingest import SIZE, TRAIN_FITS
from tests.test_ingest import run as ingest

ALARM_SECONDS = 120  # far above any case (a few seconds): only a loop without end reaches it
ADENOSIS = "SOB_B_A-14-22549AB-100-027.png"  # the sample's image in .../adenosis/SOB_B_A_14-22549AB/100X
ADENOSIS_FOLDER = "SOB_B_A_14-22549AB"
MALIGNANT_TWIN = "SOB_M_DC-14-3909-100-014.png"
ENV = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}


@pytest.fixture(autouse=True)
def bounded() -> Iterator[None]:
    """Every case must end: SIGALRM turns a loop without end into a failure after ALARM_SECONDS."""

    def stop(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {ALARM_SECONDS} s: a loop without end?")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(ALARM_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def first_line(error: BaseException) -> str:
    return str(error).splitlines()[0]


# ---- the manifest, as split reads it ---------------------------------------------------------
# crafted_manifest(): 8 benign patients then 16 malignant, 6 images each (CSV lines 2-7 are
# SOB_B_X_14-b0AB, lines 8-13 SOB_B_X_14-b0CD, both in patient group 14-b0; malignant from line 50).


def set_cells(rows: list[int], **values: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(manifest: pd.DataFrame) -> pd.DataFrame:
        manifest = manifest.astype(object)
        for column, value in values.items():
            manifest.loc[rows, column] = value
        return manifest

    return change


def listed_twice(manifest: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([manifest, manifest.iloc[[0]]], ignore_index=True)


def same_path_two_files(manifest: pd.DataFrame) -> pd.DataFrame:
    manifest.loc[1, "path"] = manifest.loc[0, "path"]
    return manifest


def same_file_two_paths(manifest: pd.DataFrame) -> pd.DataFrame:
    manifest.loc[1, "filename"] = manifest.loc[0, "filename"]
    return manifest


B0AB = "SOB_B_X_14-b0AB"
LOOK_ALIKE = "SOB_B_X_14-b0\u0410B"  # a Cyrillic capital A

MANIFEST_CASES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str]] = {
    "a patient with both labels": (
        set_cells([0], label="malignant", target=1),
        f"patient '{B0AB}' has both labels: 'benign' (lines 3, 4, 5, 6, 7) and 'malignant' (line 2)",
    ),
    "a patient group with both labels": (
        set_cells(list(range(6, 12)), label="malignant", target=1),
        "patient group '14-b0' has both labels: 'benign' (lines 2, 3, 4, 5, 6, ... and 1 more) and "
        "'malignant' (lines 8, 9, 10, 11, 12, ... and 1 more)",
    ),
    "a target that contradicts its label": (
        set_cells([3], target=1),
        "line 5: target 1 contradicts label 'benign' (benign is 0, malignant 1)",
    ),
    "target 2": (set_cells([3], target=2), "line 5: target '2' is not 0 or 1"),
    "target -1": (set_cells([3], target=-1), "line 5: target '-1' is not 0 or 1"),
    "target 0.5": (set_cells([3], target=0.5), "line 5: target '0.5' is not 0 or 1"),
    "target inf": (set_cells([3], target="inf"), "line 5: target 'inf' is not 0 or 1"),
    "target 'yes'": (set_cells([3], target="yes"), "line 5: target 'yes' is not 0 or 1"),
    "an empty target": (set_cells([3], target=None), "line 5: target empty is not 0 or 1"),
    "the same image listed twice": (
        listed_twice,
        f"path 'data/ingested/images/{B0AB}-0.png' is listed 2 times (lines 2, 146)",
    ),
    "one path for two files": (
        same_path_two_files,
        f"path 'data/ingested/images/{B0AB}-0.png' is listed 2 times (lines 2, 3)",
    ),
    "one file name under two paths": (
        same_file_two_paths,
        f"filename '{B0AB}-0.png' is listed 2 times (lines 2, 3)",
    ),
    "an empty patient_group (looped forever)": (
        set_cells([3], patient_group=None),
        "empty patient_group in line 5",
    ),
    "a blank patient_group": (set_cells([3, 4], patient_group="   "), "empty patient_group in lines 5, 6"),
    "an empty path": (set_cells([3], path=None), "empty path in line 5"),
    "an empty file name": (set_cells([3], filename=None), "empty filename in line 5"),
    "an empty patient": (set_cells([3], patient=None), "empty patient in line 5"),
    "an empty label": (set_cells([3], label=None), "empty label in line 5"),
    "an empty subtype": (set_cells([3], subtype=None), "empty subtype in line 5"),
    "an empty pixel hash (the leak check would skip it)": (
        set_cells([3], pixel_hash=None),
        "empty pixel_hash in line 5",
    ),
    "a misspelt label": (
        set_cells([3], label="malignent"),
        "line 5: label 'malignent' is not benign or malignant",
    ),
    "a capitalised label": (
        set_cells([3], label="Benign"),
        "line 5: label 'Benign' is not benign or malignant",
    ),
    "a patient group with a trailing space": (
        set_cells([3], patient_group="14-b0 "),
        "line 5: patient_group '14-b0 ' has spaces or line breaks around it",
    ),
    "a patient group with a line break": (
        set_cells([3], patient_group="14-b0\n"),
        "line 5: patient_group '14-b0\\n' has spaces or line breaks around it",
    ),
    "a patient in two patient groups": (
        set_cells([3], patient_group="14-b9"),
        f"patient '{B0AB}' has more than one patient group: '14-b0' (lines 2, 3, 4, 6, 7) and '14-b9' "
        "(line 5)",
    ),
    "a look-alike Cyrillic letter in a patient": (
        set_cells([0], patient=LOOK_ALIKE),
        "line 2: patient 'SOB_B_X_14-b0\\u0410B' holds a control or non-ASCII character (a look-alike",
    ),
    "an empty magnification": (
        set_cells([3], magnification=None),
        "line 5: magnification empty is not one of 40, 100, 200, 400",
    ),
    "magnification 1000": (
        set_cells([3], magnification=1000),
        "line 5: magnification '1000' is not one of 40, 100, 200, 400",
    ),
    "magnification 100.5": (
        set_cells([3], magnification=100.5),
        "line 5: magnification '100.5' is not one of 40, 100, 200, 400",
    ),
}


def split_project(project: Path) -> Path:
    (project / "data/ingested").mkdir(parents=True)
    crafted_manifest().to_csv(project / "data/ingested/manifest.csv", index=False)
    Path("params.yaml").write_text(yaml.safe_dump({"seed": 1}))
    return project / "data/ingested/manifest.csv"


@pytest.mark.parametrize("case", MANIFEST_CASES)
def test_manifest_catalogue(case: str, project: Path) -> None:
    change, message = MANIFEST_CASES[case]
    path = split_project(project)
    split_stage.main()
    before = snapshot(project / "data/split")
    change(pd.read_csv(path)).to_csv(path, index=False)
    with pytest.raises(ValueError) as error:
        split_stage.main()
    assert message in str(error.value)
    assert str(error.value).startswith("data/ingested/manifest.csv: ")
    assert snapshot(project / "data/split") == before and leftovers(project) == []


def test_one_message_names_every_contradiction(project: Path) -> None:
    path = split_project(project)
    manifest = set_cells([3], target=2)(set_cells([0], label="malignant", target=1)(pd.read_csv(path)))
    listed_twice(manifest).to_csv(path, index=False)
    with pytest.raises(ValueError) as error:
        split_stage.main()
    lines = str(error.value).splitlines()
    assert lines[0] == (
        "data/ingested/manifest.csv: 4 contradictions or empty keys (a hand-edited or foreign file? ingest "
        "writes it consistent):"
    )
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "line 5",
        "path 'data/ingested/images/SOB_B_X_14-b0AB-0.png' is listed 2 times (lines 2, 146)",
        "filename 'SOB_B_X_14-b0AB-0.png' is listed 2 times (lines 2, 146)",
        f"patient '{B0AB}' has both labels",
    ]


def test_an_ingested_manifest_passes(project: Path, sample_tree: Path, tmp_path: Path) -> None:
    ingest(copy_tree(sample_tree, tmp_path / "raw"))
    check_manifest(pd.read_csv(project / "data/ingested/manifest.csv"), "manifest.csv")


def test_augment_checks_its_train_split_as_data(project: Path) -> None:
    from tests.test_augmentation import augment_project

    augment_project(project, workers=1)
    augment_stage.main()
    before = snapshot(project / "data/augmented")
    train = pd.read_csv(project / "data/split/train.csv")
    train.loc[2, "target"] = 1  # benign
    train.to_csv(project / "data/split/train.csv", index=False)
    with pytest.raises(
        ValueError, match=re.escape("data/split/train.csv: line 4: target 1 contradicts label")
    ):
        augment_stage.main()
    assert snapshot(project / "data/augmented") == before and leftovers(project) == []


def test_the_empty_patient_group_ends_in_a_subprocess_too(project: Path) -> None:
    """The hang as a user met it: `python -m stages.split` at full CPU for ever. Now one line."""
    path = split_project(project)
    set_cells([3], patient_group=None)(pd.read_csv(path)).to_csv(path, index=False)
    result = subprocess.run(
        [sys.executable, "-m", "stages.split"], capture_output=True, text=True, env=ENV, timeout=90
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: data/ingested/manifest.csv: empty patient_group in line 5"


def corrupted(manifest: pd.DataFrame, rng: random.Random) -> pd.DataFrame:
    """A few cells blanked, swapped between rows, or set to NaN, odd numbers or odd text."""
    manifest = manifest.astype(object)
    for _ in range(rng.randint(1, 6)):
        row, column = rng.randrange(len(manifest)), rng.choice(list(manifest.columns))
        manifest.loc[row, column] = rng.choice(
            [
                None,
                "",
                " ",
                np.nan,
                float("inf"),
                -1,
                2,
                "x\ny",
                manifest.loc[rng.randrange(len(manifest)), column],
            ]
        )
    return manifest


@pytest.mark.parametrize("seed", range(40))
def test_fuzzed_manifests_end_with_a_split_or_a_clean_error(seed: int, tmp_path: Path) -> None:
    """No loop of the split can run forever on any manifest: corrupted ones end (under the alarm)
    in a split or a user error, for every strategy."""
    rng = random.Random(seed)
    path = tmp_path / "manifest.csv"
    corrupted(crafted_manifest(), rng).to_csv(path, index=False)
    manifest = pd.read_csv(path)
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"split": {"strategy": rng.choice(["patient", "kfold"])}})
    )
    params = load_params(tmp_path / "params.yaml")
    try:
        check_manifest(manifest, path)
    except ValueError as exc:
        assert str(exc).startswith(f"{path}: ")
        return
    try:  # what passes the check splits, or fails as a user error (too few groups, say)
        make_splits(manifest, params.split, seed)
    except USER_ERRORS as exc:
        assert str(exc)


# ---- the raw tree, as ingest reads it --------------------------------------------------------


def adenosis_folder(tree: Path) -> Path:
    return image_path(tree, ADENOSIS).parent.parent


def renamed_adenosis(tree: Path, name: str) -> Path:
    image_path(tree, ADENOSIS).rename(image_path(tree, ADENOSIS).with_name(name))
    return tree


def rename_patient(tree: Path, folder: str, file: str) -> Path:
    """The adenosis patient's folder and file renamed consistently (as a tool that renames both would)."""
    patient = adenosis_folder(tree)
    (patient / "100X" / ADENOSIS).rename(patient / "100X" / file)
    patient.rename(patient.with_name(folder))
    return tree


def newline_in_name(tree: Path, tmp: Path) -> Path:
    return renamed_adenosis(tree, ADENOSIS + "\n")


def arabic_indic_year(tree: Path, tmp: Path) -> Path:
    return rename_patient(tree, "SOB_B_A_\u0661\u0664-22549AB", "SOB_B_A-\u0661\u0664-22549AB-100-027.png")


def full_width_magnification(tree: Path, tmp: Path) -> Path:
    return renamed_adenosis(tree, "SOB_B_A-14-22549AB-\uff11\uff10\uff10-027.png")


def arabic_indic_sequence(tree: Path, tmp: Path) -> Path:
    return renamed_adenosis(tree, "SOB_B_A-14-22549AB-100-\u0660\u0662\u0667.png")


def devanagari_slide(tree: Path, tmp: Path) -> Path:
    return rename_patient(tree, "SOB_B_A_14-\u0968\u0968549AB", "SOB_B_A-14-\u0968\u0968549AB-100-027.png")


def zero_padded_magnification(tree: Path, tmp: Path) -> Path:
    return renamed_adenosis(tree, "SOB_B_A-14-22549AB-0100-027.png")


def look_alike_subtype(tree: Path, tmp: Path) -> Path:
    return renamed_adenosis(tree, "SOB_B_\u0410-14-22549AB-100-027.png")  # Cyrillic A


def zero_width_space(tree: Path, tmp: Path) -> Path:
    return renamed_adenosis(tree, "SOB_B_A-14-22549AB\u200b-100-027.png")


def trailing_space_in_patient_folder(tree: Path, tmp: Path) -> Path:
    patient = adenosis_folder(tree)
    patient.rename(patient.with_name(ADENOSIS_FOLDER + " "))
    return tree


def look_alike_patient_folder(tree: Path, tmp: Path) -> Path:
    patient = adenosis_folder(tree)
    patient.rename(patient.with_name("SOB_B_\u0410_14-22549AB"))
    return tree


def linked_patient_inside(tree: Path, tmp: Path) -> Path:
    patient = adenosis_folder(tree)
    (tree / "stash").mkdir()
    patient.rename(tree / "stash" / ADENOSIS_FOLDER)
    patient.symlink_to(Path("../../../../../stash") / ADENOSIS_FOLDER, target_is_directory=True)
    return tree


def linked_patient_outside(tree: Path, tmp: Path) -> Path:
    patient = adenosis_folder(tree)
    patient.rename(tmp / ADENOSIS_FOLDER)
    patient.symlink_to(tmp / ADENOSIS_FOLDER, target_is_directory=True)
    return tree


def linked_magnification_folder(tree: Path, tmp: Path) -> Path:
    folder = image_path(tree, ADENOSIS).parent
    folder.rename(tmp / "100X")
    folder.symlink_to(tmp / "100X", target_is_directory=True)
    return tree


def linked_image_inside(tree: Path, tmp: Path) -> Path:
    image = image_path(tree, ADENOSIS)
    image.rename(tree / "stash.png")
    image.symlink_to(tree / "stash.png")
    return tree


def linked_image_outside(tree: Path, tmp: Path) -> Path:
    image = image_path(tree, ADENOSIS)
    image.rename(tmp / ADENOSIS)
    image.symlink_to(tmp / ADENOSIS)
    return tree


def dangling_link(tree: Path, tmp: Path) -> Path:
    image_path(tree, ADENOSIS).parent.joinpath("SOB_B_A-14-22549AB-100-028.png").symlink_to(tmp / "gone.png")
    return tree


def link_loop(tree: Path, tmp: Path) -> Path:
    loop = adenosis_folder(tree).parent / "loop"
    loop.symlink_to(loop, target_is_directory=True)
    return tree


def linked_slides_folder(tree: Path, tmp: Path) -> Path:
    (tree / "histology_slides").rename(tmp / "histology_slides")
    (tree / "histology_slides").symlink_to(tmp / "histology_slides", target_is_directory=True)
    return tree


def linked_dataset(tree: Path, tmp: Path) -> Path:
    holder = tmp / "holder"
    holder.mkdir()
    (holder / "BreaKHis_v1").symlink_to(tree, target_is_directory=True)
    return holder


def linked_folds_file(tree: Path, tmp: Path) -> Path:
    kaggle = tmp / "kaggle"
    copy_tree(tree, kaggle / "BreaKHis_v1")
    (tmp / "Folds.csv").write_text("\n".join(folds_rows(tree)) + "\n")
    (kaggle / "Folds.csv").symlink_to(tmp / "Folds.csv")
    return kaggle


def fifo_image(tree: Path, tmp: Path) -> Path:
    os.mkfifo(image_path(tree, ADENOSIS).with_name("SOB_B_A-14-22549AB-100-028.png"))
    return tree


def folder_named_like_an_image(tree: Path, tmp: Path) -> Path:
    image_path(tree, ADENOSIS).with_name("SOB_B_A-14-22549AB-100-028.png").mkdir()
    return tree


def empty_image(tree: Path, tmp: Path) -> Path:
    image_path(tree, ADENOSIS).write_bytes(b"")
    return tree


def linked_data_path(tree: Path, tmp: Path) -> Path:
    (tmp / "raw-link").symlink_to(tree, target_is_directory=True)
    return tmp / "raw-link"


def animated_image(tree: Path, tmp: Path) -> Path:
    """The adenosis field as an animated PNG: the field, then two altered frames."""
    from PIL import Image

    path = image_path(tree, ADENOSIS)
    with Image.open(path) as image:
        frames = [image.convert("RGB")] + [image.convert("RGB").rotate(angle) for angle in (90, 180)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return tree


def benign_and_malignant_twins(tree: Path, tmp: Path) -> Path:
    """A ductal carcinoma image replaced by the adenosis field's pixels: two classes, one image."""
    image_path(tree, MALIGNANT_TWIN).write_bytes(image_path(tree, ADENOSIS).read_bytes())
    return tree


# ---- archives


def tar_with_members(tree: Path, tmp: Path, count: int) -> Path:
    archive = tmp / "BreaKHis_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(count):
            tar.addfile(tar_member(f"BreaKHis_v1/padding/{i:05d}.txt"), io.BytesIO(b"x"))
        tar.add(tree, arcname="BreaKHis_v1")
    return archive


def many_members_tar(tree: Path, tmp: Path) -> Path:
    return tar_with_members(tree, tmp, 20_000)  # the cap is set to 2,000 for these cases


def many_members_zip(tree: Path, tmp: Path) -> Path:
    archive = tmp / "BreaKHis_v1.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for i in range(20_000):
            bundle.writestr(f"BreaKHis_v1/padding/{i:05d}.txt", "x")
    return archive


def zip_of(tree: Path, tmp: Path, prefix: str = "BreaKHis_v1/", separator: str = "/") -> Path:
    archive = tmp / "BreaKHis_v1.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for file in sorted(tree.rglob("*")):
            if file.is_file():
                bundle.write(file, prefix + file.relative_to(tree).as_posix().replace("/", separator))
    return archive


def windows_zip(tree: Path, tmp: Path, prefix: str = "BreaKHis_v1\\") -> Path:
    return zip_of(tree, tmp, prefix, separator="\\")


def windows_zip_climbing_out(tree: Path, tmp: Path) -> Path:
    return windows_zip(tree, tmp, prefix="BreaKHis_v1\\..\\..\\")


def windows_zip_absolute(tree: Path, tmp: Path) -> Path:
    return windows_zip(tree, tmp, prefix="\\BreaKHis_v1\\")


def hard_link_in_tar(tree: Path, tmp: Path) -> Path:
    link = tar_member("BreaKHis_v1/hard.png", tarfile.LNKTYPE, "/etc/passwd")
    return make_tar_gz(tree, tmp / "BreaKHis_v1.tar.gz", {"link": link})


def fifo_in_tar(tree: Path, tmp: Path) -> Path:
    return make_tar_gz(
        tree, tmp / "BreaKHis_v1.tar.gz", {"fifo": tar_member("BreaKHis_v1/p", tarfile.FIFOTYPE)}
    )


def escaping_folder_in_zip(tree: Path, tmp: Path) -> Path:
    archive = zip_of(tree, tmp)
    with zipfile.ZipFile(archive, "a") as bundle:
        bundle.writestr(zipfile.ZipInfo("BreaKHis_v1/../../evil/"), "")
    return archive


def symlink_in_zip(tree: Path, tmp: Path) -> Path:
    archive = zip_of(tree, tmp)
    with zipfile.ZipFile(archive, "a") as bundle:
        link = zipfile.ZipInfo("BreaKHis_v1/link")
        link.external_attr = (0o120777) << 16
        bundle.writestr(link, "/etc")
    return archive


def image_twice_in_tar(tree: Path, tmp: Path) -> Path:
    archive = tmp / "BreaKHis_v1.tar.gz"
    member = image_path(tree, ADENOSIS).relative_to(tree.parent).as_posix()
    other = image_path(tree, "SOB_B_F-14-14134E-400-001.png").read_bytes()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname="BreaKHis_v1")
        info = tar_member(member)
        info.size = len(other)
        tar.addfile(info, io.BytesIO(other))  # a second copy: it would replace the first, unseen
    return archive


def image_twice_in_zip(tree: Path, tmp: Path) -> Path:
    archive = zip_of(tree, tmp)
    member = "BreaKHis_v1/" + image_path(tree, ADENOSIS).relative_to(tree).as_posix()
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(archive, "a") as bundle:
        bundle.writestr(member, image_path(tree, "SOB_B_F-14-14134E-400-001.png").read_bytes())
    return archive


def newline_member_in_tar(tree: Path, tmp: Path) -> Path:
    image = image_path(tree, ADENOSIS)
    image.rename(image.with_name(ADENOSIS + "\n"))
    return make_tar_gz(tree, tmp / "BreaKHis_v1.tar.gz")


Change = Callable[[Path, Path], Path]
BENIGN_A = f"benign/SOB/adenosis/{ADENOSIS_FOLDER}"
# case: (change, source, one line of the message; None: ingests like the clean sample)
INGEST_CASES: dict[str, tuple[Change, str, str | None]] = {
    # images that hold more than one field, or one field under two classes
    "an animated PNG": (
        animated_image,
        "breakhis",
        f"{ADENOSIS}: an animated PNG of 3 frames: which one is the field of view? Save that one alone",
    ),
    "one image labelled benign and malignant": (
        benign_and_malignant_twins,
        "breakhis",
        f"{ADENOSIS}: labelled benign, but its pixels are identical to {MALIGNANT_TWIN} (malignant): "
        "one label is wrong",
    ),
    # file names that only look like BreakHis names
    "a file name ending in a newline": (
        newline_in_name,
        "breakhis",
        f"{ADENOSIS}\\n: file name does not follow the BreakHis grammar SOB_<B|M>_<type>-<yy>-<slide>-<mag>-"
        "<seq>.png (it holds U+000A",
    ),
    "Arabic-Indic digits in the year": (
        arabic_indic_year,
        "breakhis",
        "SOB_B_A-\\u0661\\u0664-22549AB-100-027.png: file name does not follow the BreakHis grammar "
        "SOB_<B|M>_<type>-<yy>-<slide>-<mag>-<seq>.png (it holds U+0661, U+0664",
    ),
    "full-width digits in the magnification": (
        full_width_magnification,
        "breakhis",
        "(it holds U+FF10, U+FF11: only ASCII letters, digits, '_', '-' and '.' are allowed)",
    ),
    "Arabic-Indic digits in the sequence number": (
        arabic_indic_sequence,
        "breakhis",
        "(it holds U+0660, U+0662, U+0667",
    ),
    "Devanagari digits in the slide number": (devanagari_slide, "breakhis", "(it holds U+0968"),
    "a magnification written 0100": (
        zero_padded_magnification,
        "breakhis",
        "SOB_B_A-14-22549AB-0100-027.png: magnification 0100 is not one of (40, 100, 200, 400)",
    ),
    "a Cyrillic look-alike letter in a file name": (look_alike_subtype, "breakhis", "(it holds U+0410"),
    "a zero-width space in a file name": (zero_width_space, "breakhis", "(it holds U+200B"),
    "a trailing space in a patient folder": (
        trailing_space_in_patient_folder,
        "breakhis",
        f"the name says patient folder '{ADENOSIS_FOLDER}', but the file is in '{ADENOSIS_FOLDER} '",
    ),
    "a Cyrillic look-alike letter in a patient folder": (
        look_alike_patient_folder,
        "breakhis",
        f"the name says patient folder '{ADENOSIS_FOLDER}', but the file is in 'SOB_B_\\u0410_14-22549AB'",
    ),
    # links, FIFOs, folders where images belong
    "a patient folder that links inside data.path": (
        linked_patient_inside,
        "breakhis",
        "1 symbolic link(s) in it, which ingest does not follow",
    ),
    "a patient folder that links outside data.path": (
        linked_patient_outside,
        "breakhis",
        "1 symbolic link(s) in it, which ingest does not follow",
    ),
    "a magnification folder that links outside": (
        linked_magnification_folder,
        "breakhis",
        "1 symbolic link(s) in it, which ingest does not follow",
    ),
    "an image that links inside data.path": (
        linked_image_inside,
        "breakhis",
        "1 symbolic link(s) in it, which ingest does not follow",
    ),
    "an image that links outside data.path": (
        linked_image_outside,
        "breakhis",
        "1 symbolic link(s) in it, which ingest does not follow",
    ),
    "a dangling link named like an image": (
        dangling_link,
        "breakhis",
        "1 symbolic link(s) in it, which ingest does not follow",
    ),
    "a link to itself": (link_loop, "breakhis", "1 symbolic link(s) in it, which ingest does not follow"),
    "a linked histology_slides folder": (
        linked_slides_folder,
        "breakhis",
        "1 symbolic link(s) in it, which ingest does not follow",
    ),
    "a linked BreaKHis_v1 below data.path": (
        linked_dataset,
        "breakhis",
        "1 symbolic link(s) in it, which ingest does not follow",
    ),
    "a Folds.csv that is a link": (
        linked_folds_file,
        "kaggle",
        "1 symbolic link(s) in it, which ingest does not follow",
    ),
    "a FIFO named like an image": (
        fifo_image,
        "breakhis",
        f"{BENIGN_A}/100X/SOB_B_A-14-22549AB-100-028.png: a FIFO (named pipe), not a file",
    ),
    "a folder named like an image": (
        folder_named_like_an_image,
        "breakhis",
        f"{BENIGN_A}/100X/SOB_B_A-14-22549AB-100-028.png: a folder named like an image file",
    ),
    "an empty file named like an image": (empty_image, "breakhis", f"{BENIGN_A}/100X/{ADENOSIS}: empty file"),
    "data.path itself a link (allowed)": (linked_data_path, "breakhis", None),
    # archives
    "a tar.gz of 20,000 members (cap 2,000)": (
        many_members_tar,
        "breakhis",
        "BreaKHis_v1.tar.gz: holds more than 2,000 members, over the cap of 2,000 (BreakHis has 7,909 "
        "images in about 16,000 files and folders): an archive bomb, or not a BreakHis archive",
    ),
    "a zip of 20,000 members (cap 2,000)": (
        many_members_zip,
        "breakhis",
        "BreaKHis_v1.zip: holds 20,000 members, over the cap of 2,000",
    ),
    "a zip with Windows backslash separators (extracted as folders)": (windows_zip, "breakhis", None),
    "a Windows zip climbing out (..\\)": (
        windows_zip_climbing_out,
        "breakhis",
        "path leaves the extraction folder ('..')",
    ),
    "a Windows zip with absolute paths (\\)": (windows_zip_absolute, "breakhis", ": absolute path"),
    "a tar member that is a hard link": (
        hard_link_in_tar,
        "breakhis",
        "BreaKHis_v1/hard.png: hard link to '/etc/passwd'",
    ),
    "a tar member that is a FIFO": (fifo_in_tar, "breakhis", "BreaKHis_v1/p: device or FIFO"),
    "a zip folder entry climbing out": (
        escaping_folder_in_zip,
        "breakhis",
        "BreaKHis_v1/../../evil/: path leaves the extraction folder ('..')",
    ),
    "a zip member that is a symbolic link": (symlink_in_zip, "breakhis", "BreaKHis_v1/link: symbolic link"),
    "an image listed twice in a tar": (
        image_twice_in_tar,
        "breakhis",
        f"BreaKHis_v1/histology_slides/breast/{BENIGN_A}/100X/{ADENOSIS}: listed twice (the second copy "
        "would replace the first)",
    ),
    "an image listed twice in a zip": (
        image_twice_in_zip,
        "breakhis",
        f"BreaKHis_v1/histology_slides/breast/{BENIGN_A}/100X/{ADENOSIS}: listed twice",
    ),
    "a tar member name ending in a newline": (
        newline_member_in_tar,
        "breakhis",
        f"{ADENOSIS}\\n: file name does not follow the BreakHis grammar",
    ),
}


@pytest.mark.parametrize("case", INGEST_CASES)
def test_ingest_catalogue(
    case: str, project: Path, sample_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    change, source, message = INGEST_CASES[case]
    monkeypatch.setattr(archives, "MAX_MEMBERS", 2_000, raising=False)
    clean = ingest(copy_tree(sample_tree, tmp_path / "clean"))
    before = snapshot(project / "data/ingested")
    outside = tmp_path / "outside"
    outside.mkdir()
    path = change(copy_tree(sample_tree, tmp_path / "raw"), outside)
    if message is None:  # read on purpose: the same images as the clean sample
        metrics = ingest(path, source=source)
        assert (metrics["images"], metrics["duplicates"], metrics["patients"]) == (
            clean["images"],
            clean["duplicates"],
            clean["patients"],
        )
        return
    with pytest.raises(USER_ERRORS) as error:
        ingest(path, source=source)
    assert message in str(error.value), str(error.value)
    assert all(line.isprintable() for line in str(error.value).splitlines())  # a newline never splits a name
    assert snapshot(project / "data/ingested") == before and leftovers(project) == []
    extracted = project / "data/extracted"  # an archive extracted whole stays cached by its content
    assert not extracted.exists() or not any(p.name.endswith(".partial") for p in extracted.iterdir())


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (linked_patient_inside, "-> ../../../../../stash/SOB_B_A_14-22549AB (inside data.path)"),
        (linked_patient_outside, "(outside data.path)"),
        (dangling_link, "gone.png (nowhere: it is dangling)"),
        (link_loop, "(a loop)"),
    ],
    ids=["inside", "outside", "dangling", "loop"],
)
def test_a_refused_link_says_where_it_points(
    change: Change, where: str, project: Path, sample_tree: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside").mkdir()
    tree = change(copy_tree(sample_tree, tmp_path / "raw"), tmp_path / "outside")
    with pytest.raises(ValueError) as error:
        ingest(tree)
    assert where in str(error.value)
    assert "replace each by a copy of what it points to (cp -rL)" in str(error.value)


def test_a_zip_with_a_huge_directory_is_refused_before_it_is_loaded(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "BreaKHis_v1.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for i in range(200):
            bundle.writestr(f"BreaKHis_v1/{'x' * 200}/{i:05d}.txt", "x")
    monkeypatch.setattr(archives, "MAX_ZIP_DIRECTORY_BYTES", 10_000)
    loaded = []
    monkeypatch.setattr(archives.zipfile, "ZipFile", lambda *a, **k: loaded.append(a))
    with pytest.raises(
        archives.ArchiveError, match="holds a [0-9,]+-byte directory of members, over the cap"
    ):
        ingest(archive)
    assert loaded == []


# ---- two runs at once, SIGTERM, SIGKILL ----------------------------------------------------


@contextmanager
def lock_held_elsewhere(lock: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding `lock` as a running stage does."""
    code = (
        "import fcntl, os, sys, time\n"
        "handle = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(handle, fcntl.LOCK_EX)\n"
        "os.write(handle, b'pid %d, since now' % os.getpid())\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n"
    )
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_split_while_another_split_runs_stops_at_once(project: Path) -> None:
    split_project(project)
    split_stage.main()
    before = snapshot(project / "data/split")
    with lock_held_elsewhere(project / "data/split.lock") as holder:
        start = time.monotonic()
        with pytest.raises(PermissionError) as error:
            split_stage.main()
        assert time.monotonic() - start < 10
    assert first_line(error.value) == (
        f"data/split: another run is writing it now (pid {holder.pid}, since now, holding data/split.lock); "
        "wait for it to finish or stop it, then run again. Nothing was changed."
    )
    assert snapshot(project / "data/split") == before and leftovers(project) == []
    split_stage.main()  # the holder is gone (killed): its lock went with it


def test_augment_while_another_augment_runs_stops_at_once(project: Path) -> None:
    from tests.test_augmentation import augment_project

    augment_project(project, workers=1)
    busy = pytest.raises(PermissionError, match="data/augmented: another run is writing it now")
    with lock_held_elsewhere(project / "data/augmented.lock"), busy:
        augment_stage.main()
    assert not (project / "data/augmented").exists() and leftovers(project) == []


def test_a_lock_file_left_by_a_killed_run_is_taken_over(
    project: Path, sample_tree: Path, tmp_path: Path
) -> None:
    (project / "data").mkdir()
    (project / "data/ingested.lock").write_text("pid 999999999, since long ago")  # nobody holds it
    assert ingest(copy_tree(sample_tree, tmp_path / "raw"))["images"] == 10


def synthetic_params(project: Path, patients: int, images: int, size: tuple[int, int] = (230, 350)) -> None:
    params = {
        "data": {
            "source": "synthetic",
            "magnifications": [40, 100, 200, 400],
            "synthetic": {
                "benign_patients": patients,
                "malignant_patients": patients,
                "images_per_magnification": images,
                "image_size": list(size),
            },
        },
        "ingest": {"image_size": list(SIZE), "workers": 1},
        "train": TRAIN_FITS,
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params))


@contextmanager
def ingest_running(project: Path, tmp: Path) -> Iterator[subprocess.Popen[str]]:
    """`python -m stages.ingest` in `project`, its temporary folder `tmp`; killed if the test ends first."""
    run = subprocess.Popen(
        [sys.executable, "-m", "stages.ingest"],
        cwd=project,
        env={**ENV, "TMPDIR": str(tmp)},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield run
    finally:
        if run.poll() is None:
            run.kill()
        run.wait()
        if run.stderr is not None:
            run.stderr.close()


def synthetic_images(project: Path, tmp: Path) -> Callable[[], bool]:
    """Whether a run has started writing synthetic images: beside its output (this version) or in
    the system's temporary folder `tmp` (the version before, which left them there when killed)."""

    def started() -> bool:
        folders = [project / "data/ingested.synthetic.partial", *tmp.glob("synthetic-breakhis-*")]
        return any(any(folder.rglob("*.png")) for folder in folders)

    return started


def wait_for(
    condition: Callable[[], bool], what: str, process: subprocess.Popen[str], limit: float = 90
) -> None:
    end = time.monotonic() + limit
    while not condition():
        assert process.poll() is None, f"the run ended before {what}: {process.communicate()[1]}"
        assert time.monotonic() < end, f"no {what} after {limit} s"
        time.sleep(0.01)


def test_a_second_ingest_stops_at_once_and_the_first_finishes_whole(
    project: Path, sample_tree: Path, tmp_path: Path
) -> None:
    synthetic_params(project, patients=2, images=2)
    with ingest_running(project, tmp_path) as first:
        wait_for(synthetic_images(project, tmp_path), "synthetic image", first)
        with pytest.raises(PermissionError) as error:
            ingest(copy_tree(sample_tree, tmp_path / "raw"))
        errors = first.communicate(timeout=300)[1]
        assert first.returncode == 0, errors
    assert f"data/ingested: another run is writing it now (pid {first.pid}, since" in first_line(error.value)
    manifest = pd.read_csv(project / "data/ingested/manifest.csv")
    assert set(manifest["source"].str[:12]) == {"BreaKHis_v1/"} and len(manifest) == 2 * 2 * 2 * 4
    assert all((project / p).is_file() for p in manifest["path"]) and leftovers(project) == []


def test_sigterm_in_the_middle_of_ingest_cleans_up_like_ctrl_c(
    project: Path, sample_tree: Path, tmp_path: Path
) -> None:
    ingest(copy_tree(sample_tree, tmp_path / "raw"))
    before = snapshot(project / "data/ingested")
    synthetic_params(project, patients=5, images=2)  # 80 images: a few seconds to make, one to ingest
    (tmp_path / "tmp").mkdir()
    images = project / "data/ingested.partial/images"
    with ingest_running(project, tmp_path / "tmp") as run:
        wait_for(lambda: images.is_dir() and any(images.iterdir()), "ingested image", run)
        run.send_signal(signal.SIGTERM)
        errors = run.communicate(timeout=120)[1]
        assert run.returncode == 143, errors
        assert "error: stopped by SIGTERM; no output of this run was kept" in errors
    assert snapshot(project / "data/ingested") == before
    assert leftovers(project) == [] and list((tmp_path / "tmp").iterdir()) == []


def test_sigterm_while_generating_synthetic_data_leaves_nothing(project: Path, tmp_path: Path) -> None:
    synthetic_params(project, patients=6, images=3)
    (tmp_path / "tmp").mkdir()
    with ingest_running(project, tmp_path / "tmp") as run:
        wait_for(synthetic_images(project, tmp_path / "tmp"), "synthetic image", run)
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=120)
        assert run.returncode == 143
    assert leftovers(project) == [] and list((tmp_path / "tmp").iterdir()) == []
    assert not (project / "data/ingested").exists()


def test_a_killed_synthetic_run_leaves_nothing_after_the_next_run(project: Path, tmp_path: Path) -> None:
    """SIGKILL (or the kernel's out-of-memory killer) runs no cleanup: the leftover is beside the
    output, where the next run removes it, not in the system's temporary folder for ever."""
    synthetic_params(project, patients=6, images=3)
    (tmp_path / "tmp").mkdir()
    with ingest_running(project, tmp_path / "tmp") as run:
        wait_for(synthetic_images(project, tmp_path / "tmp"), "synthetic image", run)
        run.kill()
    synthetic_params(project, patients=2, images=1, size=(92, 140))
    ingest_stage.main()
    assert leftovers(project) == [] and list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("size", [(4100, 4100), (40000, 60000)], ids=["over the pixel cap", "huge"])
def test_a_synthetic_size_over_the_pixel_cap_is_refused_before_any_work(
    size: tuple[int, int], project: Path
) -> None:
    """Before: rendering began and grew past 4 GB (the second size) until something killed it."""
    synthetic_params(project, patients=2, images=1, size=size)
    with pytest.raises(ValueError, match="data.synthetic.image_size"):
        ingest_stage.main()
    assert leftovers(project) == [] and not (project / "data/ingested").exists()


def test_a_synthetic_generator_that_fails_midway_removes_its_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from breakhis.data import synthetic

    written = []
    write_bgr = synthetic.write_bgr

    def full_disk(path: Path, image: np.ndarray) -> None:
        written.append(path)
        if len(written) == 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write_bgr(path, image)

    monkeypatch.setattr(synthetic, "write_bgr", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        synthetic.write_synthetic_breakhis(
            tmp_path, seed=0, benign_patients=2, malignant_patients=2, images_per_magnification=2
        )
    assert list(tmp_path.iterdir()) == []


def test_flock_is_what_holds_the_lock(project: Path) -> None:
    """The lock is the kernel's (released with its process), not the file's existence."""
    from breakhis.pipeline.files import OutputLockedError, output_lock

    with output_lock(Path("data/x")), output_lock(Path("data/x")):  # nested in one process: allowed
        handle = os.open("data/x.lock", os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(handle)
    with (
        lock_held_elsewhere(project / "data/x.lock"),
        pytest.raises(OutputLockedError),
        output_lock(Path("data/x")),
    ):
        pass
    with output_lock(Path("data/x")):
        assert Path("data/x.lock").read_text().startswith(f"pid {os.getpid()}, since ")
