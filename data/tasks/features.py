"""Per-sequence features for the baselines, read through the one sequence dataset.

Static features (paper, "Static Features + Linear Regression"): per AU the mean intensity, the mean
first difference and the standard deviation (population, ddof 0), 3 x n_AU features.
`diff="abs"` (default) takes the mean of |x[t+1] - x[t]|: the signed mean telescopes to
(x[T-1] - x[0]) / (T - 1), which only sees the two end frames; `diff="signed"` gives the literal one.

Continuous Dynamic Model features (Tron et al. 2015, as the paper's baseline). The paper does not
define them; the definitions follow the code of the same lab as summarised in METHOD.md section 5,
with that code's bugs fixed (it quantised all AUs jointly, left levels unordered, and its transition
matrix was off by one). Per sequence and per AU:
  1. x' = max(x - offset, 0)                            offset 0.2 (intensity units)
  2. levels: 1-D k-means with `levels` (4) clusters on x' of this sequence, Lloyd's algorithm from
     centres at evenly spaced quantiles of the distinct values; levels numbered by increasing centre,
     level 0 = inactive. A signal with at most `levels` distinct values gets one level per value.
  3. activation ratio  = fraction of frames with level > 0
     activation level  = mean level over active frames / (levels - 1)            (0 if none active)
     activation length = mean length, in frames, of runs of consecutive active frames (0 if none)
     change ratio      = (N - trace T) / (N - T[0,0]), T the (levels x levels) count matrix of
                         transitions level[t] -> level[t+1], N = its total; the share of
                         transitions that change level among those that do not stay inactive (0 if 0/0)
     fast change ratio = share of level changes with |level[t+1] - level[t]| > 1  (0 if no change)
Feature order is feature-major: the 5 features for AU 1..n_AU each, i.e. 5 x n_AU columns.
"""
from __future__ import annotations

import numpy as np

from data.tasks.sequences import SequenceDataset

CDM_NAMES = ("activation_ratio", "activation_level", "activation_length", "change_ratio", "fast_change_ratio")


def _frames(dataset: SequenceDataset):
    if dataset.is_tokens:
        raise ValueError("features are computed on AU frames; this dataset holds token ids")
    for i in range(len(dataset)):
        yield dataset.sequence(i).double().numpy()  # (T, n_AU)


def static_features(dataset: SequenceDataset, diff: str = "abs") -> np.ndarray:
    """(S, 3 * n_AU) float64: [means, mean first differences, standard deviations]."""
    if diff not in ("abs", "signed"):
        raise ValueError(f"static features: diff must be 'abs' or 'signed', got {diff!r}")
    rows = []
    for x in _frames(dataset):
        d = np.diff(x, axis=0)
        d = np.abs(d) if diff == "abs" else d
        mean_diff = d.mean(axis=0) if len(d) else np.zeros(x.shape[1])
        rows.append(np.concatenate([x.mean(axis=0), mean_diff, x.std(axis=0)]))
    return np.stack(rows)


def quantise_1d(v: np.ndarray, levels: int = 4, max_iter: int = 100) -> np.ndarray:
    """Level (0 .. levels-1, ordered by intensity) of each value of a 1-D signal, by 1-D k-means."""
    distinct = np.unique(v)
    if len(distinct) <= levels:
        return np.searchsorted(distinct, v)
    centres = np.quantile(distinct, (np.arange(levels) + 0.5) / levels)  # strictly increasing
    for _ in range(max_iter):
        # in 1-D, nearest centre = which interval between consecutive midpoints holds the value
        label = np.searchsorted((centres[1:] + centres[:-1]) / 2, v)
        sums = np.bincount(label, weights=v, minlength=levels)
        counts = np.bincount(label, minlength=levels)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), centres)  # empty cluster: keep centre
        if np.array_equal(new, centres):
            break
        centres = new
    order = np.argsort(centres, kind="stable")  # Lloyd keeps 1-D centres ordered; sort to be sure
    return np.argsort(order)[np.searchsorted((centres[1:] + centres[:-1]) / 2, v)]


def cdm_signal_features(level: np.ndarray, levels: int = 4) -> np.ndarray:
    """The 5 CDM features of one quantised signal (T,) int."""
    active = level > 0
    ratio = active.mean()
    act_level = level[active].mean() / (levels - 1) if active.any() else 0.0
    # runs of consecutive active frames: starts where active follows inactive (or the sequence start)
    padded = np.concatenate([[False], active, [False]])
    edges = np.diff(padded.astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    length = (ends - starts).mean() if len(starts) else 0.0
    T = np.zeros((levels, levels))
    np.add.at(T, (level[:-1], level[1:]), 1)
    n, stay = T.sum(), np.trace(T)
    change = (n - stay) / (n - T[0, 0]) if n - T[0, 0] > 0 else 0.0
    jump = np.abs(np.arange(levels)[:, None] - np.arange(levels)[None, :]) > 1
    fast = T[jump].sum() / (n - stay) if n - stay > 0 else 0.0
    return np.array([ratio, act_level, length, change, fast])


def cdm_features(dataset: SequenceDataset, *, offset: float = 0.2, levels: int = 4) -> np.ndarray:
    """(S, 5 * n_AU) float64, feature-major (see the module docstring)."""
    if levels < 2:
        raise ValueError(f"CDM features need at least 2 levels, got {levels}")
    rows = []
    for x in _frames(dataset):
        x = np.maximum(x - offset, 0.0)
        per_au = np.stack([cdm_signal_features(quantise_1d(x[:, a], levels), levels)
                           for a in range(x.shape[1])])  # (n_AU, 5)
        rows.append(per_au.T.reshape(-1))
    return np.stack(rows)
