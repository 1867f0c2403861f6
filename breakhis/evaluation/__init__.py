"""Scoring and documents: metrics, plot data and figures, the report and the model card."""
