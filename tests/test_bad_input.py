"""Bad input never corrupts data, crashes, or exhausts memory.

The catalogue: one case per kind of bad input (ingest, split, augment, train, evaluate, predict,
params), each with the message a user gets; bad input is a user error (ValueError and friends,
printed in one line by `run_stage`), and a stage that fails leaves its previous output whole with
no partial folder. Then fuzzing: random bytes and truncations of real PNGs and archives fed to
ingest and predict give only those clean errors.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from breakhis.data.images import ImageError, read_rgb
from breakhis.modeling.prediction import check_images
from breakhis.pipeline import files
from breakhis.pipeline.stage import USER_ERRORS
from stages import augment as augment_stage
from stages import split as split_stage
from tests.conftest import PROJECT_ROOT, crafted_manifest
from tests.raw_data import SHORT_IMAGE, copy_tree, image_path, make_tar_gz, write_png_bomb
from tests.test_ingest import SIZE, TRAIN_FITS
from tests.test_ingest import run as ingest


@pytest.fixture(scope="session")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """766 KB of PNG whose header says 20000x13143 (789 MB decoded), made once."""
    return write_png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(project: Path) -> list[str]:
    """Partial or set-aside folders a failed run must not leave behind."""
    return sorted(p.name for p in (project / "data").glob("*") if ".partial" in p.name or ".old-" in p.name)


# ---- the catalogue --------------------------------------------------------------------------------
# Each case changes a copy of the real BreakHis sample (or the project) and names the error it expects.


def copied_sob_folder(tree: Path, tmp: Path, bomb: Path) -> Path:
    benign = next(tree.rglob("benign"))
    shutil.copytree(benign / "SOB", benign / "SOB (1)")
    return tree


def merged_download(tree: Path, tmp: Path, bomb: Path) -> Path:
    shutil.copytree(tree, tree.parent / "BreaKHis_v1 (1)")
    return tree.parent


def decompression_bomb(tree: Path, tmp: Path, bomb: Path) -> Path:
    shutil.copy(bomb, image_path(tree, SHORT_IMAGE))
    return tree


def over_opencvs_pixel_limit(tree: Path, tmp: Path, bomb: Path) -> Path:
    # only the header matters: it is refused before any decoder sees the rest
    data = bytearray(image_path(tree, SHORT_IMAGE).read_bytes())
    data[16:24] = (40000).to_bytes(4, "big") + (40000).to_bytes(4, "big")  # IHDR width, height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # the chunk's CRC, so it parses
    image_path(tree, SHORT_IMAGE).write_bytes(bytes(data))
    return tree


def jpeg_in_png(tree: Path, tmp: Path, bomb: Path) -> Path:
    target = image_path(tree, SHORT_IMAGE)
    ok, jpeg = cv2.imencode(".jpg", cv2.imread(str(target)))
    target.write_bytes(jpeg.tobytes())
    return tree


def zip_bomb(tree: Path, tmp: Path, bomb: Path) -> Path:
    archive = tmp / "BreaKHis_v1.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("BreaKHis_v1/padding.bin", b"\0" * 50_000_000)  # 50 MB in about 50 KB
    return archive


def tar_bomb(tree: Path, tmp: Path, bomb: Path) -> Path:
    padding = tmp / "padding"
    padding.mkdir()
    (padding / "zeros.bin").write_bytes(b"\0" * 50_000_000)
    archive = tmp / "BreaKHis_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(padding, arcname="BreaKHis_v1/padding")
    return archive


INGEST_CASES: dict[str, tuple[Callable[[Path, Path, Path], Path], dict[str, object], str]] = {
    "copied SOB folder": (
        copied_sob_folder,
        {},
        "the name says SOB folder 'SOB', but the file is in 'SOB (1)'",
    ),
    "merged download": (merged_download, {}, "holds 2 BreaKHis trees"),
    "decompression bomb": (decompression_bomb, {}, "header says 20000x13143 pixels, over the cap"),
    "bomb with on_error skip": (decompression_bomb, {"on_error": "skip"}, ""),
    "over OpenCV's pixel limit": (over_opencvs_pixel_limit, {}, "header says 40000x40000 pixels"),
    "pixel limit with on_error skip": (over_opencvs_pixel_limit, {"on_error": "skip"}, ""),
    "JPEG bytes in a .png": (jpeg_in_png, {}, "holds JPEG data, not PNG as its name says"),
    "zip bomb": (zip_bomb, {}, "an archive bomb, or not a BreakHis archive; nothing of it was kept"),
    "tar.gz bomb": (tar_bomb, {}, "an archive bomb, or not a BreakHis archive; nothing of it was kept"),
}


@pytest.mark.parametrize("case", INGEST_CASES)
def test_ingest_catalogue(case: str, project: Path, sample_tree: Path, tmp_path: Path, bomb: Path) -> None:
    change, options, message = INGEST_CASES[case]
    clean = copy_tree(sample_tree, tmp_path / "clean")
    ingest(clean)
    before = snapshot(project / "data/ingested")
    path = change(copy_tree(sample_tree, tmp_path / "raw"), tmp_path, bomb)
    if not message:  # on_error: skip: left out and listed with the reason, the rest ingested
        ingest(path, **options)
        rejected = pd.read_csv(project / "data/ingested/rejected.csv")
        assert rejected["filename"].tolist() == [SHORT_IMAGE]
        assert "header says" in rejected["reason"].iloc[0]
        assert SHORT_IMAGE not in set(pd.read_csv(project / "data/ingested/manifest.csv")["filename"])
        return
    with pytest.raises(USER_ERRORS, match=message.replace("(", r"\(").replace(")", r"\)")):
        ingest(path, **options)
    assert snapshot(project / "data/ingested") == before  # the previous output, whole
    assert leftovers(project) == []
    assert not any((project / "data/extracted").glob("*")) if (project / "data/extracted").exists() else True


def test_ingest_cannot_replace_its_output_and_keeps_it_whole(
    project: Path, sample_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder that cannot be moved (read-only, in use): the previous output stays, nothing partial."""
    tree = copy_tree(sample_tree, tmp_path / "raw")
    ingest(tree)
    before = snapshot(project / "data/ingested")
    rename = Path.rename

    def refuse(self: Path, target: Path) -> Path:
        if self.name == "ingested":
            raise PermissionError(13, "Permission denied")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", refuse)
    with pytest.raises(PermissionError, match="data/ingested: cannot replace it .*it is unchanged"):
        ingest(tree, png_compression=1)
    assert snapshot(project / "data/ingested") == before and leftovers(project) == []


