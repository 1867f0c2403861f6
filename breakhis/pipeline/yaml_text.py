"""Reading the project's YAML (params.yaml, profiles, `-S key=value` values): the one loader.

PyYAML's safe loader, with three rules of its own:
- a key given twice in one mapping is refused (PyYAML keeps the last one silently: `epochs: 5`
  then `epochs: 50` would train 50 epochs without a word); a key that overrides one brought in by a
  merge key (`<<: *defaults`) is YAML's own override, and allowed;
- aliases may not expand the document beyond MAX_VALUES values, nor refer to themselves. PyYAML
  shares an aliased node instead of copying it, so an alias bomb ("billion laughs": nine levels of
  nine-fold aliases, a few hundred bytes) loads in a millisecond, but every reader that walks it (a
  schema check, a JSON dump, DVC's own params reader, which copies) expands it to 9^9 values and
  exhausts memory. The size is counted on the node graph, each node once, before anything is built;
- a file that is empty (or only comments), not UTF-8, or unreadable is named with what is wrong.

`run.py` reads params.yaml with this loader before it calls DVC (`python -m
breakhis.pipeline.yaml_text params.yaml`), so DVC never reads a file the stages would refuse.

Writing YAML for people (params.yaml, the docs' params reference, a profile's `-S` values, the
model card, cross-validation's recommended.yaml): `yaml_value` and `yaml_lines`, the one renderer,
so a value reads the same everywhere.
"""

from __future__ import annotations

import math
import numbers
import re
import sys
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from breakhis.pipeline.cli import command_parser

MAX_VALUES = 100_000  # after alias expansion; params.yaml holds about 120
MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(ValueError):
    """A YAML text the project refuses; the message names its source."""


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (merge keys allowed)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:  # `<<: *anchor`: its keys may be overridden here
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key '{key}' (first on line {seen[key] + 1}): which value is meant?",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def expanded_size(root: yaml.Node) -> int:
    """How many values the document holds once every alias is expanded (each node counted once per
    reference, computed once per node); YamlError for an alias that refers to itself."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise YamlError(f"an alias refers to its own anchor (line {node.start_mark.line + 1})")
        open_nodes.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [item for pair in node.value for item in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        total = 1 + sum(size(child) for child in children)
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def parse_yaml(text: str, source: str | Path) -> Any:
    """The value of a YAML text (None for an empty one); YamlError naming `source` when it is not
    valid YAML, repeats a key, or expands beyond MAX_VALUES values."""
    loader = UniqueKeyLoader(text)
    loader.name = str(source)  # marks say `in "params.yaml", line 3`
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        values = expanded_size(root)
        if values > MAX_VALUES:
            raise YamlError(
                f"its aliases expand it to {values:,} values (at most {MAX_VALUES:,}: an alias bomb?); "
                "write the values out, or use fewer aliases"
            )
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise YamlError(f"{source}: not valid YAML: {exc}") from None
    except YamlError as exc:  # expanded_size's and the bound's, which do not know the source
        raise YamlError(f"{source}: {exc}") from None
    finally:
        loader.dispose()


def read_yaml(path: Path) -> Any:
    """A YAML file's value, read as `parse_yaml` reads text; YamlError naming the file when it is
    missing, unreadable, not UTF-8, empty (or only comments) or refused by `parse_yaml`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise YamlError(f"{path}: not found") from None
    except OSError as exc:
        raise YamlError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8"
        ) from None
    value = parse_yaml(text, path)
    if value is None:
        raise YamlError(f"{path}: empty (no keys); restore it (`git checkout {path}`)")
    return value


def _float_text(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)  # the shortest text that reads back as this float
    if "e" in text:  # PyYAML (YAML 1.1) reads 1e-05 as a string: the same digits, without an exponent
        text = format(Decimal(text), "f")
    return text if "." in text else f"{text}.0"


# what YAML 1.2 (ruamel, which DVC reads params.yaml with) takes for a number: such a string is quoted
YAML_12_NUMBER = re.compile(
    r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|0o[0-7]+|0x[0-9a-fA-F]+"
    r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)


def _string_text(text: str) -> str:
    if YAML_12_NUMBER.fullmatch(text):
        return f"'{text}'"
    # quoted as an item of a flow sequence, so `,`, `[`, `]`, `{`, `}` inside are quoted too; double
    # quotes (escapes) for control characters, so a newline stays on the one line
    style = '"' if any(ord(c) < 32 or c == "\x7f" for c in text) else None
    dumped = yaml.safe_dump(
        [text], default_flow_style=True, default_style=style, width=math.inf, allow_unicode=True
    )
    return dumped.strip()[1:-1]


def yaml_value(value: Any) -> str:
    """`value` as one line of flow-style YAML, read back (by `parse_yaml`, and by DVC) as the same
    value: null, true/false, `0.00001` (a float always with a point and never an exponent), a string
    plain or quoted as both YAML 1.1 and 1.2 need (also inside `[...]`), `[a, b]`, `{key: value}`;
    NumPy's numbers as Python's."""
    if value is None:
        return "null"
    if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", None) == "b":  # NumPy's too
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return _float_text(float(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yaml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{yaml_value(k)}: {yaml_value(v)}" for k, v in value.items()) + "}"
    return _string_text(str(value))


def yaml_lines(mapping: Mapping[str, Any], indent: str = "") -> list[str]:
    """A mapping as block-style YAML lines: a non-empty mapping nests, every other value is
    `yaml_value` on its key's line."""
    lines = []
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            lines += [f"{indent}{yaml_value(key)}:", *yaml_lines(value, indent + "  ")]
        else:
            lines.append(f"{indent}{yaml_value(key)}: {yaml_value(value)}")
    return lines


def main(argv: list[str]) -> int:
    """Check YAML files as the stages read them (run.py calls this before DVC reads params.yaml)."""
    parser = command_parser("breakhis.pipeline.yaml_text", __doc__)
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="the YAML files to check")
    for path in parser.parse_args(argv).files:
        try:
            read_yaml(path)
        except YamlError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
