"""Evaluation protocols: which items train, validate and test, and how restarts are chosen.

Splits are made over *videos* (the rows of labels.csv present in the dataset) and then mapped to
the dataset's sequences, so every model of a task (frames or tokens) sees the same folds.

- `kfold` (task A): scikit-learn's KFold(folds, shuffle=True, random_state=seed), as the released
  code (seed 42); the validation set is the first `val_fraction` of each training fold in dataset
  order (released code: the first 25 %), ceil(val_fraction * n_train) videos.
- `kfold` with `grouped=True`: no subject is in two of train, validation and test. Subjects are
  shuffled with the seed and dealt into folds of near-equal subject count; the validation set is
  the first training subjects (in dataset order) until it holds >= val_fraction of the training videos.
- `split` (task B): the fixed train/validation/test of labels.csv's `split` column.

Restarts: every split trains `restarts` models per target; `select_restart` keeps the one with
the best validation score, and never looks at the test set.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold

from losses.metrics import selection_score

SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class Split:
    train: np.ndarray  # int64 indices
    val: np.ndarray
    test: np.ndarray


def kfold(n: int, *, folds: int = 10, seed: int = 42, val_fraction: float = 0.25,
          groups: np.ndarray | None = None) -> list[Split]:
    """Splits of range(n); with `groups` (n,), subject-grouped."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if groups is None:
        if n < folds:
            raise ValueError(f"kfold: {folds} folds need at least {folds} videos, got {n}")
        splits = []
        for train, test in KFold(folds, shuffle=True, random_state=seed).split(np.arange(n)):
            n_val = math.ceil(val_fraction * len(train))
            splits.append(Split(train=train[n_val:], val=train[:n_val], test=test))
        return _none_empty(splits, f"kfold over {n} videos")
    groups = np.asarray(groups)
    subjects = np.unique(groups)
    if len(subjects) < folds:
        raise ValueError(f"grouped kfold: {folds} folds need at least {folds} subjects, got {len(subjects)}")
    shuffled = np.random.default_rng(seed).permutation(subjects)
    splits = []
    for test_subjects in np.array_split(shuffled, folds):
        in_test = np.isin(groups, test_subjects)
        train_all = np.flatnonzero(~in_test)
        val_subjects, n_val = [], 0
        for s in list(dict.fromkeys(groups[train_all]))[:-1]:  # subjects in dataset order; one stays for training
            if n_val >= val_fraction * len(train_all):
                break
            val_subjects.append(s)
            n_val += int((groups[train_all] == s).sum())
        in_val = np.isin(groups, val_subjects)
        splits.append(Split(train=np.flatnonzero(~in_test & ~in_val), val=np.flatnonzero(in_val),
                            test=np.flatnonzero(in_test)))
    return _none_empty(splits, f"grouped kfold over {len(subjects)} subjects")


def _none_empty(splits: list[Split], what: str) -> list[Split]:
    for k, split in enumerate(splits):
        empty = [name for name in ("train", "val", "test") if len(getattr(split, name)) == 0]
        if empty:
            raise ValueError(f"{what}: fold {k + 1} of {len(splits)} has no {'/'.join(empty)} videos; "
                             "use fewer folds (or grouped=false)")
    return splits


def fixed_split(split_column: list[str], where: str = "labels") -> list[Split]:
    """The one split given by a train/validation/test column."""
    column = np.asarray(split_column)
    bad = sorted(set(column) - set(SPLIT_NAMES))
    if bad:
        raise ValueError(f"{where}: protocol=split needs a split column of {SPLIT_NAMES}; found {bad}")
    parts = [np.flatnonzero(column == name) for name in SPLIT_NAMES]
    empty = [name for name, p in zip(SPLIT_NAMES, parts) if len(p) == 0]
    if empty:
        raise ValueError(f"{where}: no video in split(s) {empty}")
    return [Split(*parts)]


def to_items(split: Split, item_video: np.ndarray) -> Split:
    """Map a split over videos to the dataset items (sequences) of those videos."""
    return Split(*(np.flatnonzero(np.isin(item_video, part)) for part in (split.train, split.val, split.test)))


def select_restart(val_metrics: list[dict], select: str = "ccc") -> int:
    """Index of the restart with the best validation score (the first on ties); test is never read."""
    scores = [selection_score(m, select) for m in val_metrics]
    return int(np.argmax(scores))
