"""MkDocs hooks: the pages that are generated from the project's own files, never copied by hand.

A line holding only a placeholder is replaced, when the page is built, by what it names:

    {{ params_reference() }}             every key of params.yaml, from the schema
                                         (breakhis/pipeline/params.py, train_params.py)
    {{ dvc_outputs() }}                  every output of every stage, from dvc.yaml
    {{ default_run() }}                  the default run's headline metrics, from metrics/evaluate.json
    {{ results_table("name.csv") }}      a measured-results table, from docs/results/name.csv

and, anywhere in a line, a single number of the committed run:

    {{ metric("ensemble.image.roc_auc") }}                        0.746, from metrics/evaluate.json
    {{ metric("roc_auc.vgg19", "metrics/headline.json", 2) }}     a dotted key of another JSON, 2 decimals

A results table's CSV may have a sidecar `name.yml` saying how the columns are shown and where the
numbers come from (the command, and when they were recorded); CONTRIBUTING.md describes it. An
unknown placeholder or a missing file fails the build. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import ast
import csv
import json
import posixpath
import re
import string
import subprocess
import sys
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

ROOT = Path(__file__).resolve().parent.parent  # the project root: mkdocs.yml, params.yaml, dvc.yaml
DOCS = ROOT / "docs"
RESULTS = DOCS / "results"
if str(ROOT) not in sys.path:  # `breakhis` without relying on the editable install
    sys.path.insert(0, str(ROOT))

PLACEHOLDER = re.compile(r"^[ \t]*\{\{\s*(\w+)\((.*)\)\s*\}\}[ \t]*$", re.MULTILINE)
INLINE = re.compile(r"\{\{\s*(metric)\((.*?)\)\s*\}\}")  # the placeholders allowed within a line


class DocsError(Exception):
    """A placeholder that cannot be filled; the build stops with this message."""


# ---------------------------------------------------------------------------------------------
# MkDocs entry point and the placeholder expansion


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    try:
        return expand(markdown, page.file.src_uri)
    except DocsError as error:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"docs/{page.file.src_uri}: {error}") from None


def expand(markdown: str, page_path: str = "index.md") -> str:
    """Replace every placeholder line of a page (`page_path` relative to docs/, for links)."""

    def replace(match: re.Match[str]) -> str:
        name, arguments = match.group(1), match.group(2).strip()
        if name not in MACROS:
            raise DocsError(f"unknown placeholder {name}(); known: {', '.join(sorted(MACROS))}")
        try:
            args = ast.literal_eval(f"({arguments},)") if arguments else ()
        except (ValueError, SyntaxError) as exc:
            raise DocsError(f"{match.group(0).strip()}: arguments must be literals ({exc})") from None
        return MACROS[name](*args, page_path=page_path)

    return INLINE.sub(replace, PLACEHOLDER.sub(replace, markdown))


def cell(text: object) -> str:
    """A value as a markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(header: list[str], rows: Iterable[list[str]], align: list[str] | None = None) -> str:
    align = [*(align or []), *["left"] * len(header)][: len(header)]
    rule = ["---:" if a == "right" else "---" for a in align]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(cell(c) for c in line) + " |" for line in lines)


def link_from(page_path: str, target: str) -> str:
    """A relative link from a page to another file under docs/ (both relative to docs/)."""
    return posixpath.relpath(target, posixpath.dirname(page_path) or ".")


def last_commit(path: Path) -> str:
    """`<short hash>, <date>` of the last commit touching `path`, or "" outside a git clone."""
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%h, %ad", "--date=short", "--", str(path.relative_to(ROOT))],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


# ---------------------------------------------------------------------------------------------
# params reference, from the pydantic schema

BOUNDS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}  # x > 0, x ≤ 1
LEFT_BOUNDS = {"gt": "<", "ge": "≤"}  # 0 < x


def is_section(annotation: object) -> bool:
    from pydantic import BaseModel

    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def constraints(metadata: Iterable[object]) -> dict[str, Any]:
    """Bounds and lengths from annotated-types / pydantic Field metadata."""
    found: dict[str, Any] = {}
    for item in metadata:
        nested = getattr(item, "metadata", None)  # a FieldInfo inside Annotated[...]
        if isinstance(nested, list):
            found.update(constraints(nested))
            continue
        for attribute in ("gt", "ge", "lt", "le", "min_length", "max_length"):
            value = getattr(item, attribute, None)
            if value is not None:
                found[attribute] = value
    return found


def number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def bounded(name: str, found: dict[str, Any]) -> str:
    lower = next(((op, found[op]) for op in ("gt", "ge") if op in found), None)
    upper = next(((op, found[op]) for op in ("lt", "le") if op in found), None)
    if lower and upper:
        return f"{number(lower[1])} {LEFT_BOUNDS[lower[0]]} {name} {BOUNDS[upper[0]]} {number(upper[1])}"
    if lower or upper:
        op, value = lower or upper
        return f"{name} {BOUNDS[op]} {number(value)}"
    return name


