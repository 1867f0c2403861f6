"""Command: rewrite the model card (metrics/model_card.md) from the run's params and metrics, without
re-running evaluate: `python -m commands.model_card`."""

from __future__ import annotations

import sys

from breakhis.evaluation.card.document import write_model_card
from breakhis.evaluation.card.values import read_json
from breakhis.modeling.description import describe_models
from breakhis.pipeline.cli import parse_no_options
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.paths import EVALUATE_METRICS, MODEL_CARD, MODELS_DIR
from breakhis.pipeline.stage import run_stage


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
    parse_no_options("commands.model_card", __doc__)  # --help: usage, nothing read or written
    run_stage(main)
