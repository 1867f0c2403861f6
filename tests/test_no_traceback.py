"""No traceback from any entry point: each is driven into a full disk, an output folder it cannot
write and a malformed input, in a subprocess, and must end with status 1 and `error:` lines that
name the file, never a Python traceback; a full disk or a read-only folder also leaves the earlier
outputs as they were.

A full disk and a read-only folder are real: a small tmpfs mounted over the output folder in a
private mount namespace (`unshare -m`, or `unshare -rm` as a user), which vanishes with the process.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pipeline_repo import TINY, environment, make_repo, write_params

pytestmark = pytest.mark.slow


def unshare_prefix() -> list[str] | None:
    """The `unshare` command line that gives a process its own mounts here, or None."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        probe = [*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt"]
        if subprocess.run(probe, capture_output=True).returncode == 0:
            return prefix
    return None


UNSHARE = unshare_prefix()
needs_mounts = pytest.mark.skipif(UNSHARE is None, reason="no private mount namespace on this machine")


FULL, READ_ONLY = "full disk", "read-only"


def run_mounted(repo: Path, folder: str, kind: str, command: list[str]) -> subprocess.CompletedProcess[str]:
    """`command` in `repo` with `folder` made a full disk (a tmpfs holding a copy of its files,
    the rest of its space filled) or read-only (bound onto itself read-only), for that process only."""
    assert UNSHARE is not None
    (repo / folder).mkdir(parents=True, exist_ok=True)
    where = shlex.quote(folder)
    if kind == FULL:
        prepare = (
            f'keep=$(mktemp -d) && cp -a {where}/. "$keep"/ && '
            f"mount -t tmpfs -o size=$(( $(du -sk {where} | cut -f1) + 2048 ))k tmpfs {where} && "
            f'cp -a "$keep"/. {where}/ && rm -rf "$keep" && '
            f"{{ dd if=/dev/zero of={where}/.filler bs=64k 2>/dev/null; true; }}"
        )
    else:
        prepare = f"mount --bind {where} {where} && mount -o remount,bind,ro {where}"
    script = f"{prepare} && exec {shlex.join(command)}"
    return subprocess.run(
        [*UNSHARE, "sh", "-c", script],
        cwd=repo,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def one_line_error(done: subprocess.CompletedProcess[str], *names: str) -> str:
    errors = done.stderr
    assert done.returncode == 1, (done.returncode, errors[-3000:])
    assert "Traceback" not in errors, errors[-3000:]
    last = errors.strip().splitlines()[-1]
    assert last.startswith("error: "), errors[-3000:]
    assert all(name in errors for name in names), (names, errors[-3000:])
    return last


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project run up to split: inputs for every stage, and outputs to keep."""
    path = make_repo(tmp_path_factory.mktemp("no-traceback"))
    write_params(path, TINY)
    python = [sys.executable, "-m"]
    for module in ("stages.ingest", "stages.split"):
        subprocess.run([*python, module], cwd=path, env=environment(), check=True, capture_output=True)
    return path


@dataclass(frozen=True)
class Case:
    command: list[str]  # after `python -m`
    folder: str  # the output folder the tmpfs replaces
    names: tuple[str, ...] = ()  # what the error must name


CASES = {
    "ingest (synthetic)": Case(["stages.ingest"], "data", ("data/",)),
    "split": Case(["stages.split"], "data", ("data/split",)),
    "augment": Case(["stages.augment"], "data", ("data/augmented",)),
}


def tree(repo: Path, folder: str) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted((repo / folder).rglob("*")) if p.is_file()}


@needs_mounts
@pytest.mark.parametrize("kind", [FULL, READ_ONLY])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_an_unwritable_output_ends_in_one_line(repo: Path, case: Case, kind: str) -> None:
    before = tree(repo, case.folder)
    done = run_mounted(repo, case.folder, kind, [sys.executable, "-m", *case.command])
    line = one_line_error(done, *case.names)
    reason = "Read-only file system" if kind == READ_ONLY else "No space left on device"
    assert reason in line, line
    assert tree(repo, case.folder) == before  # the mount was private, and nothing was lost


@needs_mounts
@pytest.mark.parametrize("kind", [FULL, READ_ONLY])
def test_predict_into_an_unwritable_folder_ends_in_one_line(
    repo: Path, tiny_models: Path, synthetic_images: list[Path], kind: str
) -> None:
    command = [sys.executable, "-m", "commands.predict", str(synthetic_images[0].parent), "--models-dir"]
    done = run_mounted(repo, "out", kind, [*command, str(tiny_models), "--out", "out/predictions.csv"])
    line = one_line_error(done, "out/")
    assert ("Read-only file system" if kind == READ_ONLY else "No space left on device") in line, line


MALFORMED: dict[str, Callable[[Path], None]] = {
    "params.yaml with a Latin-1 byte": lambda repo: (repo / "params.yaml").write_bytes(
        (repo / "params.yaml").read_bytes().replace(b"synthetic", b"synth\xe9tic", 1)
    ),
    "params.yaml emptied": lambda repo: (repo / "params.yaml").write_text(""),
}
ENTRY_POINTS = [
    ["stages.ingest"],
    ["stages.split"],
    ["stages.augment"],
    ["stages.train", "custom"],
    ["stages.evaluate"],
    ["commands.model_card"],
    ["commands.exp_run", "--profile", "real-patches", "--print"],
]


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=[" ".join(e) for e in ENTRY_POINTS])
@pytest.mark.parametrize("malform", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_params_file_ends_in_one_line(
    repo: Path, entry: list[str], malform: Callable[[Path], None]
) -> None:
    original = (repo / "params.yaml").read_bytes()
    try:
        malform(repo)
        done = subprocess.run(
            [sys.executable, "-m", *entry],
            cwd=repo,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        (repo / "params.yaml").write_bytes(original)
    line = one_line_error(done, "params.yaml")
    assert "not UTF-8 text (byte 0xe9 on line" in line or "empty (no keys)" in line, line


def test_the_tmpfs_really_is_full(tmp_path: Path) -> None:
    """The full-disk cases are real only if the mount refuses a write: checked here."""
    if UNSHARE is None:
        pytest.skip("no private mount namespace on this machine")
    (tmp_path / "out").mkdir()
    script = "import pathlib; pathlib.Path('out/x').write_bytes(bytes(100_000))"
    done = run_mounted(tmp_path, "out", FULL, [sys.executable, "-c", script])
    assert done.returncode == 1 and "No space left on device" in done.stderr
    assert not os.listdir(tmp_path / "out")  # the mount was private: nothing is left outside
