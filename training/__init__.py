"""Downstream regression: training loop, protocols, metrics, results tables."""
