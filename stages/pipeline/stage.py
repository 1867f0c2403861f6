"""How every stage and command runs: bad input ends it with one readable message, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main; bad input exits with status 1 and one readable message, no traceback."""
    try:
        main()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
