"""params.yaml, the file: read and validated (`load_params`: the schema of breakhis.pipeline.params,
then this machine: breakhis.pipeline.machine), or written from the schema's defaults
(`python -m breakhis.pipeline.params_file`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from breakhis.pipeline.machine import machine_problems
from breakhis.pipeline.params import Params, ParamsError
from breakhis.pipeline.paths import PARAMS_FILE
from breakhis.pipeline.yaml_text import YamlError, read_yaml, yaml_value


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml; raise ParamsError naming the file and each bad key."""
    return validate_params(read_params(path), path)


def read_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """params.yaml as a mapping of sections, not yet validated (the YAML rules of yaml_text applied);
    ParamsError naming the file when it cannot be read or is not a mapping."""
    try:
        raw = read_yaml(path)
    except YamlError as exc:
        hint = " (run the stage from the project root)" if not path.exists() else ""
        raise ParamsError(f"{exc}{hint}") from None
    if not isinstance(raw, dict):
        raise ParamsError(
            f"{path}: expected a mapping of sections (seed, data, ...), got {type(raw).__name__}"
        )
    return raw


def validate_params(raw: dict[str, Any], source: Path, *, machine: bool = True) -> Params:
    """Validate a params mapping, and (`machine`) that this machine can run it; raise ParamsError
    naming each bad key and `source`."""
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_describe(exc, source)) from None
    problems = machine_problems(params) if machine else []
    if problems:
        lines = [
            f"{source}: too much for this machine",
            *(f"  {key}: {problem}" for key, problem in problems),
        ]
        raise ParamsError("\n".join(lines))
    return params


def _key_of(location: tuple[int | str, ...]) -> str:
    """The dotted key of an error's location, without pydantic's tags for the members of a union
    (`evaluate.threshold`, not `evaluate.threshold.literal['youden','f1']`)."""
    parts: list[str] = []
    model: type[BaseModel] | None = Params
    for part in location:
        if isinstance(part, int):
            parts.append(str(part))
        elif model is not None:  # a key of a section, or an unknown one
            parts.append(part)
            field = model.model_fields.get(part)
            annotation = field.annotation if field else None
            model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return ".".join(parts)


def _describe(error: ValidationError, source: Path) -> str:
    lines = [f"{source}: invalid params"]
    for issue in error.errors():
        key = _key_of(issue["loc"]) or "(top level)"
        if issue["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        elif issue["type"] == "value_error" and isinstance(issue.get("input"), dict):
            # a relation between keys, checked on a whole section: the message names the keys
            lines.append(f"  {issue['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  {key}: {issue['msg']} (got {issue.get('input')!r})")
    return "\n".join(lines)


# ---- params.yaml, generated from the schema ---------------------------------------------------

COMMENT_COLUMN = 29  # where the comments of params.yaml start
LINE_LENGTH = 110


def _commented(code: str, comment: str | None, indent: str) -> list[str]:
    """`code` with `comment` after it at COMMENT_COLUMN, wrapped onto comment lines below."""
    if not comment:
        return [code]
    lines: list[str] = []
    column = max(COMMENT_COLUMN, len(code) + 2)
    words = comment.split()
    current = code.ljust(column) + "#"
    for word in words:
        if len(current) + 1 + len(word) > LINE_LENGTH and not current.endswith("#"):
            lines.append(current)
            current = " " * column + "#"
        current += " " + word
    return [*lines, current]


def _render_section(section: BaseModel, indent: str) -> list[str]:
    lines = []
    for key, field in type(section).model_fields.items():
        value = getattr(section, key)
        if isinstance(value, BaseModel):
            lines += _commented(f"{indent}{key}:", type(value).__doc__, indent)
            lines += _render_section(value, indent + "  ")
        else:
            lines += _commented(f"{indent}{key}: {yaml_value(value)}", field.description, indent)
    return lines


def render_params(params: Params | None = None) -> str:
    """params.yaml as the schema defines it: every key with its default (or `params`' value) and
    its description as a comment. The committed params.yaml is exactly this (a test checks it)."""
    params = Params() if params is None else params
    header = [
        "# Generated from the schema in breakhis/pipeline/params.py "
        "(`python -m breakhis.pipeline.params_file`):",
        "# edit the schema, not this file, to change a default or a description. Every stage reads its",
        "# own section; dvc.yaml lists exactly the keys each stage depends on.",
    ]
    body: list[str] = []
    for key, field in Params.model_fields.items():
        value = getattr(params, key)
        if isinstance(value, BaseModel):
            body += ["", *_commented(f"{key}:", type(value).__doc__, "")]
            body += _render_section(value, "  ")
        else:
            body += _commented(f"{key}: {yaml_value(value)}", field.description, "")
    return "\n".join([*header, *body]) + "\n"


if __name__ == "__main__":
    from breakhis.pipeline.cli import command_parser

    command_parser(
        "breakhis.pipeline.params_file", "Write params.yaml from the schema's defaults."
    ).parse_args()
    PARAMS_FILE.write_text(render_params())
    print(f"wrote {PARAMS_FILE} from the schema's defaults")
