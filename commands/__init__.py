"""The commands outside the DVC DAG, run as `python -m commands.<name>`: `predict` (also
`breakhis-predict`), `exp_run` (one experiment of a profile), `cross_validate`, `ablate`,
`seed_spread`, `runners`, `compare`, `model_card`, `pr_comment`, `plots_page` and `gpu_check`
(also `python3 run.py gpu-check`). Each is a thin `main` around the library (`breakhis`).
"""
