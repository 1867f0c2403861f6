"""The ingest stage under DVC, as users track real data: the raw data at `data.path` is a DVC
dependency (a change re-runs ingest), and an unchanged archive is never extracted twice."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipeline_repo import commit, make_repo, run
from tests.raw_data import SHORT_IMAGE, copy_tree, image_path, make_tar_gz
from tests.test_ingest import TRAIN_FITS

pytestmark = pytest.mark.slow


def set_params(repo: Path, **sections: dict[str, object]) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_raw_data_is_tracked_and_an_unchanged_archive_is_extracted_once(
    sample_tree: Path, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    dvc = [sys.executable, "-m", "dvc"]

    # a fresh clone: the synthetic default runs with the (empty) data/raw as dependency
    set_params(
        repo,
        data={"magnifications": [100], "synthetic": {"benign_patients": 2, "malignant_patients": 2}},
        ingest={"image_size": [46, 70]},
        train=TRAIN_FITS,
    )
    assert "Running stage 'ingest'" in run([*dvc, "repro", "ingest"], repo)

    # real data, tracked with dvc add
    tree = copy_tree(sample_tree, tmp_path / "raw")
    make_tar_gz(tree, repo / "data/raw/BreaKHis_v1.tar.gz")
    run([*dvc, "add", "data/raw/BreaKHis_v1.tar.gz"], repo)
    set_params(
        repo,
        data={
            "source": "breakhis",
            "path": "data/raw/BreaKHis_v1.tar.gz",
            "magnifications": [40, 100, 200, 400],
        },
    )
    commit(repo, "real data")
    output = run([*dvc, "repro", "ingest"], repo)
    assert "Running stage 'ingest'" in output and "extracting" in output
    assert json.loads((repo / "metrics/ingest.json").read_text())["images"] == 10

    assert "Running stage" not in run([*dvc, "repro", "ingest"], repo)  # nothing changed

    set_params(repo, ingest={"image_size": [92, 140]})  # ingest re-runs, the archive is unchanged
    output = run([*dvc, "repro", "ingest"], repo)
    assert "Running stage 'ingest'" in output and "reusing its extraction" in output

    image_path(tree, SHORT_IMAGE).unlink()  # new raw data: ingest re-runs and re-extracts
    make_tar_gz(tree, repo / "data/raw/BreaKHis_v1.tar.gz")
    assert "modified" in run([*dvc, "status", "ingest"], repo)
    run([*dvc, "add", "data/raw/BreaKHis_v1.tar.gz"], repo)
    output = run([*dvc, "repro", "ingest"], repo)
    assert "Running stage 'ingest'" in output and "extracting" in output
    assert json.loads((repo / "metrics/ingest.json").read_text())["files"] == 10
    assert len(list((repo / "data/extracted").iterdir())) == 1
    untracked = run(["git", "status", "--porcelain", "--untracked-files=all"], repo)
    assert "data/extracted" not in untracked and "BreaKHis_v1.tar.gz\n" not in untracked
