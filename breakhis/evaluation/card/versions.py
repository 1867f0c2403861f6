"""The model card's Versions section: Python, the locked environment, the key packages, and the run's
params."""

from __future__ import annotations

import platform
from importlib import metadata

from breakhis.pipeline.environment import describe_environment
from breakhis.pipeline.params import Params
from breakhis.pipeline.yaml_text import yaml_lines

PACKAGES = (
    "tensorflow",
    "keras",
    "numpy",
    "pandas",
    "scikit-learn",
    "opencv-python-headless",
    "pydantic",
    "dvc",
    "dvclive",
    "breakhis-dvc",
)


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions_section(params: Params) -> list[str]:
    lines = [
        "## Versions",
        "",
        f"- Python {platform.python_version()} on {platform.system()} {platform.machine()}",
        f"- Environment: {describe_environment()}",
    ]
    lines += [f"- {name} {package_version(name)}" for name in PACKAGES]
    dump = yaml_lines(params.model_dump(mode="json"))
    lines += ["", "Params of the run (`params.yaml`):", "", "```yaml", *dump, "```", ""]
    return lines
