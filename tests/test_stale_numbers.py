"""No stale number: a measured figure quoted in the docs' prose (README.md, docs/**/*.md) is found
in the source its section names, so a re-measured source with an unchanged page fails here.

A measured figure is a decimal with two or more decimals (`0.650`, `1.78 GiB`) or a duration
(`23 min`, `49 s`, `about 23 minutes`). Not checked: code (fenced or inline), placeholders
(generated when the site is built), bounds (`>= 0.85`, a target, not a measurement), versions
(`Python 3.11`) and link targets. A section (from one heading to the next) names its sources by
the tables it shows (`{{ results_table("x.csv") }}`: docs/results/x.csv and its x.yml; `{{ default_run() }}`:
metrics/evaluate.json) and by `<!-- source: path ... -->` comments (paths from the project root);
CONTRIBUTING.md describes the convention. A figure is found in a CSV, YAML or text source when the
same number is written there; in a JSON source when a value rounds to it.

tests/unsourced_figures.yml is the backlog: figures quoted before this check whose source is not
committed yet. It may only shrink: a new unsourced figure fails, and so does a backlog entry the page
no longer needs.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

BACKLOG = PROJECT_ROOT / "tests" / "unsourced_figures.yml"
PAGES = sorted([PROJECT_ROOT / "README.md", *(PROJECT_ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^( {0,8})(```|~~~).*?^\1\2[^\n]*$", re.MULTILINE | re.DOTALL)
SOURCE = re.compile(r"<!--\s*source:\s*(.*?)\s*-->", re.DOTALL)
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
TABLE_MACRO = re.compile(r"\{\{\s*results_table\(\s*[\"']([^\"']+)[\"']\s*\)\s*\}\}")
DEFAULT_RUN = re.compile(r"\{\{\s*default_run\(")
MACRO = re.compile(r"\{\{.*?\}\}")
CODE = re.compile(r"(`+).+?\1")
LINK_TARGET = re.compile(r"\]\([^)]*\)")
HEADING = re.compile(r"^#{1,6} ", re.MULTILINE)
DECIMAL = r"\d+\.\d{2,}"
DURATION = r"\d+(?:\.\d+)?(?= ?(?:min|minutes|s|ms|seconds|hours?|h)\b)"
BOUND = r"(?<![<>=≤≥] )(?<![<>=≤≥])"  # `>= 0.85`: a target, not a measurement
VERSION = r"(?<!Python )"  # `Python 3.11`
FIGURE = re.compile(rf"(?<![\w.]){BOUND}{VERSION}({DECIMAL}|{DURATION})(?![\w.]\d)")


@dataclass(frozen=True)
class Quote:
    page: str
    line: int
    figure: str
    sources: tuple[str, ...]
    context: str

    def __str__(self) -> str:
        where = ", ".join(self.sources) if self.sources else "no source named in its section"
        return f"{self.page}:{self.line}: {self.figure} not found in {where} ({self.context.strip()[:90]})"


def sections(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each part of a page between headings."""
    starts = [0, *(m.start() for m in HEADING.finditer(text)), len(text)]
    for start, end in zip(starts, starts[1:], strict=False):
        if end > start:
            yield text.count("\n", 0, start) + 1, text[start:end]


def blank(match: re.Match[str]) -> str:
    """What a match is replaced by: its newlines only, so line numbers hold."""
    return "\n" * match.group(0).count("\n")


def section_sources(section: str) -> tuple[str, ...]:
    named = [f"docs/results/{name}" for name in TABLE_MACRO.findall(section)]
    named += [f"docs/results/{Path(name).with_suffix('.yml')}" for name in TABLE_MACRO.findall(section)]
    if DEFAULT_RUN.search(section):
        named.append("metrics/evaluate.json")
    for comment in SOURCE.findall(section):
        named += comment.split()
    return tuple(dict.fromkeys(named))


def prose(section: str) -> str:
    for pattern in (COMMENT, MACRO, CODE, LINK_TARGET):
        section = pattern.sub(blank, section)
    return section


def quotes(page: Path) -> Iterator[Quote]:
    """Every measured figure of a page's prose, with the sources its section names."""
    name = page.relative_to(PROJECT_ROOT).as_posix()
    for first, section in sections(FENCE.sub(blank, page.read_text())):  # a `# comment` in code is no heading
        sources, text = section_sources(section), prose(section)
        for match in FIGURE.finditer(text):
            line = first + text.count("\n", 0, match.start())
            context = text.splitlines()[line - first]
            yield Quote(name, line, match.group(1), sources, context)


def json_numbers(data: object) -> Iterator[float]:
    if isinstance(data, dict):
        for value in data.values():
            yield from json_numbers(value)
    elif isinstance(data, list):
        for value in data:
            yield from json_numbers(value)
    elif isinstance(data, int | float) and not isinstance(data, bool):
        yield float(data)


def found_in(figure: str, source: str) -> bool:
    """Whether `figure` is written in `source` (a path from the project root)."""
    path = PROJECT_ROOT / source
    if not path.is_file():
        raise AssertionError(f"{source}: named as a source but not found")
    text = path.read_text()
    if path.suffix == ".json":
        digits = len(figure.partition(".")[2])
        return any(f"{value:.{digits}f}" == figure for value in json_numbers(json.loads(text)))
    return re.search(rf"(?<![\w.]){re.escape(figure)}(?![\w]|\.\d)", text) is not None


def backlog() -> dict[str, list[str]]:
    """The figures quoted before this check existed whose source is not yet committed, per page."""
    return yaml.safe_load(BACKLOG.read_text()) or {}


def stale(page: Path) -> list[Quote]:
    return [quote for quote in quotes(page) if not any(found_in(quote.figure, s) for s in quote.sources)]


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(PROJECT_ROOT).as_posix() for p in PAGES])
def test_every_measured_figure_is_found_in_the_source_its_section_names(page: Path) -> None:
    name = page.relative_to(PROJECT_ROOT).as_posix()
    found = stale(page)
    waiting = Counter(str(figure) for figure in backlog().get(name, []))
    new = []
    for quote in found:
        if waiting[quote.figure] > 0:
            waiting[quote.figure] -= 1
        else:
            new.append(quote)
    listing = "\n".join(map(str, new))
    assert not new, f"{len(new)} figure(s) not found where they say they come from:\n{listing}"
    sourced = Counter(str(f) for f in backlog().get(name, [])) - Counter(q.figure for q in found)
    assert not sourced, f"{BACKLOG.name}: {name} no longer quotes {sorted(sourced.elements())} unsourced"


def test_the_backlog_names_pages_that_exist() -> None:
    assert not [name for name in backlog() if not (PROJECT_ROOT / name).is_file()]
