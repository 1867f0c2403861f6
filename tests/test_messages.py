"""The one home of how a message lists many things (breakhis.pipeline.stage.listed): the first few,
then how many more; and no module truncating a list its own way."""

from __future__ import annotations

import re

import pytest

from breakhis.pipeline.stage import SHOWN, SHOWN_LINES, listed, listed_lines
from tests.conftest import PROJECT_ROOT

BY_HAND = re.compile(r"""\.\.\. and \{|["'](, | )\.\.\.["']|^SHOWN\w* = """, re.MULTILINE)


def test_a_short_list_is_shown_whole() -> None:
    assert listed(["a", "b"]) == "a, b"
    assert listed([]) == ""
    assert listed(list("abcde")) == "a, b, c, d, e"


def test_a_long_list_says_how_many_more() -> None:
    names = [f"f{i}" for i in range(SHOWN + 3)]
    assert listed(names) == ", ".join(names[:SHOWN]) + ", ... and 3 more"
    assert listed([1, 2, 3], 2) == "1, 2, ... and 1 more"  # numbers too


def test_lines_list_one_per_line_up_to_their_own_limit() -> None:
    problems = [f"p{i}" for i in range(SHOWN_LINES + 1)]
    assert listed_lines(problems) == "\n  ".join(problems[:SHOWN_LINES]) + "\n  ... and 1 more"
    assert listed_lines(problems[:SHOWN_LINES]).count("\n  ") == SHOWN_LINES - 1


@pytest.mark.parametrize(
    "code",
    [
        'x = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")',
        'f"... and {len(rows) - 50} more"',
        "SHOWN = 20  # problems listed",
        "names = ', '.join(held[:6]) + ' ...'",
    ],
)
def test_the_scan_finds_a_list_truncated_by_hand(code: str) -> None:
    assert BY_HAND.search(code)


def test_no_module_truncates_a_list_by_hand() -> None:
    found = []
    for folder in ("breakhis", "stages", "commands"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            name = path.relative_to(PROJECT_ROOT).as_posix()
            if name == "breakhis/pipeline/stage.py":
                continue
            found += [f"{name}: {m.group(0)}" for m in BY_HAND.finditer(path.read_text())]
    assert not found, "use breakhis.pipeline.stage.listed:\n" + "\n".join(found)
