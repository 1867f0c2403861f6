"""BreakHis benign/malignant classification as a DVC pipeline.

The modules at the top of this package are what you run: the five DVC stages (`ingest`, `split`,
`augment`, `train`, `evaluate`; `python -m stages.<name>`) and the commands outside the DAG
(`predict`, `pr_comment`, `model_card`). The library they share lives in subpackages by concern:
`pipeline` (params schema, paths, stage runner), `data` (the dataset, without TensorFlow),
`modeling` (models, training, prediction; TensorFlow), `evaluation` (metrics, plots, documents).
"""
