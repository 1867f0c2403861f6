"""The project's YAML reader (breakhis.pipeline.yaml_text) on the files a user can break: alias bombs
and self-referring aliases refused in a second, merge keys accepted, empty and non-UTF-8 files named;
and run.py refusing such a params.yaml before DVC reads it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ruamel.yaml import YAML

from breakhis.pipeline.code import PACKAGES
from breakhis.pipeline.environment import SYNC_RECORD
from breakhis.pipeline.params import ParamsError
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.yaml_text import (
    MAX_VALUES,
    YamlError,
    expanded_size,
    parse_yaml,
    read_yaml,
    yaml_lines,
    yaml_value,
)
from tests.conftest import PROJECT_ROOT

# nine levels of nine-fold aliases: 9^9 = 387 million values once expanded, in 600 bytes
BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]\n" for level in range(1, 10)
)


def params_file(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "params.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_an_alias_bomb_is_refused_in_a_second_naming_the_file(tmp_path: Path) -> None:
    path = params_file(tmp_path, "seed: 1\n" + BOMB)
    started = time.perf_counter()
    with pytest.raises(ParamsError, match=r"params.yaml: its aliases expand it to [\d,]{13} values"):
        load_params(path)
    assert time.perf_counter() - started < 1.0


def test_aliases_within_the_bound_are_read_as_yaml_reads_them() -> None:
    text = "a: &a [1, 2, 3]\nb: [*a, *a]\n"
    assert parse_yaml(text, "t") == {"a": [1, 2, 3], "b": [[1, 2, 3], [1, 2, 3]]}
    loader_size = 1 + (1 + 4) + (1 + 1 + 2 * 4)  # the root; key a and its list; key b, its list, two copies
    import yaml

    assert expanded_size(yaml.compose(text)) == loader_size
    many = "a: &a [" + ", ".join(["1"] * 1000) + "]\nb: [" + ", ".join(["*a"] * 120) + "]\n"
    with pytest.raises(YamlError, match=r"t: its aliases expand it to 121,\d{3} values \(at most 100,000"):
        parse_yaml(many, "t")
    assert MAX_VALUES == 100_000


def test_an_alias_to_itself_is_refused() -> None:
    with pytest.raises(YamlError, match=r"t: an alias refers to its own anchor \(line 1\)"):
        parse_yaml("a: &a [1, *a]\n", "t")


def test_a_merge_key_is_valid_yaml_and_its_keys_can_be_overridden(tmp_path: Path) -> None:
    path = params_file(
        tmp_path,
        "models:\n  vgg19: &backbone\n    dropout: 0.2\n    head_epochs: 2\n"
        "  resnet50:\n    <<: *backbone\n    dropout: 0.4\n",
    )
    params = load_params(path)
    assert (params.models.vgg19.dropout, params.models.resnet50.dropout) == (0.2, 0.4)
    assert params.models.resnet50.head_epochs == 2
    twice = (
        "models:\n  vgg19: &b {dropout: 0.2}\n  resnet50:\n    <<: *b\n    dropout: 0.4\n    dropout: 0.5\n"
    )
    with pytest.raises(ParamsError, match=r"duplicate key 'dropout' \(first on line 5\)"):
        load_params(params_file(tmp_path, twice))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", r"params.yaml: empty \(no keys\); restore it \(`git checkout .*params.yaml`\)"),
        ("# only a comment\n\n", r"params.yaml: empty \(no keys\)"),
        (
            b"seed: 1\ndata:\n  path: caf\xe9\n",
            r"params.yaml: not UTF-8 text \(byte 0xe9 on line 3\); save it",
        ),
        ("seed: [1\n", r'(?s)params.yaml: not valid YAML: .* in ".*params.yaml", line 2'),
    ],
    ids=["empty", "only comments", "Latin-1 byte", "unclosed bracket"],
)
def test_an_unusable_params_file_is_named_with_what_is_wrong(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    with pytest.raises(ParamsError, match=message):
        load_params(params_file(tmp_path, content))


def test_a_params_file_that_is_a_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").mkdir()
    with pytest.raises(YamlError, match=r"params.yaml: cannot read it \(Is a directory\)"):
        read_yaml(tmp_path / "params.yaml")


SYNCED_FROM = ("uv.lock", "pyproject.toml")  # the files run.py syncs .venv from (ensure_virtualenv)


def in_sync_venv(project: Path) -> None:
    """`project/.venv`: the project's environment, linked entry by entry, with a sync record of its
    own that says it was synced from `project`'s files, so run.py never syncs (and never reinstalls
    the shared environment from a temporary copy) whatever the state of the developer's checkout."""
    venv = project / ".venv"
    venv.mkdir()
    for entry in (PROJECT_ROOT / ".venv").iterdir():
        if entry.name != SYNC_RECORD:
            os.symlink(entry, venv / entry.name)
    digests = {name: hashlib.sha256((project / name).read_bytes()).hexdigest() for name in SYNCED_FROM}
    (venv / SYNC_RECORD).write_text(json.dumps({**digests, "extras": []}) + "\n")


