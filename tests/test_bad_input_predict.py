"""The predict side of the bad-input catalogue (issue 24): every way a user can hand
`breakhis-predict` a wrong output path, input or option, each with the one line they get.

Each case builds its files in an empty working folder holding `models/` (the three models as
`described_file` writes them: a description, no network) and names the command line. An error case
must fail with one `error:` line, before any model is loaded and with no output written; a warning
case must run to the end (the models replaced by `fake_models`: probabilities from the file names,
no TensorFlow) and print its `warning:` line; a usage case is argparse's (exit 2). Two more cases of
the catalogue are in tests/test_predict.py: a decision file with a non-finite threshold or
temperature (`test_a_decision_file_with_a_bad_number_is_refused`) and a model file saved under
another model's name (`test_a_mislabeled_model_file_is_refused`).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from breakhis.pipeline.param_types import MODEL_NAMES
from tests.conftest import described_file
from tests.test_predict import tissue, write_png

BREAKHIS = "SOB_M_DC-14-2523-100-001.png"  # a BreakHis name: summarised per patient
# the probability `fake_models` gives a file, by name (0.5 for any other)
PROBABILITIES = {"high.png": 0.9, "low.png": 0.1, BREAKHIS: 0.9, "SOB_M_DC-14-2523-100-002.png": 0.1}


def image(path: str) -> str:
    """A 64x96 image (the described models' source size) at `path`, relative to the working folder."""
    write_png(Path(path), tissue(64, 96))
    return path


def text(path: str, content: str | bytes) -> str:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        Path(path).write_bytes(content)
    else:
        Path(path).write_text(content)
    return path


def link(path: str, target: str) -> str:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    return path


def fifo(path: str) -> str:
    os.mkfifo(path)
    return path


def unix_socket(path: str) -> str:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
    return path


@dataclass(frozen=True)
class Case:
    setup: Callable[[], list[str]]  # makes the files; returns the command line (cwd-relative)
    message: str  # a regular expression the line must match
    outcome: str = "error"  # error | warning | note (in the final `wrote` line) | usage (argparse)
    rows: int | None = None  # rows of the per-image CSV, for the cases that run to the end


def folder_of(*names: str) -> str:
    for name in names:
        image(f"folder/{name}") if name.endswith(".png") else text(f"folder/{name}", "clutter")
    return "folder"


def binary_png_as_csv() -> list[str]:
    return [text("list.csv", Path(image("a.png")).read_bytes())]


def utf16_csv() -> list[str]:
    image("a.png")
    return [text("list.csv", "path\na.png\n".encode("utf-16"))]


def latin1_csv() -> list[str]:
    image("café.png")
    return [text("list.csv", "path\ncafé.png\n".encode("latin-1"))]


def folder_with_loop() -> list[str]:
    image("folder/sub/a.png")
    link("folder/sub/loop", "..")
    return ["folder"]


def folder_linking_root() -> list[str]:
    image("folder/a.png")
    link("folder/root", "/")  # holds the folder: searching it would search the whole disk, twice
    return ["folder"]


def folder_linking_outside() -> list[str]:
    image("folder/a.png")
    image("elsewhere/b.png")
    link("folder/more", os.path.abspath("elsewhere"))
    return ["folder"]


def folder_with_image_link_outside() -> list[str]:
    image("folder/a.png")
    image("elsewhere/b.png")
    link("folder/b.png", os.path.abspath("elsewhere/b.png"))
    return ["folder"]


def folder_with_broken_link() -> list[str]:
    image("folder/a.png")
    link("folder/broken.png", "gone.png")
    return ["folder"]


def folder_with_fifo() -> list[str]:
    image("folder/a.png")
    fifo("folder/pipe.png")
    return ["folder"]


def hidden_folder_of_images() -> list[str]:
    image("folder/a.png")
    image("folder/.Trash-1000/files/b.png")
    return ["folder"]


def models_with_only_a_decision() -> list[str]:
    text("only/decision.json", "{}")
    return [image("a.png"), "--models-dir", "only"]


def ensemble_decision(**changes: object) -> str:
    """models/ensemble/decision.json made for the three models present (their real digests), with
    `changes`; returns its path."""
    import json

    from breakhis.pipeline.files import file_digest

    digests = {name: file_digest(Path(f"models/{name}/model.keras")) for name in MODEL_NAMES}
    decision = {
        "model": "ensemble",
        "threshold": 0.5,
        "threshold_rule": "fixed",
        "weights": dict.fromkeys(MODEL_NAMES, 1 / 3),
        "model_digests": digests,
        "validation_images": 0,
        **changes,
    }
    return text("models/ensemble/decision.json", json.dumps(decision))


def ensemble_without(name: str) -> list[str]:
    """The ensemble's decision names `name`, whose model file is gone."""
    ensemble_decision()
    os.remove(f"models/{name}/model.keras")
    return [image("a.png")]


def multi_page_tiff(path: str) -> str:
    """Three 64x96 pages in one TIFF file."""
    from PIL import Image

    pages = [Image.fromarray(tissue(64, 96)) for _ in range(3)]
    pages[0].save(path, save_all=True, append_images=pages[1:])
    return path


def model_file_replaced_by(kind: str) -> list[str]:
    os.remove("models/vgg19/model.keras")
    if kind == "folder":
        os.mkdir("models/vgg19/model.keras")
    else:
        link("models/vgg19/model.keras", "/dev/null")
    return [image("a.png")]


CASES: dict[str, Case] = {
    # ---- --out, --patients-out, --explain: checked before any model loads --------------------------
    "out is /dev/null": Case(
        lambda: [image("a.png"), "--out", "/dev/null"],
        r"--out /dev/null: is a character device, not a regular file",
    ),
    "out is a FIFO": Case(
        lambda: [image("a.png"), "--out", fifo("out.csv")],
        r"--out out.csv: is a FIFO \(named pipe\), not a regular file",
    ),
    "out is a socket": Case(
        lambda: [image("a.png"), "--out", unix_socket("out.sock")],
        r"--out out.sock: is a socket, not a regular file",
    ),
    "out is a folder": Case(
        lambda: [image("a.png"), "--out", str(Path("out.csv").mkdir() or "out.csv")],
        r"--out out.csv: is a folder; give a file name",
    ),
    "out is an empty string": Case(lambda: [image("a.png"), "--out", ""], r"--out \.: is a folder"),
    "out links to a folder": Case(
        lambda: [image("a.png"), "--out", link("out.csv", str(Path("d").mkdir() or "d"))],
        r"--out out.csv: is a folder \(the symbolic link's target, .*d\)",
    ),
    "out links to /dev/null": Case(
        lambda: [image("a.png"), "--out", link("out.csv", "/dev/null")],
        r"--out out.csv: is a character device, not a regular file \(the symbolic link's target, "
        r"/dev/null\)",
    ),
    "out is a symlink loop": Case(
        lambda: [image("a.png"), "--out", link("out.csv", "out.csv")],
        r"--out out.csv: a symbolic link loop",
    ),
    "out is under a file": Case(
        lambda: [image("a.png"), "--out", text("file", "x") + "/out.csv"],
        r"--out file/out.csv: .* not a folder",
    ),
    "out is the input CSV": Case(
        lambda: [text("list.csv", f"path\n{image('a.png')}\n"), "--out", "list.csv"],
        r"--out list.csv: is also an input; writing it would destroy it",
    ),
    "out is an input image": Case(
        lambda: [image("a.png"), "--out", "a.png"], r"--out a.png: is also an input; writing it would"
    ),
    "out links to an input image": Case(
        lambda: [image("a.png"), "--out", link("out.csv", "a.png")],
        r"--out out.csv: is also an input; writing it would destroy it",
    ),
    "out is a model file": Case(
        lambda: [image("a.png"), "--out", "models/vgg19/model.keras"],
        r"--out models/vgg19/model.keras: is also the vgg19 model's file; writing it would destroy it",
    ),
    "patients-out is out": Case(
        lambda: [image("a.png"), "--out", "same.csv", "--patients-out", "same.csv"],
        r"--patients-out same.csv: is also --out; writing it would destroy it",
    ),
    "patients-out is a FIFO": Case(
        lambda: [image("a.png"), "--patients-out", fifo("p.csv")],
        r"--patients-out p.csv: is a FIFO \(named pipe\), not a regular file",
    ),
    "default patients file is a folder": Case(
        lambda: [image(BREAKHIS), "--out", "out.csv", *(Path("out_patients.csv").mkdir() or [])],
        r"--patients-out out_patients.csv: is a folder",
    ),
    "explain is a FIFO": Case(
        lambda: [image("a.png"), "--explain", fifo("cams")],
        r"--explain cams: is a FIFO \(named pipe\); give a folder for the overlays",
    ),
    # ---- inputs: paths ----------------------------------------------------------------------------
    "an empty input path": Case(lambda: [image("a.png"), ""], r"an empty input path \(an unset variable\?\)"),
    "input is a FIFO": Case(
        lambda: [fifo("in.png")],
        r"in.png: is a FIFO \(named pipe\); inputs are image files, folders or CSVs",
    ),
    "input is /dev/zero": Case(lambda: ["/dev/zero"], r"/dev/zero: is a character device; inputs are"),
    "input is a broken link": Case(
        lambda: [link("broken.png", "nowhere.png")],
        r"1 input\(s\) not found:\s+broken.png \(a broken symbolic link to nowhere.png\)",
    ),
    "input is a symlink loop": Case(
        lambda: [link("loop.png", "loop.png")], r"1 input\(s\) not found:\s+loop.png \(a symbolic link loop\)"
    ),
    # ---- inputs: folders --------------------------------------------------------------------------
    "folder with notes and a slide": Case(
        lambda: [folder_of("a.png", "notes.txt", "slide.svs")],
        r"2 file\(s\) in the input folders are not images \(.png, .jpg, .*\) and were skipped: "
        r"folder/notes.txt, folder/slide.svs",
        "warning",
        rows=1,
    ),
    "folder with a FIFO named .png": Case(
        folder_with_fifo,
        r"1 file\(s\) in the input folders are not images .* folder/pipe.png \(a FIFO \(named pipe\)\)",
        "warning",
        rows=1,
    ),
    "folder of non-images only": Case(
        lambda: [folder_of("notes.txt", "slide.svs")],
        r"folder: no image files \(.png, .*\) in this folder; 2 other file\(s\): folder/notes.txt, "
        r"folder/slide.svs",
    ),
    "folder with .DS_Store and Thumbs.db": Case(
        lambda: [folder_of("a.png", ".DS_Store", "Thumbs.db")],
        r"wrote out.csv: 1 image\(s\), .*; 2 hidden or system file\(s\) or folder\(s\) skipped",
        "note",
        rows=1,
    ),
    "folder with an AppleDouble ._a.png": Case(
        lambda: [folder_of("a.png", "._a.png")],
        r"1 hidden or system file\(s\) or folder\(s\) skipped",
        "note",
        rows=1,
    ),
    "folder with a hidden folder of images": Case(
        hidden_folder_of_images, r"1 hidden or system file\(s\) or folder\(s\) skipped", "note", rows=1
    ),
    "folder with a symlink loop": Case(
        folder_with_loop,
        r"1 symbolic link\(s\) to a folder already searched, or holding one \(a loop\), not followed: "
        r"folder/sub/loop",
        "warning",
        rows=1,
    ),
    "folder with a link to /": Case(
        folder_linking_root,
        r"1 symbolic link\(s\) to a folder already searched, or holding one \(a loop\), not followed: "
        r"folder/root",
        "warning",
        rows=1,
    ),
    "folder linking a folder outside": Case(
        folder_linking_outside, r"wrote out.csv: 2 image\(s\)", "note", rows=2
    ),
    "folder linking an image outside": Case(
        folder_with_image_link_outside, r"wrote out.csv: 2 image\(s\)", "note", rows=2
    ),
    "folder with a broken link": Case(
        folder_with_broken_link,
        r"1 input\(s\) not found:\s+folder/broken.png \(a broken symbolic link to gone.png\)",
    ),
    # ---- inputs: one file given twice -------------------------------------------------------------
    "same path twice": Case(
        lambda: [image("a.png"), "a.png"],
        r"1 input\(s\) given more than once, each predicted and counted once: a.png \(2 times\)",
        "warning",
        rows=1,
    ),
    "relative and absolute": Case(
        lambda: [image("a.png"), os.path.abspath("a.png")],
        r"1 input\(s\) given more than once, .*: /\S*/a.png \(= a.png\)",
        "warning",
        rows=1,
    ),
    "a link and its target": Case(
        lambda: [image("a.png"), link("link.png", "a.png")],
        r"given more than once, .*: link.png \(= a.png\)",
        "warning",
        rows=1,
    ),
    "through a folder and a CSV": Case(
        lambda: [folder_of("a.png"), text("list.csv", "path\nfolder/a.png\n")],
        r"1 input\(s\) given more than once, .*: folder/a.png \(2 times\)",
        "warning",
        rows=1,
    ),
    "a folder and its subfolder": Case(
        lambda: [folder_of("a.png", "sub/b.png"), "folder/sub"],
        r"1 input\(s\) given more than once, .*: folder/sub/b.png \(2 times\)",
        "warning",
        rows=2,
    ),
    "100,000 rows of one path": Case(
        lambda: [text("list.csv", "path\n" + f"{image('a.png')}\n" * 100_000)],
        r"99999 input\(s\) given more than once, .*: a.png \(100000 times\)$",
        "warning",
        rows=1,
    ),
    # ---- inputs: CSVs -----------------------------------------------------------------------------
    "CSV with a BOM": Case(
        lambda: [text("list.csv", f"\ufeffpath\n{image('a.png')}\n")], r"wrote out.csv: 1 image", "note", 1
    ),
    "CSV with CRLF line ends": Case(
        lambda: [text("list.csv", f"path\r\n{image('a.png')}\r\n".encode())],
        r"wrote out.csv: 1 image",
        "note",
        1,
    ),
    "CSV with an empty path": Case(
        lambda: [text("list.csv", f"path,label\n{image('a.png')},x\n,y\n")],
        r"list.csv: empty value in the 'path' column \(line 3\)",
    ),
    "CSV with NaN as a path": Case(
        lambda: [text("list.csv", "path\nNaN\n")],
        r"1 input\(s\) not found:\s+NaN \(listed in list.csv, line 2\)",
    ),
    "CSV listing itself": Case(
        lambda: [text("list.csv", "path\nlist.csv\n")],
        r"list.csv: line 2 lists a CSV \(list.csv\): CSVs inside CSVs are not followed; give it on "
        "the command line",
    ),
    "CSV listing another CSV": Case(
        lambda: [text("list.csv", "path\n" + text("other.csv", "path\na.png\n") + "\n")],
        r"list.csv: line 2 lists a CSV \(other.csv\): CSVs inside CSVs are not followed",
    ),
    "CSV listing a folder": Case(
        lambda: [text("list.csv", f"path\n{folder_of('a.png')}\n")],
        r"list.csv: line 2 lists a folder \(folder\); a CSV lists image files: give the folder on "
        "the command line",
    ),
    "CSV with a NUL deep inside": Case(
        lambda: [text("list.csv", "path\n" + f"{image('a.png')}\n" * 2000 + "b\0c.png\n")],
        r"1 input\(s\) not found:\s+b\x00c.png \(listed in list.csv, line 2002, an impossible path "
        r"\(it holds a NUL character\)\)",
    ),
    "CSV that is a PNG": Case(binary_png_as_csv, r"list.csv: binary data, not a CSV text file"),
    "CSV of NUL bytes": Case(
        lambda: [text("list.csv", b"\0" * 1000)], r"list.csv: binary data, not a CSV text file"
    ),
    "CSV in UTF-16": Case(utf16_csv, r"list.csv: UTF-16 text; save it as a UTF-8 CSV"),
    "CSV in Latin-1": Case(latin1_csv, r"list.csv: not a readable CSV \(not UTF-8 text: byte 0xe9"),
    "CSV with a header only": Case(lambda: [text("list.csv", "path,label\n")], r"list.csv: no rows"),
    "CSV with ; separators": Case(
        lambda: [text("list.csv", "path;label\na.png;x\n")],
        r"list.csv: no 'path' column \(columns: path;label\)",
    ),
    "empty CSV file": Case(lambda: [text("list.csv", "")], r"list.csv: not a readable CSV \(No columns"),
    # ---- options ----------------------------------------------------------------------------------
    "batch size 0": Case(
        lambda: [image("a.png"), "--batch-size", "0"], r"--batch-size 0: must be at least 1"
    ),
    "batch size -5": Case(
        lambda: [image("a.png"), "--batch-size", "-5"], r"--batch-size -5: must be at least"
    ),
    "batch size 10**9": Case(
        lambda: [image("a.png"), "--batch-size", "1000000000"], r"--batch-size 1000000000: at most 256"
    ),
    "batch size abc": Case(
        lambda: [image("a.png"), "--batch-size", "abc"],
        r"argument --batch-size: invalid int value: 'abc'",
        "usage",
    ),
    **{
        f"threshold {value}": Case(
            lambda value=value: [image("a.png"), f"--threshold={value}"],
            rf"--threshold {float(value)}: must be between 0 and 1",
        )
        for value in ("nan", "inf", "-1", "0", "1")
    },
    "unknown model": Case(
        lambda: [image("a.png"), "--model", "densenet"],
        r"argument --model: invalid choice: 'densenet'",
        "usage",
    ),
    "models dir is a model file": Case(
        lambda: [image("a.png"), "--models-dir", "models/custom/model.keras"],
        r"--models-dir models/custom/model.keras: is a file, not a folder; give its folder "
        r"\(models/custom\)",
    ),
    "models dir is missing": Case(
        lambda: [image("a.png"), "--models-dir", "nowhere"], r"--models-dir nowhere: not found"
    ),
    "models dir with only a decision.json": Case(models_with_only_a_decision, r"only: no model files"),
    "a multi-page TIFF": Case(
        lambda: [multi_page_tiff("pages.tif")],
        r"pages.tif: a TIFF file of 3 pages: which one is the field of view\? Save that one alone",
    ),
    # ---- the ensemble's decision names exactly the models it was made for ---------------------------
    "ensemble decision naming an absent model": Case(
        lambda: ensemble_without("vgg19"),
        r"models/ensemble/decision.json: made for the ensemble of custom, vgg19, resnet50, but vgg19 is "
        r"not in the models folder",
    ),
    "ensemble decision naming an unknown model": Case(
        lambda: [
            image("a.png"),
            *(
                []
                if ensemble_decision(
                    weights={"custom": 0.5, "densenet": 0.5},
                    model_digests={"custom": "0" * 64, "densenet": "0" * 64},
                )
                else []
            ),
        ],
        r"models/ensemble/decision.json: invalid decision: .*ensemble member\(s\) densenet: not a model",
    ),
    "ensemble decision with a malformed digest": Case(
        lambda: [
            image("a.png"),
            *([] if ensemble_decision(model_digests=dict.fromkeys(MODEL_NAMES, "abc")) else []),
        ],
        r"models/ensemble/decision.json: invalid decision: model_digests.custom: String should match",
    ),
    "model file that is a folder": Case(
        lambda: model_file_replaced_by("folder"),
        r"models/vgg19/model.keras: folder, not a model file",
    ),
    "model file linking to a device": Case(
        lambda: model_file_replaced_by("device"),
        r"models/vgg19/model.keras: a character device, not a model file",
    ),
    "an image at 40X": Case(
        lambda: [image("SOB_M_DC-14-2523-40-001.png")],
        r"1 at 40X: custom was trained on 100X/200X/400X only; its outputs at other magnifications are "
        "extrapolation",
        "warning",
        rows=1,
    ),
}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder with the three models' descriptions in `models/`."""
    monkeypatch.chdir(tmp_path)
    for name in MODEL_NAMES:
        described_file(Path("models"), name)
    return tmp_path


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Models that load without TensorFlow and give each file its PROBABILITIES value; returns the
    paths they were run on."""
    ran: list[str] = []

    def run_models(models: dict[str, object], paths: list[str], *_: object) -> dict[str, np.ndarray]:
        ran.extend(paths)
        values = np.array([PROBABILITIES.get(Path(p).name, 0.5) for p in paths], dtype="float64")
        return dict.fromkeys(models, values)

    monkeypatch.setattr("commands.predict.load_model", lambda path, name: (name, None))
    monkeypatch.setattr("commands.predict.run_models", run_models)
    return ran


@pytest.fixture
def no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model is a failure: every check must come before it."""

    def load_model(path: Path, name: str) -> None:
        raise AssertionError(f"{path} loaded before the inputs were refused")

    monkeypatch.setattr("commands.predict.load_model", load_model)


@pytest.fixture
def deadline() -> Iterator[None]:
    """A hang (a symlink loop followed forever, a FIFO read) fails the test instead of the suite."""

    def expired(*_: object) -> None:
        raise TimeoutError("over 120 s: a hang")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def snapshot() -> dict[str, object]:
    """The working folder: every entry's type, and the bytes of the regular files (links not
    followed, FIFOs not opened)."""
    entries: dict[str, object] = {}
    for root, dirs, files in os.walk("."):
        for name in dirs + files:
            path = os.path.join(root, name)
            mode = os.lstat(path).st_mode
            entries[path] = Path(path).read_bytes() if stat.S_ISREG(mode) else stat.S_IFMT(mode)
    return entries


def predict(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr of `breakhis-predict args` (models/ and out.csv unless given)."""
    from commands.predict import main

    defaults = [*(["--models-dir", "models"] if "--models-dir" not in args else [])]
    defaults += ["--out", "out.csv"] if "--out" not in args else []
    try:
        main([*args, *defaults, "--quiet"])
    except SystemExit as exit_:
        return int(exit_.code or 0), capsys.readouterr().err
    return 0, capsys.readouterr().err


@pytest.mark.usefixtures("workspace", "deadline")
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_to_predict(
    case: Case, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    args = case.setup()
    before = snapshot()
    if case.outcome in ("error", "usage"):
        request.getfixturevalue("no_models")
    else:
        request.getfixturevalue("fake_models")
    code, error = predict(args, capsys)
    assert "Traceback" not in error, error
    if case.outcome == "usage":
        assert code == 2 and re.search(case.message, error), error
        return
    lines = error.splitlines()
    if case.outcome == "error":
        assert code == 1 and error.startswith("error: ") and error.count("error:") == 1, error
        assert re.search(case.message, error), error
        assert snapshot() == before  # nothing written, nothing replaced
        return
    assert code == 0, error
    if case.outcome == "warning":
        assert any(re.search(case.message, line) for line in lines if line.startswith("warning:")), error
    else:
        assert re.search(case.message, lines[-1]), error
    if case.rows is not None:
        assert len(pd.read_csv("out.csv")) == case.rows


# ---- what the catalogue's cases cannot show in one line ------------------------------------------


@pytest.mark.usefixtures("workspace")
def test_a_file_given_twice_counts_once_in_its_patient_mean(
    fake_models: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """One patient, two images (0.9 and 0.1): the first given three ways must not pull the mean up."""
    first, second = image(BREAKHIS), image("SOB_M_DC-14-2523-100-002.png")
    text("list.csv", f"path\n{first}\n")
    code, error = predict([first, os.path.abspath(first), "list.csv", second, "--threshold", "0.6"], capsys)
    assert code == 0, error
    assert fake_models == [first, second]  # each file predicted once, in the order given
    table = pd.read_csv("out.csv")
    assert list(table["path"]) == [first, second]  # the first spelling kept
    patient = pd.read_csv("out_patients.csv").iloc[0]
    assert patient["images"] == 2
    assert patient["mean_probability"] == pytest.approx(0.5)  # not (0.9 * 3 + 0.1) / 4 = 0.7
    assert patient["predicted_class"] == "benign"


@pytest.mark.usefixtures("workspace", "fake_models")
def test_a_symlinked_out_is_followed_and_the_link_kept(capsys: pytest.CaptureFixture[str]) -> None:
    """A link as --out writes its target, atomically (the link stays), as a shell's `>` would; a
    dangling link makes its target."""
    Path("runs").mkdir()
    text("runs/old.csv", "the previous predictions\n")
    link("latest.csv", "runs/old.csv")
    link("next.csv", "runs/new.csv")  # dangling
    for out, target in (("latest.csv", "runs/old.csv"), ("next.csv", "runs/new.csv")):
        code, error = predict([image("a.png"), "--out", out], capsys)
        assert code == 0, error
        assert Path(out).is_symlink() and os.readlink(out) == target
        assert pd.read_csv(target)["path"].tolist() == ["a.png"]
        assert f"wrote {out} (the link's target, {os.path.abspath(target)})" in error
    assert sorted(p.name for p in Path("runs").iterdir()) == ["new.csv", "old.csv"]  # no temporary left


@pytest.mark.usefixtures("workspace")
def test_read_inputs_lists_every_spelling_and_each_file_once() -> None:
    """`read_inputs`' two views: what the inputs name (`listed`: a file given twice is there twice)
    and what predict runs on (`paths`: each file once), with what it left out."""
    from breakhis.data.input_files import read_inputs

    image("a.png")
    folder_of("b.png", "notes.txt", ".DS_Store")
    inputs = read_inputs(["a.png", "a.png", "folder"])
    assert inputs.named == ["a.png", "a.png", "folder/b.png"]
    assert inputs.paths == ["a.png", "folder/b.png"]
    assert inputs.duplicates == [("a.png", "a.png")]
    assert (inputs.skipped, inputs.hidden) == (["folder/notes.txt"], ["folder/.DS_Store"])
