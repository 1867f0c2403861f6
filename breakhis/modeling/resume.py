"""Resumable training: the state a killed run leaves (`ResumeState`, in models/.resume/<model>/), and
the configuration it belongs to (`resume_config`: task, params and data digests), so a run with
other params or data starts over.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import keras
from dvclive import Live

from breakhis.pipeline.files import file_digest
from breakhis.pipeline.train_params import ModelOverrides, TrainParams


class ResumeState:
    """What survives a killed training run: Keras BackupAndRestore state of the running phase, the
    weights of a finished phase 1, and a copy of the DVCLive folder (DVC deletes stage outputs
    before re-running a stage). It belongs to one configuration (params and data): a different one
    discards it. `clear()` removes it when training has finished.
    """

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.root = root
        self.config = config
        stamp = root / "config.json"
        if root.exists() and (not stamp.exists() or json.loads(stamp.read_text()) != config):
            shutil.rmtree(root)
        self.resuming = stamp.exists()
        root.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(config, sort_keys=True))

    def callbacks(self, phase: str, live: Live) -> list[keras.callbacks.Callback]:
        """Run after the epoch is logged: copy the DVCLive folder, then back up the training state."""
        snapshot = self.root / "dvclive"

        def copy_live(epoch: int, logs: dict[str, Any] | None = None) -> None:
            shutil.copytree(live.dir, snapshot, dirs_exist_ok=True)

        return [
            keras.callbacks.LambdaCallback(on_epoch_end=copy_live),
            keras.callbacks.BackupAndRestore(str(self.root / phase)),
        ]

    def restore_live(self, live_dir: Path) -> None:
        """Put back the DVCLive folder of the interrupted run, so its curves continue."""
        snapshot = self.root / "dvclive"
        if self.resuming and snapshot.exists():
            shutil.copytree(snapshot, live_dir, dirs_exist_ok=True)

    def finished(self, phase: str, model: keras.Model) -> dict[str, Any] | None:
        """The record of a finished phase, with its weights loaded into `model`; None if not finished."""
        record = self.root / f"{phase}.json"
        if not record.exists():
            return None
        model.load_weights(self.root / f"{phase}.weights.h5")
        return json.loads(record.read_text())

    def mark_finished(self, phase: str, model: keras.Model, record: dict[str, Any]) -> None:
        model.save_weights(self.root / f"{phase}.weights.h5")
        (self.root / f"{phase}.json").write_text(json.dumps(record))

    @property
    def snapshots(self) -> Path:
        """Snapshot weights of this run (`train.snapshot_epochs`): kept here, so a resumed run has them."""
        return self.root / "snapshots"

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def resume_config(
    model_name: str,
    train: TrainParams,
    own: ModelOverrides,
    seed: int,
    data_files: list[Path],
    task: str = "binary",
) -> dict[str, Any]:
    """What a training run depends on: its task, params (`train` and `own`, its section of `models`)
    and the digests of its data files."""
    return {
        "model": model_name,
        "task": task,
        "seed": seed,
        "train": train.model_dump(mode="json"),
        "models": {model_name: own.model_dump(mode="json")},
        "data": {str(path): file_digest(path) for path in data_files},
    }
