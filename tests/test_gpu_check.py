"""`python3 run.py gpu-check` (commands.gpu_check): on this CPU it reports that no GPU was found and
still runs every check, with tiny sizes and one step."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from commands.gpu_check import parse_args
from tests.conftest import PROJECT_ROOT


@pytest.mark.parametrize(
    ("options", "message"),
    [(["--size", "16", "224"], "--size: 16 is below 32"), (["--steps", "0"], "--steps: 0 is below 1")],
)
def test_bad_options_are_named(options: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_args(options)


@pytest.mark.slow
def test_the_check_runs_on_a_cpu_and_says_there_is_no_gpu() -> None:
    tiny = ["--size", "32", "32", "--batch-size", "2", "--steps", "1", "--cpu-steps", "1"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-m", "commands.gpu_check", *tiny],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
    assert "GPU: none found; every figure below is the CPU's" in out
    assert re.search(r"^mixed precision: ok \(a training step in float16, \d+ images/s\)$", out, re.M), out
    assert re.search(r"^XLA: ok \(a training step compiled by XLA, \d+ images/s\)$", out, re.M), out
    assert "multi-device: ok (MirroredStrategy over 2 logical CPUs, 2 replicas)" in out
    assert "training images/s at 32x32, batch 2, random tensors:" in out
    for model in ("custom", "vgg19", "resnet50"):
        assert re.search(rf"^\s+{model}\s+no GPU\s+\d+\.\d$", out, re.M), out
