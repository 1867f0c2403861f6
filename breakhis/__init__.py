"""The library behind the stages and the commands: BreakHis classification, benign/malignant or the
eight subtypes, split by patient. Subpackages by layer, each importing only its own and those below
(tests/test_layers.py): `pipeline` (the params schema, every path, how a stage runs and writes
files, the task), `data` (the dataset, without TensorFlow), `evaluation` (metrics, the decision
rule, baselines, plots, documents) and `modeling` (models, their descriptions, training,
prediction; TensorFlow). It never imports an entry point (`stages`, `commands`).
"""
