"""The locked environment: what run.py bootstraps from uv.lock, and the lock a run records."""

from __future__ import annotations

import json
import tomllib
from importlib import metadata
from pathlib import Path
from types import ModuleType

from breakhis.pipeline.environment import SYNC_RECORD, describe_environment, environment_lock
from breakhis.pipeline.files import file_digest
from tests.conftest import PROJECT_ROOT, module_from_file


def run_py() -> ModuleType:
    return module_from_file(PROJECT_ROOT / "run.py", "run_py")


def test_run_py_bootstraps_the_locked_uv_with_every_wheel_hash() -> None:
    (line,) = run_py().locked_uv()
    requirement, *hashes = line.split()
    lock = tomllib.loads((PROJECT_ROOT / "uv.lock").read_text())
    (uv,) = [p for p in lock["package"] if p["name"] == "uv"]
    assert requirement == f"uv=={uv['version']}"
    assert len(hashes) == len(uv["wheels"]) > 1 and all(h.startswith("--hash=sha256:") for h in hashes)
    # this environment was synced by that uv: the version run.py installs is the locked one
    assert metadata.version("uv") == uv["version"]


def test_every_extra_run_py_offers_is_locked() -> None:
    lock = tomllib.loads((PROJECT_ROOT / "uv.lock").read_text())
    (project,) = [p for p in lock["package"] if p["name"] == "breakhis-dvc"]
    assert set(project["optional-dependencies"]) == {"dev", *run_py().EXTRAS}
    assert "uv" in {d["name"] for d in project["optional-dependencies"]["dev"]}
    # the locked versions are the ones installed here
    for name in ("tensorflow", "keras", "dvc"):
        (package,) = [p for p in lock["package"] if p["name"] == name]
        assert metadata.version(name) == package["version"], name


def test_a_run_records_the_lock_and_whether_it_was_installed_from_it(tmp_path: Path) -> None:
    lock, prefix = tmp_path / "uv.lock", tmp_path / "venv"
    prefix.mkdir()
    lock.write_text("version = 1\n")
    digest = file_digest(lock)
    assert environment_lock(lock, prefix) == {"environment_lock": digest, "installed_from_lock": False}
    (prefix / SYNC_RECORD).write_text(json.dumps({"uv.lock": digest, "extras": []}))
    assert environment_lock(lock, prefix)["installed_from_lock"] is True
    assert (
        describe_environment(lock, prefix)
        == f"`{lock}` sha256 {digest[:16]}; this environment was synced from it (`python3 run.py sync`)"
    )
    lock.write_text("version = 2\n")  # the lock changed since the sync
    assert environment_lock(lock, prefix)["installed_from_lock"] is False
    assert "was NOT synced from it" in describe_environment(lock, prefix)
    (prefix / SYNC_RECORD).write_text("not json")
    assert environment_lock(lock, prefix)["installed_from_lock"] is False
    lock.unlink()
    assert environment_lock(lock, prefix) == {"environment_lock": "none", "installed_from_lock": False}
    assert describe_environment(lock, prefix).startswith("no `")
