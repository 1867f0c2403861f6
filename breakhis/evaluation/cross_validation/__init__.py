"""Summaries of a patient-grouped cross-validation: one `split.strategy=kfold` experiment per fold.

Two readings of the same folds:
- per fold, and mean +- std over the folds, of the headline metrics of every scored entry of each
  experiment's metrics/evaluate.json (the models, the ensemble and the baselines);
- pooled out of fold: the folds' test predictions concatenated, so that every image is predicted
  once, by a model that never saw its patient, and scored as one test set, with intervals that
  resample patient groups (the split's unit). Threshold decisions are each fold's own (the
  `predicted` column), as chosen on that fold's validation split.

Pure functions from loaded experiments (params, evaluate.json, prediction tables) to tables,
markdown, JSON and a figure, by job: `folds` (one fold as loaded), `checks` (are they folds of one
cross-validation?), `pooled` (out-of-fold predictions, their metrics and intervals), `summary`
(per fold, mean +- std, pooled), `documents` (markdown, JSON, the files), `figure`.
`commands/cross_validate.py` runs and finds the experiments; their names are
breakhis.pipeline.experiments'.
"""