def test_an_old_output_that_cannot_be_deleted_is_named_and_the_new_one_is_whole(
    project: Path, sample_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    tree = copy_tree(sample_tree, tmp_path / "raw")
    ingest(tree)
    monkeypatch.setattr(files.shutil, "rmtree", lambda path, ignore_errors=False: None)  # cannot delete
    ingest(tree, png_compression=1)
    assert "its previous version could not be deleted (read-only?)" in capsys.readouterr().err
    assert len(list((project / "data").glob("ingested.old-*"))) == 1
    manifest = pd.read_csv(project / "data/ingested/manifest.csv")
    assert all((project / p).is_file() for p in manifest["path"])


def split_project(project: Path) -> None:
    manifest = crafted_manifest()
    (project / "data/ingested").mkdir(parents=True)
    manifest.to_csv(project / "data/ingested/manifest.csv", index=False)
    Path("params.yaml").write_text(yaml.safe_dump({"seed": 1}))


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            lambda m: m.drop(columns="patient_group"),
            ValueError,
            "manifest.csv: missing column.s. patient_group",
        ),
        (lambda m: None, FileNotFoundError, "manifest.csv: not found .written by ingest"),
    ],
    ids=["manifest without a column", "no manifest"],
)
def test_split_names_a_bad_manifest_and_keeps_its_previous_split(
    project: Path, change: Callable, error: type, message: str
) -> None:
    split_project(project)
    split_stage.main()
    before = snapshot(project / "data/split")
    path = project / "data/ingested/manifest.csv"
    changed = change(pd.read_csv(path))
    path.unlink()
    if changed is not None:
        changed.to_csv(path, index=False)
    with pytest.raises(error, match=message):
        split_stage.main()
    assert snapshot(project / "data/split") == before and leftovers(project) == []


def test_augment_keeps_its_previous_output_when_a_source_image_is_missing(project: Path) -> None:
    from tests.test_augmentation import augment_project

    augment_project(project, workers=1)
    augment_stage.main()
    before = snapshot(project / "data/augmented")
    train = pd.read_csv(project / "data/split/train.csv")
    (project / train["path"].iloc[0]).unlink()
    with pytest.raises(ImageError, match=f"{train['path'].iloc[0]}: cannot read the file"):
        augment_stage.main()
    assert snapshot(project / "data/augmented") == before and leftovers(project) == []


def test_train_and_evaluate_name_a_missing_or_incomplete_input(project: Path) -> None:
    from breakhis.pipeline.files import read_table

    with pytest.raises(FileNotFoundError, match=r"data/augmented/train.csv: not found \(written by augment"):
        read_table(Path("data/augmented/train.csv"), ("path", "target"), "augment")
    Path("val.csv").write_text("path\nx.png\n")
    with pytest.raises(ValueError, match=r"val.csv: missing column\(s\) target"):
        read_table(Path("val.csv"), ("path", "target"), "split")
    Path("broken.csv").write_bytes(b"\xff\xfe\x00garbage\n\x00")
    with pytest.raises(ValueError, match="broken.csv: not a readable CSV"):
        read_table(Path("broken.csv"), ("path",), "split")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train:\n  epochs: 5\n  epochs: 50\n", "duplicate key 'epochs' .first on line 2."),
        ("seed: 1\nseed: 2\n", "duplicate key 'seed'"),
        ("- seed\n- data\n", "expected a mapping of sections"),
        ("train: [\n", "not valid YAML"),
        ("train:\n  epoch: 5\n", "train.epoch: unknown key"),
    ],
    ids=["duplicate nested key", "duplicate top key", "a list", "broken YAML", "typo"],
)
def test_params_file_errors_name_the_file_and_key(project: Path, text: str, message: str) -> None:
    from breakhis.pipeline.params import ParamsError
    from breakhis.pipeline.params_file import load_params

    Path("params.yaml").write_text(text)
    with pytest.raises(ParamsError, match=f"(?s)params.yaml: .*{message}"):
        load_params()


