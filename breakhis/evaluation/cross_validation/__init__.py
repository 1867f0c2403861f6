"""Summaries of a patient-grouped cross-validation: one `split.strategy=kfold` experiment per fold.

Two readings of the same folds:
- per fold, and mean +- std over the folds, of the headline metrics of every scored entry of each
  experiment's metrics/evaluate.json (the models, the ensemble and the baselines);
- pooled out of fold: the folds' test predictions concatenated, so that every image is predicted
  once, by a model that never saw its patient, and scored as one test set, with intervals that
  resample patient groups (the split's unit). Threshold decisions are each fold's own (the
  `predicted` column), as chosen on that fold's validation split.

By job: `runs` runs the folds as DVC experiments (or queues them), finds and loads them from git
and writes the summaries (the commands cross_validate, ablate and runners are thin around it; the
experiments' names are breakhis.pipeline.experiments'). The rest are pure functions from loaded
experiments (params, evaluate.json, prediction tables) to tables, markdown, JSON and a figure:
`folds` (one fold as loaded), `checks` (are they folds of one cross-validation?), `pooled`
(out-of-fold predictions, their metrics and intervals), `epochs` (pooled AUC per snapshot epoch),
`ensemble` (the out-of-fold ensemble and the choice over seeds), `ablation` (paired variants),
`summary` (per fold, mean +- std, pooled), `documents` (markdown, JSON, the files), `figure`.
"""
