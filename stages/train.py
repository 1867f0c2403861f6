"""Stages `train-custom`, `train-vgg19`, `train-resnet50`: `python -m stages.train <model>`.

Trains one model (one process per model, so accelerator memory is freed between models) on the
augmented train split with early stopping on the validation split. Writes models/<model>.keras
(the best epoch) and the DVCLive folder metrics/train/<model>/.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf
from dvclive import Live

from stages.models import MODEL_NAMES
from stages.params import load_params
from stages.runner import run_stage
from stages.training import Trainer

TRAIN_ROWS = Path("data/augmented/train.csv")
VAL_ROWS = Path("data/split/val.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", choices=MODEL_NAMES)
    name = parser.parse_args().model
    params = load_params()
    train_rows, val_rows = pd.read_csv(TRAIN_ROWS), pd.read_csv(VAL_ROWS)

    model_path = Path("models") / f"{name}.keras"
    model_path.parent.mkdir(exist_ok=True)
    with Live(f"metrics/train/{name}", dvcyaml=None, save_dvc_exp=False) as live:
        live.log_params(
            {
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "device": ", ".join(d.name for d in tf.config.list_logical_devices()) or platform.processor(),
            }
        )
        model = Trainer(name, params.train, params.seed, live).run(train_rows, val_rows)
        model.save(model_path)
        live.log_metric("epochs_trained", live.step, plot=False)


if __name__ == "__main__":
    run_stage(main)
