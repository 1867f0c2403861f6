"""The model card (metrics/model_card.md): what the models are for, what they were trained and
tested on, how well they did, what is known to be wrong with the data, and the exact versions.

Written by evaluate from the run's params and metrics, the models' own descriptions and the
decisions beside them, or on its own: `python -m commands.model_card` (reads params.yaml,
metrics/{evaluate,ingest,split}.json, models/).

By job: `document` (the card, section by section, and its file), `values` (metrics and summaries
read tolerantly), one module per section: `models`, `data`, `results` (the metrics and the
decision rule), `limits` (intended use, known dataset issues), `versions`.
"""
