"""Folds as the released code, grouped folds without subject leaks, selection by validation only."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.model_selection import KFold

from data.tasks.sequences import SequenceDataset
from training import experiment
from training.protocols import Split, fixed_split, kfold, to_items


def test_kfold_matches_released_code():
    """Test folds are scikit-learn's KFold(10, shuffle, 42); validation is the head of each training
    fold. 83 videos: 3 folds test 9 and 7 test 8, so training folds hold 74 or 75 videos, and a
    quarter of either, rounded up (18.5 or 18.75), is 19 validation videos, counted by hand."""
    splits = kfold(83, folds=10, seed=42, val_fraction=0.25)
    for s, (train, test) in zip(splits, KFold(10, shuffle=True, random_state=42).split(np.arange(83))):
        assert len(s.val) == 19 and len(s.train) == len(train) - 19
        assert (s.test == test).all() and (s.val == train[:19]).all() and (s.train == train[19:]).all()
    assert sorted(len(s.test) for s in splits) == [8] * 7 + [9] * 3
    assert sorted(np.concatenate([s.test for s in splits]).tolist()) == list(range(83))


@pytest.mark.parametrize("n, folds, fraction, n_val", [(12, 4, 0.25, 3),   # 9 training videos: 2.25 -> 3
                                                       (10, 2, 0.25, 2),   # 5: 1.25 -> 2
                                                       (20, 5, 0.5, 8),    # 16: 8 exactly
                                                       (11, 11, 0.1, 1)])  # 10: 1 exactly
def test_validation_count_rounds_up(n, folds, fraction, n_val):
    """The validation share is at least `val_fraction` of each training fold (ceil), by hand."""
    for s in kfold(n, folds=folds, seed=0, val_fraction=fraction):
        assert len(s.val) == n_val and len(s.val) + len(s.train) + len(s.test) == n


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


def _lin(p, t):
    """PCC, RMSE and Lin's CCC (1/n moments) written out."""
    p, t = np.asarray(p, float), np.asarray(t, float)
    pc, tc = p - p.mean(), t - t.mean()
    return {"pcc": (pc * tc).sum() / math.sqrt((pc ** 2).sum() * (tc ** 2).sum()),
            "rmse": math.sqrt(((p - t) ** 2).mean()),
            "ccc": 2 * (pc * tc).mean() / ((pc ** 2).mean() + (tc ** 2).mean() + (p.mean() - t.mean()) ** 2)}


class _TwoRestarts:
    """A baseline predicting two rows ("restarts"): per target, one row tracks the labels on the
    validation items and is noise on the test items, the other the reverse. Feature 0 is the item id."""
    averaged = False

    def __init__(self, *, y, val_ids, good_on_val):
        self.y, self.val_ids, self.good_on_val = y, set(val_ids), good_on_val

    def fit(self, X, y, X_val, y_val):
        return self

    def predict(self, X):
        ids = X[:, 0].astype(int)
        noise = np.random.default_rng(len(ids)).normal(0, 3, len(ids))
        track = self.y[ids] + np.random.default_rng(1).normal(0, 0.1, len(ids))
        on_val = ids[0] in self.val_ids
        good = self.good_on_val if on_val else 1 - self.good_on_val
        return np.stack([track, noise] if good == 0 else [noise, track])      # (2, n)

    def state(self):
        return {}


@pytest.mark.parametrize("select", ["ccc", "pcc", "rmse"])
def test_restart_is_chosen_on_validation_never_test(monkeypatch, select):
    """Through the runner (training/experiment.py): for each target the restart that is best on
    validation is kept and its test metrics reported, although the other restart is better on test.
    Expected values: Lin's CCC, PCC and RMSE written out above, on the predictions themselves."""
    n = 50
    rng = np.random.default_rng(0)
    y = rng.normal(5, 2, (n, 2))                                           # (n, 2 targets)
    split = Split(train=np.arange(0, 10), val=np.arange(10, 30), test=np.arange(30, 50))
    ds = SequenceDataset(values=torch.zeros(n, 1), offsets=torch.arange(n + 1), ids=[str(i) for i in range(n)],
                         targets=torch.from_numpy(y).float(), groups=torch.zeros(n))
    y32 = ds.targets.double().numpy()
    made = []

    def factory(**_):  # called once per target, in target order
        t = len(made)
        made.append(_TwoRestarts(y=y32[:, t], val_ids=split.val, good_on_val=t))
        return made[-1]
    monkeypatch.setattr(experiment, "get_model", lambda name: SimpleNamespace(factory=factory))
    cfg = OmegaConf.create({"task": "task_b", "model": "two", "seed": 0, "two": {}, "task_b": {"select": select}})
    features = np.arange(n, dtype=float)[:, None]
    result = experiment.fit_baseline_split(cfg, features, ds, split, 0)
    for t in (0, 1):
        r = result["targets"][t]
        rows = made[t].predict(features[split.test])                        # (2, n_test)
        chosen, other = _lin(rows[t], y32[split.test, t]), _lin(rows[1 - t], y32[split.test, t])
        assert other["ccc"] > chosen["ccc"] + 0.5                           # peeking at test would pick the other
        assert r["selected"] == t
        assert r["test_selected"] == pytest.approx(chosen | {"constant": False}, abs=1e-9)
        assert r["val_selected"] == pytest.approx(_lin(made[t].predict(features[split.val])[t], y32[split.val, t])
                                                  | {"constant": False}, abs=1e-9)
        np.testing.assert_allclose(r["test_pred"].numpy(), rows[t])


def test_folds_that_would_leave_a_part_empty_are_refused():
    # 2 subjects, 2 grouped folds: each training part holds one subject, nothing left for validation
    with pytest.raises(ValueError, match=r"fold 1 of 2 has no val"):
        kfold(4, folds=2, groups=np.array(["a", "b", "b", "b"]))
    with pytest.raises(ValueError, match=r"has no train"):
        kfold(2, folds=2)
    split = kfold(6, folds=2, groups=np.array(["a", "b", "c", "c", "d", "d"]))[0]
    assert len(split.train) and len(split.val) and len(split.test)
