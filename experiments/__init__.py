"""Experiments: evaluation, statistics, plots, the runner, the CLI and the benchmark."""
