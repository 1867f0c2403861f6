"""BreakHis benign/malignant classification as a DVC pipeline.

The modules at the top of this package are what you run (`python -m stages.<name>`): the DVC
stages `ingest`, `split`, `augment`, `train` (one per model) and `evaluate`, and the commands
outside the DAG: `predict` (also `breakhis-predict`), `model_card`, `pr_comment`, `compare`,
`cross_validate`, `seed_spread` and `runners`. The library they share lives in subpackages by
concern: `pipeline` (params schema, paths, stage runner, experiments), `data` (the dataset, without
TensorFlow), `modeling` (models, their descriptions, training, prediction; TensorFlow) and
`evaluation` (metrics, the decision rule, baselines, plots, documents).
"""
