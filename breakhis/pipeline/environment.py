"""Which locked environment a run used: the digest of uv.lock, and whether this Python's
environment was synced from that very file (run.py records what it synced .venv/ from)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from breakhis.pipeline.files import file_digest
from breakhis.pipeline.paths import ENVIRONMENT_LOCK

SYNC_RECORD = "breakhis-lock.json"  # written into the virtualenv by run.py after `uv sync`


def environment_lock(lock: Path = ENVIRONMENT_LOCK, prefix: Path | None = None) -> dict[str, str | bool]:
    """`environment_lock`: uv.lock's SHA-256 (or "none"); `installed_from_lock`: whether the
    running environment was synced from it (False for a pip install or a stale .venv/)."""
    digest = file_digest(lock) if lock.is_file() else "none"
    record = Path(sys.prefix if prefix is None else prefix) / SYNC_RECORD
    try:
        synced = json.loads(record.read_text()).get("uv.lock")
    except (OSError, ValueError, AttributeError):
        synced = None
    return {"environment_lock": digest, "installed_from_lock": synced == digest != "none"}


def describe_environment(lock: Path = ENVIRONMENT_LOCK, prefix: Path | None = None) -> str:
    """One line for the model card."""
    state = environment_lock(lock, prefix)
    if state["environment_lock"] == "none":
        return f"no `{lock}`: the environment was not locked; the versions below are what ran"
    how = (
        "this environment was synced from it (`python3 run.py sync`)"
        if state["installed_from_lock"]
        else "this environment was NOT synced from it: the versions below are what ran"
    )
    return f"`{lock}` sha256 {str(state['environment_lock'])[:16]}; {how}"
