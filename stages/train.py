"""Stages `train-custom`, `train-vgg19`, `train-resnet50`: `python -m stages.train <model>`.

Trains one model (one process per model, so accelerator memory is freed between models; with
`models.<model>.seeds` above 1, a seed ensemble of that many networks saved as one model:
breakhis.modeling.seed_ensemble) for
`task` (benign vs malignant, or the eight subtypes: breakhis.pipeline.task) on the augmented train
split with early stopping on the validation split, or (`train.validation: none`) on the train and
validation splits together for exactly its epochs. Writes
models/<model>/model.keras (the kept epoch, with its description inside:
breakhis.modeling.description) and the DVCLive folder metrics/train/<model>/: its metrics.json holds the last
epoch (`train`, `eval`, `step`) and the saved one (`kept.epoch`, `kept.eval`: the saved model's
validation metrics). The model, its DVCLive folder and its snapshots are
replaced together, or (a failure, Ctrl-C, SIGTERM) the earlier ones are left as they were. A killed
run resumes from its last completed epoch when run again with the same params and data (state in
models/.resume/<model>/, removed when training finishes or fails; `--fresh` discards it).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pandas as pd

from breakhis.pipeline.logs import quiet_native_logs

if __name__ == "__main__":  # before TensorFlow's import in main: its C++ start-up chatter is dropped
    quiet_native_logs()

from breakhis.modeling.description import describe, save_model
from breakhis.pipeline.cli import command_parser
from breakhis.pipeline.environment import environment_lock
from breakhis.pipeline.files import output_unit, read_table, write_json
from breakhis.pipeline.param_types import MODEL_NAMES
from breakhis.pipeline.params import training_seed
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.paths import (
    AUGMENTED_TRAIN,
    RESUME_DIR,
    VAL_SPLIT,
    model_file,
    snapshot_dir,
    snapshot_index,
    train_log_dir,
)
from breakhis.pipeline.stage import run_stage
from breakhis.pipeline.task import targets

if TYPE_CHECKING:
    from breakhis.modeling.resume import ResumeState


def main() -> None:
    parser = command_parser("stages.train", __doc__)
    parser.add_argument("model", choices=MODEL_NAMES, help="the model to train")
    parser.add_argument(
        "--fresh", action="store_true", help="discard an interrupted run's state instead of resuming from it"
    )
    args = parser.parse_args()
    name = args.model
    params = load_params()  # before TensorFlow: bad params are refused at once, in a few MB
    columns = ("path", "target", "magnification", *(("subtype",) if params.task == "subtype" else ()))
    train_rows = read_table(AUGMENTED_TRAIN, (*columns, "source_path"), "augment")
    val_rows = read_table(VAL_SPLIT, columns, "split")
    if params.task == "subtype":  # the model learns the subtype index (breakhis.pipeline.task)
        train_rows = train_rows.assign(target=targets(train_rows, "subtype", str(AUGMENTED_TRAIN)))
        val_rows = val_rows.assign(target=targets(val_rows, "subtype", str(VAL_SPLIT)))
    if params.train.validation == "none":  # the validation patients are trained on, never validated on
        train_rows, val_rows = pd.concat([train_rows, val_rows], ignore_index=True), val_rows.iloc[:0]

    from dvclive import Live  # TensorFlow and Keras load with these

    from breakhis.modeling.resume import ResumeState, resume_config
    from breakhis.modeling.runtime import configure_runtime
    from breakhis.modeling.seed_training import train_model

    seed = training_seed(params)
    runtime = configure_runtime(params.train, seed)

    model_path = model_file(name)
    if args.fresh:
        shutil.rmtree(RESUME_DIR / name, ignore_errors=True)
    resume = ResumeState(
        RESUME_DIR / name,
        resume_config(
            name, params.train, params.models.of(name), seed, [AUGMENTED_TRAIN, VAL_SPLIT], params.task
        ),
    )
    live_dir, snapshots = train_log_dir(name), snapshot_dir(name)
    # the model, its DVCLive record and its snapshots appear together, or the earlier ones stay
    with output_unit(f"train-{name}", [model_path, live_dir, snapshots]), kept_for_resuming(resume, name):
        if resume.resuming:
            print(f"train {name}: resuming an interrupted run from {resume.root}", file=sys.stderr)
            resume.restore_live(live_dir)
        with Live(str(live_dir), resume=resume.resuming, dvcyaml=None, save_dvc_exp=False) as live:
            live.log_params({**runtime.describe(), **environment_lock()})
            model, training = train_model(name, params, seed, runtime, live, resume, train_rows, val_rows)
            description = describe(
                name,
                params,
                data_files=[AUGMENTED_TRAIN, VAL_SPLIT],
                images=len(train_rows),
                copies=int(train_rows["source_path"].notna().sum()),  # augment's copies name their source
                validation_images=len(val_rows),
                magnifications=sorted(set(train_rows["magnification"])),
                training=training,
            )
            save_model(model, model_path, description)
        snapshots.mkdir(parents=True)  # a DVC output: its index is written even without snapshots
        kept = sorted(resume.snapshots.glob("*.weights.h5"))
        for path in kept:
            shutil.move(path, snapshots / path.name)
        write_json(snapshot_index(name), {"model": name, "snapshots": [path.name for path in kept]})


@contextmanager
def kept_for_resuming(resume: ResumeState, name: str) -> Iterator[None]:
    """The resume state outlives an interrupted run (Ctrl-C, SIGTERM), and says so; any other end
    of the run removes it (finished, or failed: a diverged or refused run is not resumed)."""
    try:
        yield
    except KeyboardInterrupt:
        if resume.root.exists():
            print(
                f"train {name}: its completed epochs are kept in {resume.root}: the next run with the same "
                f"params and data resumes from them (`python -m stages.train {name} --fresh` starts over)",
                file=sys.stderr,
            )
        raise
    except BaseException:
        resume.clear()
        raise
    resume.clear()


if __name__ == "__main__":
    run_stage(main)
