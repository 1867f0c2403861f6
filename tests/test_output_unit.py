"""Outputs replaced as one unit (breakhis.pipeline.files.output_unit): all of the earlier run's or
all of this one's, after an exception, Ctrl-C, SIGTERM or SIGKILL; and run_stage's one line for an
interruption or a file the system cannot write. The train and evaluate stages under real signals
are in tests/test_signals.py."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from breakhis.pipeline.files import output_unit
from breakhis.pipeline.stage import Terminated, run_stage

TARGETS = [Path("out/model.keras"), Path("out/live"), Path("out/report.md")]


def earlier(root: Path) -> dict[str, bytes]:
    """The earlier run's outputs: a file, a folder of two files, a file."""
    (root / "out/live").mkdir(parents=True)
    (root / "out/model.keras").write_bytes(b"model 1")
    (root / "out/live/metrics.json").write_bytes(b"{}")
    (root / "out/live/curve.tsv").write_bytes(b"step\n0\n")
    (root / "out/report.md").write_bytes(b"report 1")
    return tree(root)


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".runs" not in path.parts
    }


def half_written(root: Path) -> None:
    """What a run has written when it is stopped: a new live folder and a new model, no report."""
    (root / "out/live").mkdir()
    (root / "out/live/metrics.json").write_bytes(b'{"step": 0}')
    (root / "out/model.keras").write_bytes(b"model 2")


@pytest.mark.parametrize("stop", [ValueError("bad"), KeyboardInterrupt(), Terminated("stopped by SIGTERM")])
def test_a_stopped_unit_puts_every_earlier_output_back(
    stop: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = earlier(tmp_path)
    with pytest.raises(type(stop)), output_unit("train-custom", TARGETS):
        assert tree(tmp_path) == {}  # moved aside while the run works
        half_written(tmp_path)
        raise stop
    assert tree(tmp_path) == before
    assert list((tmp_path / ".runs").iterdir()) == [tmp_path / ".runs/train-custom.lock"]


def test_a_stopped_first_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    with pytest.raises(KeyboardInterrupt), output_unit("train-custom", TARGETS):
        half_written(tmp_path)
        raise KeyboardInterrupt
    assert tree(tmp_path) == {}


def test_a_finished_unit_replaces_every_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    earlier(tmp_path)
    with output_unit("train-custom", TARGETS):
        half_written(tmp_path)
        (tmp_path / "out/report.md").write_bytes(b"report 2")
    assert tree(tmp_path) == {
        "out/live/metrics.json": b'{"step": 0}',
        "out/model.keras": b"model 2",
        "out/report.md": b"report 2",
    }
    assert not (tmp_path / ".runs/train-custom").exists()


KILLED = """
import os, sys
from pathlib import Path
from breakhis.pipeline.files import output_unit
with output_unit("train-custom", [Path("out/model.keras"), Path("out/live"), Path("out/report.md")]):
    Path("out/live").mkdir()
    Path("out/live/metrics.json").write_bytes(b"half")
    os.kill(os.getpid(), 9)
"""


def test_the_run_after_a_killed_one_starts_from_the_earlier_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL runs no cleanup: the earlier outputs wait in .runs/, the next run puts them back."""
    monkeypatch.chdir(tmp_path)
    before = earlier(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    killed = subprocess.run([sys.executable, "-c", KILLED], cwd=tmp_path, env=env, check=False)
    assert killed.returncode == -9
    assert tree(tmp_path) == {"out/live/metrics.json": b"half"}  # what SIGKILL leaves
    with pytest.raises(ValueError), output_unit("train-custom", TARGETS):
        raise ValueError("the next run fails at once")
    assert tree(tmp_path) == before


def test_a_second_run_of_the_unit_stops_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    earlier(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", KILLED.replace("os.kill(os.getpid(), 9)", "import time; time.sleep(60)")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / ".runs/train-custom/.started").exists():
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.01)
        locked = pytest.raises(PermissionError, match=r"\.runs/train-custom: another run is writing it now")
        with locked, output_unit("train-custom", TARGETS):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_absolute_targets_are_refused(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="targets must be relative to the project"),
        output_unit("x", [tmp_path / "a"]),
    ):
        pass


@pytest.mark.parametrize(
    ("raised", "status", "line"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "metrics/evaluate.json"),
            1,
            "error: metrics/evaluate.json: No space left on device; no output of this run was kept, the "
            "earlier outputs are unchanged",
        ),
        (KeyboardInterrupt(), 130, "error: interrupted (Ctrl-C); no output of this run was kept"),
        (Terminated("stopped by SIGTERM"), 143, "error: stopped by SIGTERM; no output of this run was kept"),
    ],
    ids=["full disk", "Ctrl-C", "SIGTERM"],
)
def test_run_stage_ends_in_one_line(
    raised: BaseException, status: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def main() -> None:
        raise raised

    with pytest.raises(SystemExit) as exit_:
        run_stage(main)
    assert exit_.value.code == status
    error = capsys.readouterr().err
    assert error.startswith(line) and len(error.splitlines()) == 1, textwrap.shorten(error, 300)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["commands.pr_comment", "--out", "folder"], "error: --out folder: is a folder; give a file name"),
        (
            ["commands.compare", "HEAD", "--json", "/dev/null"],
            "error: --json /dev/null: is a character device",
        ),
        (
            ["commands.runners", "summarise", "[]", "--out", "folder/x/../"],
            "error: --out folder/x/..: is a folder",
        ),
    ],
    ids=["pr_comment --out", "compare --json", "runners --out"],
)
def test_a_commands_output_is_checked_before_its_work(
    command: list[str], message: str, tmp_path: Path
) -> None:
    """Each refuses at once, before reading git, experiments or params, and writes nothing."""
    (tmp_path / "folder/x").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", *command], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1 and done.stderr.startswith(message), done.stderr
    assert "Traceback" not in done.stderr and time.perf_counter() - started < 30
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["folder", "x"]