def run_predict(*args: str) -> None:
    from commands.predict import predict_command

    predict_command([*args, "--quiet"])


@pytest.mark.parametrize(
    ("out", "message"),
    [("folder", "--out .*folder: is a folder; give a file name"), ("file/x.csv", "is not a folder")],
)
def test_predict_checks_its_output_before_any_model(tmp_path: Path, out: str, message: str) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("a file, not a folder")
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((230, 350, 3), np.uint8))
    # no model exists: the output error comes first, before models or TensorFlow are touched
    with pytest.raises(ValueError, match=message):
        run_predict(str(image), "--models-dir", str(tmp_path / "none"), "--out", str(tmp_path / out))


def test_predict_refuses_a_bomb_and_jpeg_bytes_by_their_header(tmp_path: Path, bomb: Path) -> None:
    fake = tmp_path / "fake.png"
    ok, jpeg = cv2.imencode(".jpg", np.zeros((230, 350, 3), np.uint8))
    fake.write_bytes(jpeg.tobytes())
    with pytest.raises(ImageError) as error:
        check_images([str(bomb), str(fake)], (230, 350))
    assert f"{bomb}: its header says 20000x13143 pixels" in str(error.value)
    assert f"{fake}: holds JPEG data, not PNG" in str(error.value)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
def test_ingest_peak_memory_with_a_bomb_stays_under_200_mb(
    sample_tree: Path, tmp_path: Path, bomb: Path
) -> None:
    tree = copy_tree(sample_tree, tmp_path / "raw")
    shutil.copy(bomb, image_path(tree, SHORT_IMAGE))
    params = {
        "data": {"source": "breakhis", "path": str(tree)},
        "ingest": {"image_size": list(SIZE), "on_error": "skip"},
        "train": TRAIN_FITS,
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    # VmHWM: this process's peak resident memory (ru_maxrss would include the parent's, kept by exec)
    measure = (
        "import re, runpy, sys\n"
        "sys.argv = ['ingest']\n"
        "try:\n    runpy.run_module('stages.ingest', run_name='__main__')\n"
        "finally:\n"
        "    status = open('/proc/self/status').read()\n"
        "    print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status)[1]) // 1024)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", measure], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    peak_mb = int(result.stdout.split()[-1])
    assert peak_mb < 200, f"ingest peaked at {peak_mb} MB with a decompression bomb in the tree"
    assert "left out 1 unusable image" in result.stderr


# ---- fuzzing --------------------------------------------------------------------------------------


def fuzzed(data: bytes, rng: random.Random) -> bytes:
    """Random bytes, a truncation, or a few bytes overwritten."""
    kind = rng.choice(["random", "truncated", "flipped", "header flipped"])
    if kind == "random":
        return rng.randbytes(rng.choice([0, 1, 8, 100, 5000]))
    if kind == "truncated":
        return data[: rng.randrange(len(data))]
    mutable = bytearray(data)
    span = 64 if kind == "header flipped" else len(data)
    for _ in range(rng.randint(1, 8)):
        mutable[rng.randrange(span)] = rng.randrange(256)
    return bytes(mutable)


@pytest.mark.parametrize("seed", range(12))
def test_fuzzed_images_give_only_clean_errors(
    seed: int, project: Path, sample_tree: Path, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    tree = copy_tree(sample_tree, tmp_path / "raw")
    victims = rng.sample(sorted(tree.rglob("*.png")), 3)
    for victim in victims:
        victim.write_bytes(fuzzed(victim.read_bytes(), rng))
    for victim in victims:  # predict's reader: an image or an ImageError naming the file
        try:
            read_rgb(victim)
        except ImageError as exc:
            assert str(victim) in str(exc)
    try:
        ingest(tree, on_error="skip")
    except USER_ERRORS as exc:  # e.g. nothing usable left; never another exception
        assert str(exc)
    else:
        manifest = pd.read_csv(project / "data/ingested/manifest.csv")
        assert all(cv2.imread(str(project / p)) is not None for p in manifest["path"])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_fuzzed_archives_give_only_clean_errors(
    seed: int, suffix: str, project: Path, sample_tree: Path, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    archive = tmp_path / f"BreaKHis_v1{suffix}"
    if suffix == ".zip":
        shutil.make_archive(str(tmp_path / "BreaKHis_v1"), "zip", sample_tree.parent, "BreaKHis_v1")
    else:
        make_tar_gz(sample_tree, archive)
    archive.write_bytes(fuzzed(archive.read_bytes(), rng))
    try:
        ingest(archive, on_error="skip")
    except USER_ERRORS as exc:
        assert str(exc)
    extracted = project / "data/extracted"
    assert not extracted.exists() or not any(p.name.endswith(".partial") for p in extracted.iterdir())
