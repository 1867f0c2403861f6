"""The one home of how a message lists many things (breakhis.pipeline.stage.listed): the first few,
then how many more; and no module truncating a list its own way."""

from __future__ import annotations

import re

import pytest

from breakhis.pipeline.stage import SHOWN, SHOWN_LINES, listed, listed_lines
from tests.conftest import PROJECT_ROOT

# "... and {n} more" or "..." written by hand, a limit of its own, or a silent cut at the shared one
BY_HAND = re.compile(
    r"""\.\.\. and \{|["'](, | )\.\.\.["']|^SHOWN\w* = |\[:SHOWN\w*\]|\.head\(SHOWN\w*\)""", re.MULTILINE
)


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
        "for i in frame.index[bad][:SHOWN]:",
        "lines = [row for row in rejected.head(SHOWN_LINES)]",
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


def test_a_manifest_shows_the_first_few_of_every_kind_of_problem_and_counts_them_all() -> None:
    """Eight padded file names do not hide the one contradiction, and none is dropped unsaid."""
    from breakhis.data.manifest_checks import ManifestError, check_manifest
    from tests.conftest import crafted_manifest

    manifest = crafted_manifest()
    manifest.loc[0:7, "filename"] = manifest.loc[0:7, "filename"] + " "
    manifest.loc[20, "target"] = 1 - manifest.loc[20, "target"]
    with pytest.raises(ManifestError) as error:
        check_manifest(manifest, "manifest.csv")
    lines = str(error.value).splitlines()
    assert lines[0].startswith("manifest.csv: 9 contradictions or empty keys")
    padded = [line for line in lines if "has spaces or line breaks around it" in line]
    assert len(padded) == SHOWN and lines[1 + SHOWN].strip() == f"... and {8 - SHOWN} more"
    assert any("contradicts label" in line for line in lines[2 + SHOWN :])
