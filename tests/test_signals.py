"""SIGTERM and Ctrl-C (SIGINT) at several points of the real train and evaluate stages: the stage
ends with one line and status 143 / 130, and its outputs are all of the earlier run, byte for
byte (a DVCLive record never describes a model that does not exist); an interrupted training
run's state is kept for resuming, and says so, until `--fresh` or a finished run removes it."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.pipeline_repo import TINY, dvc, environment, make_repo, stage, write_params

pytestmark = pytest.mark.slow

TRAIN_OUTPUTS = ("models/custom/model.keras", "metrics/train/custom", "snapshots/custom")
EVALUATE_OUTPUTS = (
    "metrics/evaluate.json",
    "metrics/report.md",
    "metrics/report.html",
    "metrics/model_card.md",
    "plots/evaluate",
    *(f"models/{name}/decision.json" for name in ("custom", "vgg19", "resnet50", "ensemble")),
)
LONG_CUSTOM = {"models.custom.epochs": 30, "models.custom.patience": 30}  # time to be interrupted


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline, run once: the earlier outputs every interrupted run must leave as they are."""
    path = make_repo(tmp_path_factory.mktemp("signals"))
    write_params(path, TINY)
    dvc("repro", cwd=path)
    return path


def outputs(repo: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """Every file of the outputs `names`, with its bytes."""
    files: dict[str, bytes] = {}
    for name in names:
        path = repo / name
        for item in [path] if path.is_file() else sorted(path.rglob("*")):
            if item.is_file():
                files[str(item.relative_to(repo))] = item.read_bytes()
    assert files, f"no earlier outputs in {names}"
    return files


def as_in_a_terminal() -> None:
    """Ctrl-C as a terminal's foreground job has it. A job started in the background by a
    non-interactive shell (as CI may start the suite) inherits SIGINT ignored, and Python then
    leaves it ignored: the stage would never see the Ctrl-C this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(repo: Path, args: list[str], ready: Callable[[], bool], signum: int) -> tuple[int, str]:
    """Start `python -m <args>`, send `signum` once `ready()`; its exit status and stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=repo,
        env=environment(),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_in_a_terminal,
    )
    deadline = time.monotonic() + 300
    while not ready():
        assert process.poll() is None, f"ended before it could be interrupted: {process.communicate()[1]}"
        assert time.monotonic() < deadline, "never ready to be interrupted"
        time.sleep(0.02)
    process.send_signal(signum)
    return process.wait(timeout=120), process.communicate()[1]


def epochs_done(repo: Path, count: int) -> Callable[[], bool]:
    backup = repo / "models/.resume/custom/train/training_metadata.json"

    def ready() -> bool:
        try:
            return json.loads(backup.read_text() or "{}").get("epoch", -1) + 1 >= count
        except (OSError, ValueError):
            return False

    return ready


STATUS = {signal.SIGTERM: 143, signal.SIGINT: 130}
FIRST_LINE = {signal.SIGTERM: "stopped by SIGTERM", signal.SIGINT: "interrupted (Ctrl-C)"}


@pytest.mark.parametrize(
    ("signum", "after_epochs"),
    [(signal.SIGTERM, 1), (signal.SIGINT, 1), (signal.SIGTERM, 3)],
    ids=["SIGTERM in epoch 2", "SIGINT in epoch 2", "SIGTERM in epoch 4"],
)
def test_an_interrupted_training_run_leaves_the_earlier_model_and_record(
    repo: Path, signum: int, after_epochs: int
) -> None:
    write_params(repo, TINY)
    dvc("repro", cwd=repo)  # the module's outputs, even after another test failed
    before = outputs(repo, TRAIN_OUTPUTS)
    write_params(repo, {**TINY, **LONG_CUSTOM})
    shutil.rmtree(repo / "models/.resume/custom", ignore_errors=True)  # ready counts this run's epochs
    status, errors = interrupt(repo, ["stages.train", "custom"], epochs_done(repo, after_epochs), signum)
    assert status == STATUS[signum], errors
    assert "Traceback" not in errors, errors
    assert f"error: {FIRST_LINE[signum]}; no output of this run was kept" in errors
    assert "its completed epochs are kept in models/.resume/custom" in errors
    assert outputs(repo, TRAIN_OUTPUTS) == before  # the record still describes the model beside it
    assert (repo / "models/.resume/custom").is_dir() and not (repo / ".runs/train-custom").exists()


def test_fresh_discards_an_interrupted_runs_state(repo: Path) -> None:
    write_params(repo, {**TINY, **LONG_CUSTOM})
    shutil.rmtree(repo / "models/.resume/custom", ignore_errors=True)
    status, errors = interrupt(repo, ["stages.train", "custom"], epochs_done(repo, 2), signal.SIGTERM)
    assert status == 143, errors
    write_params(repo, {**TINY, "models.custom.epochs": 4, "models.custom.patience": 4})
    done = stage("stages.train", "custom", "--fresh", cwd=repo)
    assert "resuming" not in done and "Epoch 1/4" in done
    assert not (repo / "models/.resume/custom").exists()
    write_params(repo, TINY)
    dvc("repro", cwd=repo)  # back to the module's outputs for the other tests


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("point", ["outputs moved aside", "report rewritten"])
def test_an_interrupted_evaluate_leaves_every_earlier_output(repo: Path, signum: int, point: str) -> None:
    """Inside evaluate's output unit: just after every earlier output was moved aside, and later,
    with metrics, decisions, plots and the report rewritten while Grad-CAM and the card are not."""
    write_params(repo, TINY)
    dvc("repro", cwd=repo)
    before = outputs(repo, EVALUATE_OUTPUTS)
    started = repo / ".runs/evaluate/.started"

    def ready() -> bool:
        return started.exists() and (point == "outputs moved aside" or (repo / "metrics/report.md").exists())

    status, errors = interrupt(repo, ["stages.evaluate"], ready, signum)
    assert status == STATUS[signum], errors
    assert (
        "Traceback" not in errors and f"error: {FIRST_LINE[signum]}; no output of this run was kept" in errors
    )
    assert outputs(repo, EVALUATE_OUTPUTS) == before
    assert not (repo / ".runs/evaluate").exists()