def test_run_py_refuses_an_alias_bomb_before_dvc_reads_it(tmp_path: Path) -> None:
    """`python3 run.py dvc status` on an alias bomb: one line naming params.yaml, in seconds (DVC's
    own reader would grow past gigabytes), and DVC never starts."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("run.py", "uv.lock", "pyproject.toml", "dvc.yaml", ".dvc/config"):
        (project / name).parent.mkdir(exist_ok=True)
        shutil.copy(PROJECT_ROOT / name, project / name)
    in_sync_venv(project)
    for package in PACKAGES:
        os.symlink(PROJECT_ROOT / package, project / package)
    (project / "params.yaml").write_text((PROJECT_ROOT / "params.yaml").read_text() + BOMB)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "run.py", "dvc", "status"], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: params.yaml: its aliases expand it to"), done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert all(line.endswith("plots-offline.html") for line in done.stdout.splitlines()), done.stdout
    assert time.perf_counter() - started < 30


def test_a_profile_or_a_set_value_with_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    from breakhis.pipeline.matrix import apply_overrides
    from breakhis.pipeline.profiles import load_profile

    (tmp_path / "bomb.yaml").write_text("version: 1\ndescription: x\nparams: {seed: 1}\n" + BOMB)
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"bomb.yaml: its aliases expand it to [\d,]+ values"):
        load_profile("bomb", tmp_path)
    flow = "{" + BOMB.strip().replace("\n", ", ") + "}"
    with pytest.raises(YamlError, match=r"-S train.seed=\{a0: .*its aliases expand it to"):
        apply_overrides({}, [f"train.seed={flow}"])
    assert time.perf_counter() - started < 1.0


# ---- the one renderer ---------------------------------------------------------------------------

ROUND_TRIPS = [
    None,
    True,
    False,
    0,
    -3,
    1e-05,
    5e-06,
    1.2345678901234e-05,
    1e16,
    0.1,
    1.0,
    -0.0,
    float("inf"),
    float("-inf"),
    "patient",
    "data/raw/BreaKHis_v1.tar.gz",
    "",
    "yes",
    "null",
    "1e-05",
    "a: b",
    "it's",
    "# not a comment",
    "é",
    [0.5, "x", None],
    (224, 224),
    {"a": [1, 2], "b": {"c": 1e-05}},
    # strings YAML 1.2 (DVC's ruamel, Hydra's -S) reads as numbers, and flow indicators inside a list
    "1e5",
    "0o17",
    "0x1F",
    ".5",
    ".inf",
    ["a, b", "x]", "{", "c}"],
    {"k": "[v]"},
    "two\nlines",
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=repr)
def test_yaml_value_reads_back_as_the_same_value(value: object) -> None:
    text = yaml_value(value)
    assert "\n" not in text
    expected = list(value) if isinstance(value, tuple) else value
    assert parse_yaml(text, "x") == expected
    assert yaml.safe_load(text) == expected  # PyYAML's own reading (YAML 1.1), as the docs' hooks read
    assert YAML(typ="safe", pure=True).load(text) == expected  # YAML 1.2, as DVC reads params.yaml


def test_numpy_numbers_are_written_as_pythons() -> None:
    assert [yaml_value(v) for v in (np.float64(0.5), np.float32(0.25), np.int64(3), np.bool_(True))] == [
        "0.5",
        "0.25",
        "3",
        "true",
    ]


def test_a_float_is_written_with_a_point_and_never_an_exponent() -> None:
    """PyYAML reads `1e-05` as a string; params.yaml, the docs and the model card write `0.00001`."""
    assert yaml_value(1e-05) == "0.00001"
    assert yaml_value(2.0) == "2.0"
    assert yaml_value(1e16) == "10000000000000000.0"
    assert yaml_value(float("nan")) == ".nan"


def test_yaml_lines_nest_mappings_and_write_values_on_one_line() -> None:
    tree = {"evaluate": {"members": ["custom", "vgg19"], "threshold": 0.5}, "seed": 42, "empty": {}}
    lines = yaml_lines(tree)
    assert lines == [
        "evaluate:",
        "  members: [custom, vgg19]",
        "  threshold: 0.5",
        "seed: 42",
        "empty: {}",
    ]
    assert parse_yaml("\n".join(lines), "x") == tree