def alternatives(annotation: object, metadata: Iterable[object] = ()) -> list[str]:
    """The allowed values of an annotation, as a list of alternatives (joined with "or")."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is typing.Annotated:
        return alternatives(args[0], [*metadata, *args[1:]])
    if origin is typing.Union or origin is types.UnionType:
        return [alt for arg in args for alt in alternatives(arg, metadata)]
    if origin is Literal:
        return [f"`{json.dumps(arg) if isinstance(arg, bool) else arg}`" for arg in args]
    if annotation is type(None):
        return ["null"]
    found = constraints(metadata)
    if origin is tuple:
        return ["[" + ", ".join(" or ".join(alternatives(arg)) for arg in args) + "]"]
    if origin is list:
        items = join_alternatives(alternatives(args[0])) if args else "any"
        lengths = found.get("min_length"), found.get("max_length")
        if lengths[0] is not None and lengths[0] == lengths[1]:
            size = f", exactly {lengths[0]}"
        elif lengths[0] is not None and lengths[1] is not None:
            size = f", {lengths[0]} to {lengths[1]}"
        elif lengths[0] is not None:
            size = f", at least {lengths[0]}"
        elif lengths[1] is not None:
            size = f", at most {lengths[1]}"
        else:
            size = ""
        return [f"list of ({items}){size}"]
    name = {bool: "bool", int: "int", float: "float", str: "string"}.get(annotation, str(annotation))
    return [bounded(name, found)]


def join_alternatives(items: list[str]) -> str:
    unique = list(dict.fromkeys(items))
    return unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " or " + unique[-1]


def committed_value(params_yaml: dict[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = params_yaml
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def same(a: object, b: object) -> bool:
    def plain(v: object) -> object:
        return [plain(x) for x in v] if isinstance(v, list | tuple) else v

    return plain(a) == plain(b)


def section_text(model: type, field: Any) -> str:
    """A section's introduction: its field's description in the parent, then its own docstring."""
    own = model.__dict__.get("__doc__") or ""
    parts = [getattr(field, "description", None) or "", " ".join(own.split())]
    return "\n\n".join(part for part in parts if part)


def params_reference(*, page_path: str = "") -> str:
    """The reference of params.yaml: its schema (`Params`), compared with the committed values."""
    from breakhis.pipeline.params import Params

    params_file = ROOT / "params.yaml"
    committed = yaml.safe_load(params_file.read_text()) if params_file.is_file() else {}
    return schema_reference(Params, committed if isinstance(committed, dict) else {})


def schema_reference(schema: type, committed: dict[str, Any], heading: int = 2) -> str:
    """One table per section of a pydantic schema (nested models are sections, keys dotted): key,
    allowed values, default, description. A default that `committed` sets otherwise is noted."""
    from breakhis.pipeline.yaml_text import yaml_value  # as params.yaml writes it

    blocks: list[str] = []
    differences: list[str] = []

    def walk(model: type, prefix: str, level: int, title: str, intro: str) -> None:
        rows, sections = [], []
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            if is_section(field.annotation):
                sections.append((field.annotation, key, field))
                continue
            default = field.get_default(call_default_factory=True)
            shown = f"`{yaml_value(default)}`"
            found, value = committed_value(committed, key)
            if found and not same(value, default):
                shown += f" (params.yaml: `{yaml_value(value)}`)"
                differences.append(key)
            allowed = join_alternatives(alternatives(field.annotation, field.metadata))
            rows.append([f"`{key}`", allowed, shown, field.description or ""])
        if rows or intro:
            blocks.append(f"{'#' * level} {title}")
            if intro:
                blocks.append(intro)
            if rows:
                blocks.append(table(["key", "type / allowed values", "default", "description"], rows))
        for sub_model, key, field in sections:
            sub_level = min(level + (1 if prefix else 0), 6)
            walk(sub_model, f"{key}.", sub_level, f"`{key}`", section_text(sub_model, field))

    walk(schema, "", heading, "Top level", "")
    if differences:
        blocks.insert(
            0,
            f'!!! note "{len(differences)} key(s) set differently in params.yaml"\n'
            "    The default column is the schema's default; where params.yaml sets another value, "
            "the committed value follows in brackets: " + ", ".join(f"`{key}`" for key in differences),
        )
    return "\n\n".join(blocks)


# ---------------------------------------------------------------------------------------------
# outputs, from dvc.yaml


def dvc_outputs(*, page_path: str = "") -> str:
    """Every stage's command and outputs, and the declared model artifacts, from dvc.yaml."""
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())

    def entries(items: list[Any] | None, kind: str) -> list[str]:
        shown = []
        for item in items or []:
            path, options = next(iter(item.items())) if isinstance(item, dict) else (item, None)
            where = "git" if (options or {}).get("cache") is False else "DVC cache"
            shown.append(f"`{path}` ({kind}, {where})")
        return shown

    rows = []
    for name, stage in pipeline.get("stages", {}).items():
        writes = [
            *entries(stage.get("outs"), "output"),
            *entries(stage.get("metrics"), "metrics"),
            *entries(stage.get("plots"), "plots"),
        ]
        rows.append([f"`{name}`", f"`{stage.get('cmd', '')}`", "<br>".join(writes)])
    blocks = [table(["stage", "command", "writes (kind, stored in)"], rows)]
    artifacts = pipeline.get("artifacts") or {}
    if artifacts:
        blocks.append("Model artifacts declared in `dvc.yaml` (for `dvc artifacts get` and version tags):")
        blocks.append(
            table(
                ["artifact", "path", "description"],
                [[f"`{n}`", f"`{a.get('path', '')}`", a.get("desc", "")] for n, a in artifacts.items()],
            )
        )
    return "\n\n".join(blocks)


