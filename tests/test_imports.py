"""The data stages and their tests must not pay for TensorFlow (about 9 s per process)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import PROJECT_ROOT

WITHOUT_TENSORFLOW = [
    "stages.ingest",
    "stages.split",
    "stages.augment",
    "breakhis.pipeline.params_file",
    "breakhis.evaluation.metrics",
    "breakhis.evaluation.report",
    "breakhis.data.synthetic",
    "breakhis.data.partition",
    "breakhis.data.split_report",
    "breakhis.data.augmentation",
    "breakhis.data.plots",
    "commands.pr_comment",
    "breakhis.modeling.prediction",
    "commands.predict",
    "commands.model_card",
    "commands.gpu_check",  # TensorFlow only once the options are parsed: --help is instant
    "breakhis.pipeline.coherence",
]


def test_data_stages_do_not_import_tensorflow() -> None:
    imports = "; ".join(f"import {module}" for module in WITHOUT_TENSORFLOW)
    check = f"{imports}; import sys; print([m for m in ('tensorflow', 'keras') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", check], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_fast_test_modules_do_not_import_tensorflow() -> None:
    fast = [
        "tests.test_dataset",
        "tests.test_partition",
        "tests.test_metrics",
        "tests.test_params",
        "tests.test_synthetic",
        "tests.test_augmentation",
        "tests.test_split_stage",
        "tests.test_workflow",
        "tests.test_model_card",
        "tests.test_predict",
    ]
    check = "; ".join(f"import {m}" for m in fast) + "; import sys; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", check], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
