"""The documentation site's generated pages (docs/hooks.py): the params reference from the schema,
the outputs from dvc.yaml, the results tables from docs/results/, all without TensorFlow. The
build itself (`python3 run.py docs`, mkdocs build --strict) runs in CI."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from types import ModuleType
from typing import Annotated, Literal

import pytest
import yaml
from pydantic import BaseModel, Field

from breakhis.pipeline.params import Params
from tests.conftest import PROJECT_ROOT, command_modules, module_from_file

DOCS = PROJECT_ROOT / "docs"
RESULTS = DOCS / "results"


def load_hooks() -> ModuleType:
    return module_from_file(DOCS / "hooks.py", "docs_hooks")


hooks = load_hooks()


def leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += leaf_keys(annotation, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def table_keys(markdown: str) -> list[str]:
    return re.findall(r"^\| `([\w.]+)` \|", markdown, flags=re.MULTILINE)


def test_the_params_reference_has_every_key_of_the_schema_once() -> None:
    page = hooks.params_reference()
    assert table_keys(page) == leaf_keys(Params)
    for section in ("data", "data.synthetic", "train", "models.custom", "evaluate"):
        assert f"`{section}`" in page


def test_the_params_reference_does_not_import_tensorflow() -> None:
    check = (
        "import importlib.util, sys; "
        "spec = importlib.util.spec_from_file_location('h', 'docs/hooks.py'); "
        "h = importlib.util.module_from_spec(spec); spec.loader.exec_module(h); "
        "h.params_reference(); h.dvc_outputs(); h.default_run(); "
        "print([m for m in ('tensorflow', 'keras') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", check], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


class Inner(BaseModel):
    """Inner section."""

    ratio: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    size: tuple[Annotated[int, Field(ge=32)], Annotated[int, Field(ge=32)]] | None = None


class Outer(BaseModel):
    seed: Annotated[int, Field(ge=0, description="the seed")] = 1
    mode: Literal["a", "b"] = Field("a", description="pick | one")
    threshold: Annotated[float, Field(gt=0.0, lt=1.0)] | Literal["youden"] = 0.5
    items: list[Literal[1, 2]] = Field(default=[1], min_length=1)
    cache: bool | Literal["auto"] = "auto"
    inner: Inner = Inner()


def test_a_schema_renders_types_bounds_defaults_and_descriptions_even_when_missing() -> None:
    page = hooks.schema_reference(Outer, {})
    rows = {key: line for line in page.splitlines() for key in table_keys(line)}
    assert rows["seed"] == "| `seed` | int ≥ 0 | `1` | the seed |"
    assert rows["mode"] == "| `mode` | `a` or `b` | `a` | pick \\| one |"  # a pipe cannot break the table
    assert "0 < float < 1 or `youden`" in rows["threshold"]
    assert "list of (`1` or `2`), at least 1" in rows["items"]
    assert "bool or `auto`" in rows["cache"]
    assert rows["inner.ratio"] == "| `inner.ratio` | 0 < float ≤ 1 | `0.5` |  |"  # no description yet
    assert "[int ≥ 32, int ≥ 32] or null" in rows["inner.size"]
    assert "## `inner`\n\nInner section." in page
    assert "!!! note" not in page


def test_a_committed_value_other_than_the_default_is_shown() -> None:
    page = hooks.schema_reference(Outer, {"seed": 7, "inner": {"ratio": 0.5}})
    assert "`1` (params.yaml: `7`)" in page
    assert '!!! note "1 key(s) set differently in params.yaml"' in page


def test_placeholders_are_whole_lines_and_unknown_ones_fail() -> None:
    text = "runs `${{ toJSON(matrix) }}` inline\n{{ no_such_thing() }}\n"
    with pytest.raises(hooks.DocsError, match="unknown placeholder no_such_thing"):
        hooks.expand(text)
    inline = "keep `{{ results_table('x.csv') }}` inline"
    assert hooks.expand(inline) == inline


def test_every_page_placeholder_can_be_filled() -> None:
    for page in DOCS.rglob("*.md"):
        hooks.expand(page.read_text(), page.relative_to(DOCS).as_posix())


def used_results() -> set[str]:
    pattern = re.compile(r"^\{\{ results_table\(\"([^\"]+)\"\) \}\}$", re.MULTILINE)
    return {name for page in DOCS.rglob("*.md") for name in pattern.findall(page.read_text())}


def test_every_result_file_is_shown_and_says_where_it_comes_from() -> None:
    files = {path.name for path in RESULTS.glob("*.csv")}
    assert files == used_results()
    for name in files:
        meta = yaml.safe_load((RESULTS / name).with_suffix(".yml").read_text())
        assert meta.get("recorded"), f"{name}: say when (and where) the numbers were recorded"
        with (RESULTS / name).open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        rendered = hooks.results_table(name, page_path="explanation/results.md")
        assert rendered.count("\n| ") == len(rows) + 1  # the rule and one line per row
        assert f"(../results/{name})" in rendered


def test_a_column_template_falls_back_and_formats_numbers() -> None:
    row = {"mean": "0.451", "std": "", "n": "7909"}
    assert hooks.format_cell(["{mean} ± {std}", "{mean}"], row) == "0.451"
    assert hooks.format_cell("{n:,}", row) == "7,909"
    with pytest.raises(hooks.DocsError, match="not columns"):
        hooks.format_cell("{missing}", row)


def test_the_outputs_page_lists_every_stage_of_dvc_yaml() -> None:
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    page = hooks.dvc_outputs()
    for name, stage in stages.items():
        assert f"| `{name}` | `{stage['cmd']}` |" in page


def test_the_default_run_is_read_from_the_committed_metrics() -> None:
    page = hooks.default_run()
    for name in ("custom CNN", "VGG19", "ResNet50", "ensemble (soft vote)", "colour baseline"):
        assert f"| {name} |" in page
    assert "Test split: " in page and "metrics/evaluate.json" in page


def test_the_commands_page_names_every_command() -> None:
    page = (DOCS / "reference" / "commands.md").read_text()
    modules = command_modules()
    assert modules
    missing = [m for m in modules if f"python -m {m}" not in page]
    assert not missing, f"docs/reference/commands.md does not mention {missing}"
    run_py = (PROJECT_ROOT / "run.py").read_text()
    commands = set(re.findall(r"^python3 run\.py (\w+)", run_py, flags=re.MULTILINE))
    assert commands
    assert not [c for c in commands if f"python3 run.py {c}" not in page]


def test_a_metric_placeholder_is_one_committed_value_within_a_line() -> None:
    metrics = json.loads((PROJECT_ROOT / "metrics" / "evaluate.json").read_text())
    line = 'VGG19 {{ metric("vgg19.image.roc_auc") }}, '
    line += '{{ metric("roc_auc.custom", "metrics/headline.json", 2) }}.'
    vgg19, custom = metrics["vgg19"]["image"]["roc_auc"], metrics["custom"]["image"]["roc_auc"]
    expected = f"VGG19 {vgg19:.3f}, {custom:.2f}."
    assert hooks.expand(line) == expected
    with pytest.raises(hooks.DocsError, match=r"metrics/evaluate.json has no key 'vgg19.image.nope'"):
        hooks.expand('{{ metric("vgg19.image.nope") }}')
    with pytest.raises(hooks.DocsError, match="not a number"):
        hooks.expand('{{ metric("vgg19.image") }}')
