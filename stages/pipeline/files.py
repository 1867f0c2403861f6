"""Writing and fingerprinting files: deterministic JSON for DVC metrics, SHA-256 digests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks (archives of several GB included)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
