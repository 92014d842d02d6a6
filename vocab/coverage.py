"""How well one set of expression centres covers another's (the realism report's coverage figure).

Each side is summarised by centres with weights: a vocabulary's own centres and frame counts, or
k-means centres of a corpus with their cluster sizes. The coverage of A by B is the share of A's
weight whose centre has a centre of B within `radius` (raw AU units); the mean nearest distance
says how far off the rest is. A state A has that B lacks shows up as uncovered weight.
"""
from __future__ import annotations

import numpy as np
import torch

from vocab.assign import assign
from vocab.kmeans import KMeans


def corpus_centres(frames: np.ndarray, k: int, *, seed: int = 0,
                   device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """k-means centres (k, D) of frames (N, D) and their cluster sizes (k,); k is capped at N."""
    x = torch.as_tensor(frames, dtype=torch.float32, device=device)
    k = min(k, len(x))
    res = KMeans(k=k, seed=seed).fit(x)
    counts = torch.bincount(res.labels, minlength=k).double()
    return res.centroids.double().cpu().numpy(), counts.cpu().numpy()


def nearest_labels(frames: np.ndarray, centres: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    labels, _ = assign(torch.as_tensor(frames, dtype=torch.float32, device=device),
                       torch.as_tensor(centres, dtype=torch.float32, device=device))
    return labels.cpu().numpy()


def coverage(centres_a: np.ndarray, weights_a: np.ndarray, centres_b: np.ndarray, *, radius: float) -> dict:
    """Share of A's weight within `radius` of a B centre, and A's weighted mean distance to B's nearest."""
    d = np.sqrt(((centres_a[:, None, :] - centres_b[None, :, :]) ** 2).sum(-1)).min(axis=1)  # (k_a,)
    w = weights_a / weights_a.sum()
    return {"covered": float(w @ (d <= radius)), "mean_nearest": float(w @ d), "radius": radius,
            "worst": [[float(d[i]), float(w[i])] for i in np.argsort(-d)[:5]]}
