"""What every stage shares: a clean error exit, and deterministic JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main; bad input exits with status 1 and one readable message, no traceback."""
    try:
        main()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")
