"""The DVC stages of dvc.yaml, one module each, run as `python -m stages.<name>`: `ingest`, `split`,
`augment`, `train` (one stage per model) and `evaluate`. Each is a thin `main` around a function of
the library (`breakhis`) that takes params and paths; the commands outside the DAG live in
`commands`.
"""
