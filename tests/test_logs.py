"""TensorFlow's native start-up chatter is dropped from a stage's stderr; everything else passes,
and BREAKHIS_TF_LOGS=1 brings the chatter back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

QUIET = "from breakhis.pipeline.logs import quiet_native_logs; quiet_native_logs()\n"
WRITES = r"""
import os, sys
os.write(2, b"I0000 00:00:1795771643.365860   11441 port.cc:153] oneDNN custom operations are on. You\n")
os.write(2, b"E0000 00:00:1795771646.039600   11441 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n")
print("warning: a real one", file=sys.stderr)
import warnings
warnings.warn("Your input ran out of data; interrupting training.", UserWarning)
os.write(2, b"W0000 00:00:1795771646.1   11441 some_op.cc:10] a real C++ warning\n")
os.write(2, b"\rprogress 50%")
raise SystemExit("error: bad input, named")
"""


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run Python code; stdout and stderr decoded as they are (`\r` kept)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "BREAKHIS"))}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={**environment, **env},
        capture_output=True,
        timeout=120,
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def test_chatter_is_dropped_and_the_rest_passes_in_order() -> None:
    result = run(QUIET + WRITES)
    assert result.returncode == 1
    assert result.stderr == (
        "warning: a real one\n"
        "W0000 00:00:1795771646.1   11441 some_op.cc:10] a real C++ warning\n"
        "\rprogress 50%error: bad input, named\n"
    )


def test_the_switch_shows_everything() -> None:
    result = run(QUIET + WRITES, BREAKHIS_TF_LOGS="1")
    assert "oneDNN custom operations are on" in result.stderr and "failed call to cuInit" in result.stderr


def test_a_traceback_still_reaches_the_user() -> None:
    result = run(QUIET + "raise RuntimeError('a real bug')")
    assert (
        "Traceback (most recent call last)" in result.stderr and "RuntimeError: a real bug" in result.stderr
    )


@pytest.mark.slow
def test_importing_and_running_tensorflow_prints_no_chatter() -> None:
    code = QUIET + (
        "import tensorflow as tf, keras, numpy as np\n"
        "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])\n"
        "model.compile('adam', 'mse'); model.fit(np.zeros((4, 3)), np.zeros(4), verbose=0)\n"
        "print(len(tf.config.list_physical_devices('CPU')))\n"
    )
    quiet = run(code)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "1"
    assert quiet.stderr == "", quiet.stderr
    loud = run(code, BREAKHIS_TF_LOGS="1")
    assert "oneDNN custom operations are on" in loud.stderr  # what the filter dropped above
