"""Downstream tasks: per-video labels, the one sequence dataset every regressor reads, and the baselines' features."""
