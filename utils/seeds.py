"""Seeds derived from a run's seed and the keys of what they seed, so every stream is independent
of every other and of how the work is grouped (chunks, workers, ranks). (The synthetic generator's
`rng_for` in data/synth/plan.py draws NumPy generators the same way, keyed by dataset kind.)"""
from __future__ import annotations

import numpy as np


def seed_for(*keys: int) -> int:
    """One 32-bit seed per key tuple: (run seed, k) for a k-means fit; (run seed, split, target,
    restart) for a network."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])

