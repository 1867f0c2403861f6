"""Command: rewrite the model card (metrics/model_card.md) from the run's params and metrics, without
re-running evaluate: `python -m stages.model_card`."""

from __future__ import annotations

import sys

from stages.evaluation.card import read_json, write_model_card
from stages.modeling.description import describe_models
from stages.pipeline.params import load_params
from stages.pipeline.paths import EVALUATE_METRICS, MODEL_CARD, MODELS_DIR
from stages.pipeline.stage import run_stage


def main() -> None:
    params = load_params()  # bad params first, as every stage checks them
    summary = read_json(EVALUATE_METRICS)
    if not summary:
        raise FileNotFoundError(
            f"{EVALUATE_METRICS}: no metrics to describe (run `dvc repro evaluate` first)"
        )
    write_model_card(MODEL_CARD, params, summary, describe_models(MODELS_DIR))
    print(f"wrote {MODEL_CARD}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
