"""Static and CDM features against a plain computation written out here; the baselines' protocol."""
import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from data.tasks.features import cdm_features, quantise_1d, static_features
from data.tasks.sequences import SequenceDataset
from models.baselines import RandomBaseline
from models.registry import create_model
from training import experiment
from training.protocols import Split


def _dataset(seqs, **options):
    lengths = [len(s) for s in seqs]
    return SequenceDataset(values=torch.tensor(np.concatenate(seqs), dtype=torch.float32),
                           offsets=torch.tensor(np.concatenate([[0], np.cumsum(lengths)])), ids=[str(i) for i in range(len(seqs))],
                           targets=torch.zeros(len(seqs), 1), groups=torch.zeros(len(seqs)), **options)


SEQS = [np.array([[0.0, 1.0], [0.5, 3.0], [2.0, 3.0], [1.0, 0.0]]),
        np.array([[1.0, 2.0], [1.0, 2.0], [4.0, 0.5]]),
        np.array([[2.5, 0.0]])]


def test_static_features_plain():
    for diff in ("abs", "signed"):
        got = static_features(_dataset(SEQS), diff=diff)
        for x, row in zip(SEQS, got):
            T, n = x.shape
            for a in range(n):
                mean = sum(x[t, a] for t in range(T)) / T
                steps = [x[t + 1, a] - x[t, a] for t in range(T - 1)]
                steps = [abs(s) for s in steps] if diff == "abs" else steps
                mdiff = sum(steps) / len(steps) if steps else 0.0
                std = (sum((x[t, a] - mean) ** 2 for t in range(T)) / T) ** 0.5
                assert row[a] == pytest.approx(mean) and row[n + a] == pytest.approx(mdiff)
                assert row[2 * n + a] == pytest.approx(std)


def test_static_features_respect_crop_and_stride():
    x = np.arange(20, dtype=float).reshape(10, 2)
    got = static_features(_dataset([x], max_len=3, stride=2))[0]
    kept = x[4::2]  # the last 3 * 2 frames, every 2nd
    assert got[:2] == pytest.approx(kept.mean(0))


def _plain_cdm(level, L=4):
    """The five CDM features, loop by loop."""
    T = len(level)
    active = [l > 0 for l in level]
    ratio = sum(active) / T
    act_levels = [l for l in level if l > 0]
    act_level = (sum(act_levels) / len(act_levels)) / (L - 1) if act_levels else 0.0
    runs, run = [], 0
    for a in active + [False]:
        if a:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    length = sum(runs) / len(runs) if runs else 0.0
    trans = [(level[t], level[t + 1]) for t in range(T - 1)]
    changes = [(a, b) for a, b in trans if a != b]
    not_idle = [(a, b) for a, b in trans if not (a == 0 and b == 0)]
    change = len(changes) / len(not_idle) if not_idle else 0.0
    fast = sum(abs(a - b) > 1 for a, b in changes) / len(changes) if changes else 0.0
    return [ratio, act_level, length, change, fast]


def test_cdm_features_plain():
    # values (exact in float32) chosen so that after x - 0.25 clipped at 0 each AU has <= 4 distinct
    # values: the levels are then the ranks of the values, and the features follow by hand
    a = np.array([0.125, 0.125, 1.25, 2.25, 2.25, 0.0, 3.25, 0.25, 1.25, 1.25])
    b = np.array([0.0, 4.25, 0.0, 4.25, 0.0, 0.0, 0.0, 2.25, 0.0, 0.0])
    x = np.stack([a, b], 1)
    got = cdm_features(_dataset([x]), offset=0.25)[0].reshape(5, 2)  # feature-major
    for au, signal in enumerate((a, b)):
        clipped = [max(v - 0.25, 0.0) for v in signal]
        ranks = {v: i for i, v in enumerate(sorted(set(clipped)))}
        level = [ranks[v] for v in clipped]
        assert got[:, au] == pytest.approx(_plain_cdm(level))


def test_quantise_1d_orders_levels_by_intensity():
    rng = np.random.default_rng(0)
    centres = np.array([3.0, 0.0, 1.0, 2.0])
    which = rng.integers(0, 4, 400)
    v = centres[which] + rng.normal(0, 0.05, 400)
    level = quantise_1d(v)
    assert (level == np.argsort(np.argsort(centres))[which]).all()  # level = rank of the true centre


def test_random_draws_follow_the_training_labels():
    """Each of the 100 draws samples every item independently from the training labels' empirical
    distribution: labels 1 (a quarter) and 7 (three quarters) must appear in those proportions,
    overall and per item, and no two draws may be the same row."""
    y = np.array([1.0] * 10 + [7.0] * 30)
    model = create_model("random", draws=100, seed=1).fit(np.zeros((40, 0)), y)
    pred = model.predict(np.zeros((300, 0)))
    assert pred.shape == (100, 300) and set(np.unique(pred)) == {1.0, 7.0}
    share = (pred == 7.0).mean()                          # 30 000 Bernoulli(0.75): sd 0.0025
    assert abs(share - 0.75) < 0.01
    per_item = (pred == 7.0).mean(0)                      # 100 draws an item: sd 0.043
    assert abs(per_item.mean() - 0.75) < 0.01 and per_item.std() == pytest.approx(math.sqrt(0.75 * 0.25 / 100), rel=0.2)
    assert len({row.tobytes() for row in pred}) == 100
    assert model.averaged


