"""Folds as the released code, grouped folds without subject leaks, selection by validation only."""
import numpy as np
import pytest
from sklearn.model_selection import KFold

from losses.metrics import regression_metrics
from training.protocols import fixed_split, kfold, select_restart, to_items


def test_kfold_matches_released_code():
    splits = kfold(83, folds=10, seed=42, val_fraction=0.25)
    for s, (train, test) in zip(splits, KFold(10, shuffle=True, random_state=42).split(np.arange(83))):
        n_val = int(np.ceil(0.25 * len(train)))
        assert (s.test == test).all() and (s.val == train[:n_val]).all() and (s.train == train[n_val:]).all()
    assert sorted(np.concatenate([s.test for s in splits]).tolist()) == list(range(83))


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_grouped_folds_never_leak_a_subject(seed):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 23, 300)
    splits = kfold(300, folds=10, seed=seed, groups=groups)
    covered = np.concatenate([s.test for s in splits])
    assert sorted(covered.tolist()) == list(range(300))               # every item tested once
    for s in splits:
        g_train, g_val, g_test = (set(groups[p]) for p in (s.train, s.val, s.test))
        assert not (g_train & g_test) and not (g_train & g_val) and not (g_val & g_test)
        assert len(s.val) >= 0.25 * (len(s.train) + len(s.val)) and len(s.train) > 0


def test_grouped_needs_enough_subjects():
    with pytest.raises(ValueError, match="subjects"):
        kfold(20, folds=10, groups=np.arange(20) % 5)


def test_fixed_split_and_bad_names():
    s = fixed_split(["train", "test", "validation", "train"])[0]
    assert s.train.tolist() == [0, 3] and s.val.tolist() == [2] and s.test.tolist() == [1]
    with pytest.raises(ValueError, match="dev"):
        fixed_split(["train", "dev", "test"])


def test_to_items_maps_videos_to_their_sequences():
    s = fixed_split(["train", "validation", "test"])[0]
    items = to_items(s, np.array([0, 0, 1, 2, 2, 2]))
    assert items.train.tolist() == [0, 1] and items.val.tolist() == [2] and items.test.tolist() == [3, 4, 5]


def test_best_of_restarts_is_chosen_on_validation_never_test():
    rng = np.random.default_rng(0)
    y_val, y_test = rng.normal(size=30), rng.normal(size=30)
    # restart 0: good on validation, poor on test; restart 1 the reverse
    val_preds = [y_val + rng.normal(0, 0.1, 30), rng.normal(size=30)]
    test_preds = [rng.normal(size=30), y_test + rng.normal(0, 0.1, 30)]
    val = [regression_metrics(p, y_val) for p in val_preds]
    test = [regression_metrics(p, y_test) for p in test_preds]
    assert select_restart(test, "ccc") == 1                      # what peeking at test would pick
    assert select_restart(val, "ccc") == 0 and select_restart(val, "pcc") == 0 and select_restart(val, "rmse") == 0


def test_folds_that_would_leave_a_part_empty_are_refused():
    # 2 subjects, 2 grouped folds: each training part holds one subject, nothing left for validation
    with pytest.raises(ValueError, match=r"fold 1 of 2 has no val"):
        kfold(4, folds=2, groups=np.array(["a", "b", "b", "b"]))
    with pytest.raises(ValueError, match=r"has no train"):
        kfold(2, folds=2)
    split = kfold(6, folds=2, groups=np.array(["a", "b", "c", "c", "d", "d"]))[0]
    assert len(split.train) and len(split.val) and len(split.test)
