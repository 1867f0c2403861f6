"""Markdown tables and the numbers in them, for every document the project writes
(metrics/report.md, metrics/model_card.md, comparisons and the PR comment, cross-validation and
seed-spread summaries, the runners' report): one table writer, one number formatter.

Numbers have three decimals (two for thresholds, weights and the bounds of a headline interval);
differences carry their sign; a value that is missing or undefined reads `n/a`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeGuard

MISSING = "n/a"
ALIGN = {"l": "---", "r": "---:"}  # text left, numbers right


def is_number(value: object) -> TypeGuard[float]:
    """A finite number (numpy's too), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def number(value: object, digits: int = 3, *, sign: bool = False) -> str:
    """`0.812` (`+0.012` with `sign`), or `n/a` when `value` is not a finite number."""
    return f"{value:{'+' if sign else ''}.{digits}f}" if is_number(value) else MISSING


def interval(low: object, high: object, digits: int = 2, *, sign: bool = False) -> str:
    """`0.59-0.88`; with `sign` (an interval of a difference) `-0.01 to +0.65`."""
    separator = " to " if sign else "-"
    return number(low, digits, sign=sign) + separator + number(high, digits, sign=sign)


def estimate(
    value: object,
    bounds: Mapping[str, float | int] | tuple[float, float] | None = None,
    *,
    digits: int = 3,
    interval_digits: int = 2,
) -> str:
    """A value with its interval in brackets, `0.811 (0.59-0.88)` (bounds: {low, high} or a pair),
    the value alone without bounds, `n/a` without a value."""
    if not is_number(value):
        return MISSING
    if bounds is None:
        return number(value, digits)
    low, high = (bounds["low"], bounds["high"]) if isinstance(bounds, Mapping) else bounds
    return f"{number(value, digits)} ({interval(low, high, interval_digits)})"


def mean_std(mean: object, std: object, digits: int = 3) -> str:
    """`0.750 ± 0.354`; the mean alone when there is no standard deviation (one value)."""
    if not is_number(std):
        return number(mean, digits)
    return f"{number(mean, digits)} ± {number(std, digits)}"


def row(cells: Sequence[str]) -> str:
    """One line of a table (an empty cell stays one space wide)."""
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str) -> list[str]:
    """A markdown table's lines: the header, the alignment (`align`: one letter per column, `l` for
    text, `r` for numbers), then the rows."""
    if len(align) != len(header):
        raise ValueError(f"{len(header)} columns but {len(align)} alignments ({align!r})")
    return [row(header), "|" + "|".join(ALIGN[a] for a in align) + "|", *(row(cells) for cells in rows)]