def _lin(p, t):
    p, t = np.asarray(p, float), np.asarray(t, float)
    pc, tc = p - p.mean(), t - t.mean()
    return {"pcc": (pc * tc).sum() / math.sqrt((pc ** 2).sum() * (tc ** 2).sum()),
            "rmse": math.sqrt(((p - t) ** 2).mean()),
            "ccc": 2 * (pc * tc).mean() / ((pc ** 2).mean() + (tc ** 2).mean() + (p.mean() - t.mean()) ** 2)}


def test_runner_averages_the_random_baselines_metrics_over_its_draws(monkeypatch):
    """training/experiment.py reports the random baseline as the mean over its 100 draws of each
    draw's metrics (the paper's "averaged from 100 independent predictions"), selecting nothing.
    Expected values: the draws the model really made (recorded), scored with the formulas above and
    averaged here; and, from the baseline's definition, E[MSE] = E[(p - y)^2] with p drawn from the
    training labels, and a PCC near 0."""
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 25, n).astype(float)
    split = Split(train=np.arange(0, 100), val=np.arange(100, 200), test=np.arange(200, 400))
    ds = SequenceDataset(values=torch.zeros(n, 1), offsets=torch.arange(n + 1), ids=[str(i) for i in range(n)],
                         targets=torch.from_numpy(y).float()[:, None], groups=torch.zeros(n))
    drawn = []
    real_predict = RandomBaseline.predict
    monkeypatch.setattr(RandomBaseline, "predict", lambda self, X: drawn.append(real_predict(self, X)) or drawn[-1])
    cfg = OmegaConf.create({"task": "task_b", "model": "random", "seed": 3, "random": {"draws": 100},
                            "task_b": {"select": "ccc"}})
    r = experiment.fit_baseline_split(cfg, np.zeros((n, 0)), ds, split, 0)["targets"][0]
    val_draws, test_draws = drawn                                              # (100, n_val), (100, n_test)
    assert test_draws.shape == (100, 200) and r["selected"] is None
    for got, draws, items in ((r["test_selected"], test_draws, split.test), (r["val_selected"], val_draws, split.val)):
        per_draw = [_lin(d, y[items]) for d in draws]
        for m in ("pcc", "rmse", "ccc"):
            assert got[m] == pytest.approx(np.mean([x[m] for x in per_draw]), abs=1e-9)
        assert got["constant"] is False
    np.testing.assert_allclose(r["test_pred"].numpy(), test_draws.mean(0))
    # the definition: E[(p - y)^2] over p ~ training labels, averaged over the test items
    train = y[split.train]
    mse = np.mean([np.mean((train - t) ** 2) for t in y[split.test]])
    assert r["test_selected"]["rmse"] == pytest.approx(math.sqrt(mse), rel=0.02)
    assert abs(r["test_selected"]["pcc"]) < 0.03                               # sd 1/sqrt(200 * 100) = 0.007
    # metrics averaged, not predictions: the per-item mean of the draws sits near the training mean,
    # whose RMSE (about sqrt(var)) is well below a draw's (about sqrt(2 var))
    assert _lin(test_draws.mean(0), y[split.test])["rmse"] < 0.8 * r["test_selected"]["rmse"]


def test_static_lr_is_least_squares_on_the_features():
    seqs = [np.random.default_rng(i).random((5 + i, 2)) for i in range(10)]
    X = static_features(_dataset(seqs))
    y = X @ np.arange(1, 7) + 0.5
    model = create_model("static_lr").fit(X, y)
    assert model.predict(X)[0] == pytest.approx(y)


def test_cdm_svr_picks_setting_on_validation():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X[:, 0] * 2 + rng.normal(0, 0.1, 60)
    model = create_model("cdm_svr", C=[0.001, 10], kernels=["linear"]).fit(X[:40], y[:40], X[40:], y[40:])
    assert model.C == 10 and set(model.scores) == {"linear/C=0.001", "linear/C=10"}
    state = model.state()
    assert state["kernel"] == "linear" and state["support_vectors"].shape[1] == 3


def _plain_lloyd(v, k=4):
    distinct = sorted(set(v.tolist()))
    centres = list(np.quantile(distinct, [(j + 0.5) / k for j in range(k)]))
    while True:
        label = [min(range(k), key=lambda j: abs(x - centres[j])) for x in v]
        new = [np.mean([x for x, l in zip(v, label) if l == j]) if j in label else centres[j] for j in range(k)]
        if new == centres:
            return np.array(label)
        centres = new


def test_quantise_1d_is_lloyd_from_quantiles():
    for seed in range(5):
        v = np.maximum(np.random.default_rng(seed).gamma(0.7, 1.0, 80) - 0.2, 0)
        assert (quantise_1d(v) == _plain_lloyd(v)).all()
