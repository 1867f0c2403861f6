"""The test suite.

A regular package, so that `tests` here wins over the stray top-level `tests` package that
torchstain's wheel installs into site-packages.
"""
