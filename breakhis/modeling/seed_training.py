"""Training a seed ensemble (breakhis.modeling.seed_ensemble): its members one after another.

The first member logs into the model's DVCLive folder and resumes from the model's state, as a single
network does; each other logs into a `seed-<seed>` folder inside it and keeps its resume state in a
folder of the model's. A member that finished before an interruption is kept there
(`member-<seed>.keras`, with its record) and read back, not retrained.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import pandas as pd
from dvclive import Live

from breakhis.modeling.divergence import require_finite_weights
from breakhis.modeling.resume import ResumeState
from breakhis.modeling.runtime import Runtime
from breakhis.modeling.seed_ensemble import combine, member_seeds
from breakhis.modeling.training import Trainer, inference_copy
from breakhis.pipeline.params import Params
from breakhis.pipeline.paths import member_log_dir
from breakhis.pipeline.task import outputs


@dataclass
class Member:
    """One trained network of the ensemble and what its training did."""

    seed: int
    model: keras.Model
    epochs_trained: int
    kept_epoch: int  # 0-based across phases; -1: the last
    validation: dict[str, float]  # its validation metrics at the kept epoch (none without validation)

    def record(self) -> dict[str, Any]:
        """What the model's description says of the member."""
        return {"seed": self.seed, "epochs_trained": self.epochs_trained, "kept_epoch": self.kept_epoch}


Fit = Callable[[int, Live, ResumeState], Member]


def trained_members(seeds: list[int], live: Live, resume: ResumeState, fit: Fit) -> list[Member]:
    """`fit(seed, live, resume)` for each seed: the first in the model's `live` folder and `resume`
    state, each other in its own (see the module's docstring); members of an ensemble that finished
    before an interruption are read back, with their DVCLive summary written again."""
    members = []
    for index, seed in enumerate(seeds):
        with ExitStack() as stack:
            own_live, own_resume = live, resume
            if index:  # each member after the first: its own resume state and DVCLive folder
                own_resume = ResumeState(resume.root / f"seed-{seed}", {**resume.config, "seed": seed})
                folder = member_log_dir(Path(live.dir), seed)
                own_resume.restore_live(folder)
                own_live = stack.enter_context(
                    Live(str(folder), resume=own_resume.resuming, dvcyaml=None, save_dvc_exp=False)
                )
            saved, record = resume.root / f"member-{seed}.keras", resume.root / f"member-{seed}.json"
            if len(seeds) > 1 and record.exists():
                done = json.loads(record.read_text())
                member = Member(
                    seed,
                    keras.saving.load_model(saved),
                    done["epochs_trained"],
                    done["kept_epoch"],
                    done["validation"],
                )
                log_training(own_live, member)  # its copy of the folder is from its last epoch
            else:
                member = fit(seed, own_live, own_resume)
                if len(seeds) > 1:
                    member.model.save(saved)
                    record.write_text(json.dumps({**member.record(), "validation": member.validation}))
        members.append(member)
    return members


def train_model(
    name: str,
    params: Params,
    seed: int,
    runtime: Runtime,
    live: Live,
    resume: ResumeState,
    train_rows: pd.DataFrame,
    val_rows: pd.DataFrame,
) -> tuple[keras.Model, dict[str, Any]]:
    """The model the train stage saves, without its optimizer state: one network, or the seed
    ensemble of `models.<name>.seeds` networks; and what its description says of its training. The
    DVCLive summary in `live` is the first network's (`log_training`), with `kept.eval` the saved
    model's validation metrics; each other network's is in its own folder."""
    own, units = params.models.of(name), outputs(params.task)

    def fit(member_seed: int, member_live: Live, member_resume: ResumeState) -> Member:
        """One network, trained and checked (a diverged one is never saved), without its optimizer."""
        if member_seed != seed:  # the first network trains in the runtime's seeding
            keras.utils.set_random_seed(member_seed)
        trainer = Trainer(name, params.train, own, member_seed, runtime, member_live, member_resume, units)
        model = trainer.run(train_rows, val_rows)
        require_finite_weights(model, name, trainer.rate_key("train"))
        kept = trainer.kept_epoch if trainer.kept_epoch is not None else -1
        member = Member(member_seed, model, trainer.epoch, kept, trainer.validate(model))
        log_training(member_live, member)
        return replace(member, model=inference_copy(model))

    members = trained_members(member_seeds(seed, own.seeds), live, resume, fit)
    first = members[0]
    training: dict[str, Any] = {
        "validation": params.train.validation,
        "epochs_trained": first.epochs_trained,
        "kept_epoch": first.kept_epoch,
    }
    if len(members) == 1:
        return first.model, training
    training["members"] = [member.record() for member in members]
    with runtime.strategy.scope():  # built and scored on every replica, as the members trained
        model = combine([m.model for m in members], name, [m.seed for m in members])
        scorer = Trainer(name, params.train, own, seed, runtime, live, resume, units)
        scorer.prepare(train_rows, val_rows)
        log_training(live, replace(first, validation=scorer.validate(model)))  # the ensemble's
        return inference_copy(model), training  # validate compiled it: saved without the optimizer


def log_training(live: Live, member: Member) -> None:
    """The summary of a training: its epochs; `kept` the saved one (0-based index, and its validation
    metrics if any), beside `train`/`eval`, which hold the last epoch."""
    live.log_metric("epochs_trained", member.epochs_trained, plot=False)
    live.log_metric("kept/epoch", member.kept_epoch, plot=False)
    for metric, value in member.validation.items():
        live.log_metric(f"kept/eval/{metric}", value, plot=False)
