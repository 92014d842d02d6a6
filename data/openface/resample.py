"""Resampling one video's rows onto a fixed-rate time grid, and what a missing grid point does.

The grid is `t[0] + k / fps`, k = 0, 1, ..., up to the video's last row (inclusive), anchored at
the first row. Grid point k takes the row nearest to it (the earlier row on an exact tie) if that
row lies within half a grid step; otherwise k has no row. Nothing is interpolated and a row serves
at most one grid point (a row exactly between two grid points goes to the earlier), so resampling
never invents a frame. On 30 fps input with millisecond timestamps this is every 6th row.

Whether the row of a grid point is *kept* (confidence, success, NaN) is decided by the caller: a
grid point whose row was dropped is missing, like one with no row at all. It does not fall back to
another row, so the output stays on the grid.
"""
from __future__ import annotations

import numpy as np

# Slack for float arithmetic in grid comparisons, in seconds. Timestamps are printed with 3
# decimals, so real distances differ from half a step by whole milliseconds or not at all.
TIME_TOL = 1e-9


def grid_rows(t: np.ndarray, fps: float) -> np.ndarray:
    """Row index of each grid point, -1 where no row lies within half a step.

    t: (n,) float64 seconds, finite and non-decreasing. Returns (K,) int64; the valid entries are
    strictly increasing.
    """
    t = np.asarray(t, dtype=np.float64)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if t.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0):
        raise ValueError("grid_rows needs finite, non-decreasing times")
    n_points = int(np.floor((t[-1] - t[0]) * fps + 1e-6)) + 1
    grid = t[0] + np.arange(n_points) / fps                              # (K,)
    hi = np.minimum(np.searchsorted(t, grid, side="left"), t.size - 1)  # first row at or after
    lo = np.maximum(hi - 1, 0)
    pick = np.where(np.abs(t[hi] - grid) < np.abs(t[lo] - grid), hi, lo)
    pick = np.searchsorted(t, t[pick], side="left")  # of rows with equal times, the first
    pick[np.abs(t[pick] - grid) > 0.5 / fps + TIME_TOL] = -1
    # A row within half a step of two grid points sits exactly between them: the earlier keeps it.
    # Nearest indices never decrease along the grid, so repeats are adjacent among valid picks.
    valid = np.flatnonzero(pick >= 0)
    repeat = valid[1:][pick[valid[1:]] == pick[valid[:-1]]]
    pick[repeat] = -1
    return pick.astype(np.int64)


def gap_before(ok: np.ndarray) -> np.ndarray:
    """For the kept points of a sequence of grid points: does a missing point precede it?

    ok: (K,) bool, True where the grid point has a kept row. Returns (ok.sum(),) bool; the first
    kept point never has a gap before it (a video's start is not a gap).
    """
    idx = np.flatnonzero(ok)
    out = np.zeros(idx.size, dtype=bool)
    out[1:] = np.diff(idx) > 1
    return out


def sequence_offsets(gap: np.ndarray, on_gap: str) -> np.ndarray:
    """Offsets (S+1,) int64 of one video's sequences: one sequence (`mark`) or cut at gaps (`split`)."""
    n = gap.size
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    if on_gap == "mark":
        return np.array([0, n], dtype=np.int64)
    if on_gap == "split":
        starts = np.flatnonzero(gap)
        return np.concatenate([[0], starts[starts > 0], [n]]).astype(np.int64)
    raise ValueError(f"on_gap={on_gap!r}: expected 'mark' or 'split'")


def drop_short_sequences(gap: np.ndarray, min_frames: int) -> np.ndarray:
    """Keep-mask (n,) over frames that removes `split` sequences shorter than `min_frames`."""
    offsets = sequence_offsets(gap, "split")
    lengths = np.diff(offsets)
    return np.repeat(lengths >= min_frames, lengths)