# ---------------------------------------------------------------------------------------------
# the default run, from metrics/evaluate.json

MODEL_NAMES = {
    "custom": "custom CNN",
    "vgg19": "VGG19",
    "resnet50": "ResNet50",
    "ensemble": "ensemble (soft vote)",
    "colour_baseline": "colour baseline",
}


def fmt(value: object, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else ""


def with_interval(value: object, interval: dict[str, Any] | None) -> str:
    text = fmt(value)
    if text and interval and "low" in interval and "high" in interval:
        text += f" ({fmt(interval['low'], 2)}-{fmt(interval['high'], 2)})"
    return text


def default_run(path: str = "metrics/evaluate.json", *, page_path: str = "") -> str:
    """Headline, per-magnification and colour-baseline tables of the committed evaluation."""
    source = ROOT / path
    if not source.is_file():
        raise DocsError(f"{path} not found (it is committed with every run's metrics)")
    from breakhis.evaluation.decision import stored_threshold

    metrics = json.loads(source.read_text())
    scored = {name: entry for name, entry in metrics.items() if isinstance(entry, dict) and "image" in entry}
    if not scored:
        raise DocsError(f"{path}: no scored model (an entry with an `image` section)")

    header = [
        "model",
        "threshold",
        "accuracy",
        "balanced accuracy",
        "ROC AUC",
        "patient recognition rate",
        "patient accuracy",
        "ECE",
    ]
    rows = []
    for name, entry in scored.items():
        image, patient, ci = entry.get("image", {}), entry.get("patient", {}), entry.get("ci", {})
        threshold = stored_threshold(metrics, name)  # the one reader of a run's stored thresholds
        rows.append(
            [
                MODEL_NAMES.get(name, name),
                fmt(threshold, 2),
                with_interval(image.get("accuracy"), ci.get("image_accuracy")),
                fmt(image.get("balanced_accuracy")),
                with_interval(image.get("roc_auc"), ci.get("roc_auc")),
                with_interval(patient.get("recognition_rate"), ci.get("patient_recognition_rate")),
                fmt(patient.get("accuracy")),
                fmt(entry.get("calibration", {}).get("ece")),
            ]
        )
    majority = metrics.get("majority_baseline")
    if isinstance(majority, dict):
        rows.append(
            [
                f"majority class of train ({majority.get('class', '?')})",
                "",
                fmt(majority.get("image_accuracy")),
                "0.500",  # one class for every image: balanced accuracy is 0.5 by definition
                "",
                "",
                fmt(majority.get("patient_accuracy")),
                "",
            ]
        )
    patients = next((e.get("patient", {}).get("patients") for e in scored.values()), None)
    commit = last_commit(source)
    blocks = [
        f"Test split: {metrics.get('test_images', '?')} images"
        + (f" of {patients} patients" if patients else "")
        + f". Generated from `{path}`"
        + (f" (last committed in {commit})" if commit else "")
        + ". In brackets: 95% bootstrap intervals resampling test patient groups.",
        table(header, rows, ["left", "right", "left", "right", "left", "left", "right", "right"]),
    ]

    versus = []
    for name, entry in scored.items():
        against = entry.get("vs_colour_baseline")
        if isinstance(against, dict) and {"auc_difference", "low", "high"} <= set(against):
            difference, low, high = against["auc_difference"], against["low"], against["high"]
            interval = f"{low:+.2f} to {high:+.2f}"
            versus.append(
                [MODEL_NAMES.get(name, name), f"{difference:+.3f}", interval, against.get("verdict", "")]
            )
    if versus:
        blocks += [
            "**Against the colour baseline**: the paired ROC AUC difference on the same test images, "
            "with its interval resampling patient groups.",
            table(["model", "AUC - colour baseline AUC", "interval", "verdict"], versus, ["left", "right"]),
        ]

    per_magnification = {name: entry.get("by_magnification") or {} for name, entry in scored.items()}
    magnifications = sorted(
        {m for by_mag in per_magnification.values() for m in by_mag},
        key=lambda m: int(re.sub(r"\D", "", m) or 0),
    )
    if magnifications:
        by_mag_rows = [
            [MODEL_NAMES.get(name, name), *(fmt(by_mag.get(m, {}).get("roc_auc")) for m in magnifications)]
            for name, by_mag in per_magnification.items()
        ]
        blocks += [
            "**ROC AUC per magnification** (test images of that magnification only):",
            table(["model", *magnifications], by_mag_rows, ["left", *["right"] * len(magnifications)]),
        ]
    return "\n\n".join(blocks)


def metric(key: str, path: str = "metrics/evaluate.json", digits: int = 3, *, page_path: str = "") -> str:
    """One value of a committed metrics file, by its dotted key (as `dvc metrics show` names it)."""
    source = ROOT / path
    if not source.is_file():
        raise DocsError(f"metric({key!r}): {path} not found")
    node: Any = json.loads(source.read_text())
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise DocsError(f"metric({key!r}): {path} has no key {key!r}")
        node = node[part]
    if not fmt(node, digits):
        raise DocsError(f"metric({key!r}): {path} holds {node!r} there, not a number")
    return fmt(node, digits)


# ---------------------------------------------------------------------------------------------
# measured-results tables, from docs/results/*.csv


def format_cell(template: str | list[str], row: dict[str, str]) -> str:
    """The first template whose fields are all filled in this row; "" if none.

    Fields with a format spec (`{x:.3f}`, `{n:,}`) are converted to numbers first; the others are
    shown exactly as written in the CSV."""
    for option in [template] if isinstance(template, str) else template:
        fields = [(f, spec) for _, f, spec, _ in string.Formatter().parse(option) if f is not None]
        missing = [f for f, _ in fields if f not in row]
        if missing:
            raise DocsError(f"column template {option!r} names {missing}, not columns of the CSV")
        if any(not row[f].strip() for f, _ in fields):
            continue
        values: dict[str, Any] = {}
        for f, spec in fields:
            raw = row[f].strip()
            if spec:
                try:
                    values[f] = int(raw) if re.fullmatch(r"[+-]?\d+", raw) else float(raw)
                except ValueError:
                    raise DocsError(f"{f}={raw!r} is not a number (template {option!r})") from None
            else:
                values[f] = raw
        return option.format(**values)
    return ""


def emphasised(rule: str | dict[str, list[str]] | None, row: dict[str, str]) -> bool:
    """`bold_when: best` (that column is true in this row) or `bold_when: {verdict: [better, worse]}`."""
    if isinstance(rule, str):
        return row.get(rule, "").strip().lower() in {"1", "true", "yes"}
    if isinstance(rule, dict):
        return any(row.get(column, "").strip() in values for column, values in rule.items())
    return False


def results_table(name: str, *, page_path: str = "results.md") -> str:
    """A table from docs/results/<name> (CSV), shown as its sidecar <stem>.yml says."""
    source = RESULTS / name
    if not source.is_file():
        raise DocsError(f"docs/results/{name} not found")
    with source.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        fieldnames = list(reader.fieldnames or [])
    sidecar = source.with_suffix(".yml")
    meta = yaml.safe_load(sidecar.read_text()) if sidecar.is_file() else {}
    meta = meta or {}
    columns = meta.get("columns") or [{"header": f, "format": f"{{{f}}}"} for f in fieldnames]

    header, align, body = [], [], []
    for column in columns:
        header.append(column["header"])
        align.append(column.get("align", "left"))
    for row in rows:
        cells = []
        for column in columns:
            text = format_cell(column.get("format", f"{{{column['header']}}}"), row)
            if text and emphasised(column.get("bold_when"), row):
                text = f"**{text}**"
            cells.append(text)
        body.append(cells)

    blocks = [table(header, body, align)]
    provenance = [f"Data: [`docs/results/{name}`]({link_from(page_path, f'results/{name}')})"]
    if meta.get("recorded"):
        provenance.append(f"recorded: {' '.join(str(meta['recorded']).split())}")
    blocks.append("<small>" + "; ".join(provenance) + ".</small>")
    if meta.get("command"):
        command = "\n".join(f"    {line}" for line in str(meta["command"]).strip().splitlines())
        blocks.append(f'??? info "Command"\n\n    ```bash\n{command}\n    ```')
    return "\n\n".join(blocks)


MACROS: dict[str, Callable[..., str]] = {
    "params_reference": params_reference,
    "dvc_outputs": dvc_outputs,
    "default_run": default_run,
    "results_table": results_table,
    "metric": metric,
}
