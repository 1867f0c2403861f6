"""Stage `evaluate`: every model and their soft-vote ensemble on the test split.

Temperatures, thresholds (when not fixed) and ensemble weights are chosen on the validation split,
never on test (breakhis.evaluation.decision); when a model was trained on the validation split
(`train.validation: none`, as its description says), nothing is chosen there: the threshold is
fixed and the ensemble the mean of `evaluate.members`. The choices are written beside the models
(models/<model>/decision.json, models/ensemble/decision.json), bound to the model files' digests;
each model is read with its own description (how it sees an image), never with params.yaml's
`train` section. Writes metrics/evaluate.json (`<model>.image.*`, `<model>.patient.*`, `<model>.ci.*`,
`<model>.by_magnification.*`) and its ten-key headline metrics/headline.json, plot data and PNGs
under plots/evaluate/ (a Grad-CAM grid too), metrics/report.md and metrics/model_card.md.

`task: subtype`: the models output eight subtype probabilities. Temperatures are fitted on them;
every binary key above then holds the metrics of P(malignant) = the sum of the four malignant
subtypes (breakhis.pipeline.task), so reports, comparisons and cross-validation read them as before;
`<model>.subtype.*` adds the subtype metrics (breakhis.evaluation.subtype), with the majority-subtype
and the multinomial colour baselines beside them.
"""

from __future__ import annotations

from breakhis.pipeline.cli import parse_no_options
from breakhis.pipeline.logs import quiet_native_logs

if __name__ == "__main__":  # before TensorFlow's import below: --help has no side effect and no wait,
    parse_no_options("stages.evaluate", __doc__)
    quiet_native_logs()  # and TensorFlow's C++ start-up chatter is dropped

from breakhis.modeling.evaluation_run import run_evaluation
from breakhis.pipeline.params_file import load_params
from breakhis.pipeline.stage import run_stage


def main() -> None:
    run_evaluation(load_params())


if __name__ == "__main__":
    run_stage(main)
