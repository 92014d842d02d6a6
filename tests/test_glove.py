"""GloVe loss, AdaGrad variants and trainer against plain NumPy references; resumption."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from losses.glove import glove_loss, glove_loss_and_grad, glove_weight, log_counts
from models.glove import GloVe
from glove.trainer import GloveAdaGrad, GloveConfig, GloveTrainer
from utils.config import ConfigError
from utils.runs import RunDirError

NAMES = ("W", "W_tilde", "b", "b_tilde")


def small_matrix(V: int = 7, seed: int = 0) -> torch.Tensor:
    """Symmetric counts with zeros, fractions and entries above x_max = 100."""
    rng = np.random.default_rng(seed)
    X = rng.gamma(0.6, 40.0, (V, V)) * (rng.random((V, V)) < 0.6)
    X = X + X.T
    X[0, 1] = X[1, 0] = 250.0
    return torch.from_numpy(X).to_sparse().coalesce()


def config(**kw) -> GloveConfig:
    """The reference update rules (mittens AdaGrad, a fixed number of epochs) unless asked otherwise."""
    return dataclasses.replace(GloveConfig(dtype="float64", log_every=1, optimizer="mittens", converge=False), **kw)


def params(model: GloVe) -> dict[str, np.ndarray]:
    return {n: getattr(model, n).detach().cpu().numpy().copy() for n in NAMES}


def numpy_loss(X: np.ndarray, p: dict, x_max=100.0, alpha=0.75) -> float:
    """Plain loop over the nonzeros."""
    total = 0.0
    for i, j in zip(*np.nonzero(X)):
        f = min(1.0, (X[i, j] / x_max) ** alpha)
        diff = p["W"][i] @ p["W_tilde"][j] + p["b"][i] + p["b_tilde"][j] - np.log(X[i, j])
        total += 0.5 * f * diff ** 2
    return total


def numpy_adagrad_steps(X: np.ndarray, p: dict, steps: int, *, variant="mittens", lr=0.05, x_max=100.0,
                        alpha=0.75, clip=100.0):
    """Dense full-batch GloVe as the `mittens` package does it (np_mittens.py), one state per step."""
    p = {k: v.copy() for k, v in p.items()}
    weights = (np.minimum(X, x_max) / x_max) ** alpha
    log_x = np.where(X > 0, np.log(np.where(X > 0, X, 1.0)), 0.0)
    acc = {k: np.full_like(v, 0.1 if variant == "mittens" else 1.0) for k, v in p.items()}
    history = []
    for _ in range(steps):
        diffs = p["W"] @ p["W_tilde"].T + p["b"][:, None] + p["b_tilde"][None, :] - log_x
        error = (0.5 * weights * diffs ** 2).sum()
        wd = weights * diffs
        grads = {"W": wd @ p["W_tilde"], "W_tilde": wd.T @ p["W"], "b": wd.sum(1), "b_tilde": wd.sum(0)}
        for k, g in grads.items():
            if variant == "mittens":
                acc[k] += g ** 2
                p[k] -= lr * g / np.sqrt(acc[k])
            else:
                u = lr * np.clip(g, -clip, clip)
                p[k] -= u / np.sqrt(acc[k])
                acc[k] += u ** 2
        history.append((error, {k: v.copy() for k, v in p.items()}))
    return history


def test_weighting_function():
    x = torch.tensor([0.0, 1.0, 50.0, 100.0, 1e4], dtype=torch.float64)
    expected = np.minimum(1.0, (x.numpy() / 100.0) ** 0.75)
    assert np.allclose(glove_weight(x).numpy(), expected, rtol=0, atol=1e-15)
    assert glove_weight(x)[0] == 0 and glove_weight(x, x_max=10, alpha=0.5)[1] == pytest.approx(10 ** -0.5)


def test_loss_equals_numpy_on_the_same_parameters():
    X = small_matrix()
    model = GloVe(vocab_size=7, dim=3, seed=4, dtype=torch.float64)
    expected = numpy_loss(X.to_dense().numpy(), params(model))
    rows, cols = X.indices()
    x = X.values()
    sparse = glove_loss(model(rows, cols), log_counts(x), glove_weight(x))
    dense_x = X.to_dense()
    dense = glove_loss(model.dense(), log_counts(dense_x), glove_weight(dense_x))
    assert sparse.item() == pytest.approx(expected, rel=1e-12)
    assert dense.item() == pytest.approx(expected, rel=1e-12)


def test_hand_written_dense_gradient_equals_autograd():
    X = small_matrix().to_dense()
    model = GloVe(vocab_size=7, dim=3, seed=2, dtype=torch.float64)
    glove_loss(model.dense(), log_counts(X), glove_weight(X)).backward()
    expected = {n: getattr(model, n).grad.clone() for n in NAMES}
    loss, grad = glove_loss_and_grad(model.dense(), log_counts(X), glove_weight(X))
    model.set_dense_grad(grad)
    assert loss.item() == pytest.approx(glove_loss(model.dense(), log_counts(X), glove_weight(X)).item(), rel=1e-14)
    for n in NAMES:
        torch.testing.assert_close(getattr(model, n).grad, expected[n], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("variant", ["mittens", "stanford"])
def test_adagrad_steps_equal_numpy_step_for_step(variant):
    X = small_matrix()
    cfg = config(optimizer=variant, grad_clip=0.5 if variant == "stanford" else 100.0)  # 0.5: clipping happens
    trainer = GloveTrainer(X, dim=4, cfg=cfg)
    assert trainer.dense
    start = params(trainer.model)
    history = numpy_adagrad_steps(X.to_dense().numpy(), start, 12, variant=variant, clip=cfg.grad_clip)
    for error, expected in history:
        loss = trainer.run_epoch().item()
        assert loss == pytest.approx(error, rel=1e-12)
        got = params(trainer.model)
        for k in NAMES:
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-11, atol=1e-13)


def test_mittens_variant_is_torch_adagrad_without_epsilon():
    X = small_matrix()
    a, b = (GloVe(vocab_size=7, dim=3, seed=1, dtype=torch.float64) for _ in range(2))
    opt_a = GloveAdaGrad(a.parameters(), lr=0.05)
    opt_b = torch.optim.Adagrad(b.parameters(), lr=0.05, initial_accumulator_value=0.1, eps=0)
    dense_x = X.to_dense()
    for _ in range(5):
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            glove_loss(model.dense(), log_counts(dense_x), glove_weight(dense_x)).backward()
            opt.step()
    for n in NAMES:
        torch.testing.assert_close(getattr(a, n), getattr(b, n), rtol=1e-13, atol=1e-15)


def test_sparse_full_batch_and_one_big_minibatch_equal_the_dense_path():
    X = small_matrix()
    dense = GloveTrainer(X, dim=3, cfg=config())
    chunked = GloveTrainer(X, dim=3, cfg=config(dense_max_entries=0, chunk_nonzeros=5))
    one_batch = GloveTrainer(X, dim=3, cfg=config(batch_size=10_000))
    assert dense.dense and not chunked.dense and not one_batch.full_batch
    for _ in range(6):
        losses = [t.run_epoch().item() for t in (dense, chunked, one_batch)]
        assert losses[1] == pytest.approx(losses[0], rel=1e-12) and losses[2] == pytest.approx(losses[0], rel=1e-12)
    for n in NAMES:
        for other in (chunked, one_batch):
            torch.testing.assert_close(getattr(other.model, n), getattr(dense.model, n), rtol=1e-12, atol=1e-13)


def test_minibatches_are_shuffled_reproducibly_and_fit():
    X = small_matrix(V=12, seed=3)
    runs = [GloveTrainer(X, dim=5, cfg=config(batch_size=7, epochs=150)).fit(log=None) for _ in range(2)]
    assert torch.equal(runs[0].model.W, runs[1].model.W)
    assert runs[0].losses[-1] < 0.05 * runs[0].losses[0]


def test_full_batch_training_fits_a_low_rank_log_matrix():
    rng = np.random.default_rng(0)
    U = rng.normal(size=(20, 3))
    X = torch.from_numpy(np.exp(1.0 + 0.5 * U @ U.T)).to_sparse()
    result = GloveTrainer(X, dim=8, cfg=config(epochs=300, lr=0.2)).fit(log=None)
    assert result.losses[-1] < 1e-3 * result.losses[0]
    assert all(b <= a * (1 + 1e-9) for a, b in zip(result.losses[50:], result.losses[51:]))


def test_initialisations():
    V, d = 1003, 25
    m = GloVe(vocab_size=V, dim=d, init="mittens", seed=0)
    s = GloVe(vocab_size=V, dim=d, init="stanford", seed=0)
    assert m.W.abs().max() <= np.sqrt(6 / (V + d)) and m.W.abs().max() > 0.9 * np.sqrt(6 / (V + d))
    assert m.b.abs().max() <= np.sqrt(6 / (V + 1))
    assert all(getattr(s, n).abs().max() <= 0.5 / (d + 1) for n in NAMES)
    assert torch.equal(GloVe(vocab_size=V, dim=d, seed=0).W, m.W) and not torch.equal(m.W, m.W_tilde)
    assert torch.equal(m.vectors(), (m.W + m.W_tilde).detach())


def test_tolerance_stops_early():
    result = GloveTrainer(small_matrix(), dim=3, cfg=config(epochs=5000, tol=1e-3, window=4, converge=True)).fit(log=None)
    assert result.converged and result.epochs < 5000 and len(result.losses) == result.epochs
    L = result.losses
    assert (L[-5] - L[-1]) <= 4 * 1e-3 * L[-1] < (L[-6] - L[-2])     # the rule holds now and not one epoch before


@pytest.mark.parametrize("optimizer, batch_size", [("mittens", 0), ("mittens", 9), ("lbfgs", 0), ("adam", 9)])
def test_interrupted_fit_resumes_to_the_same_parameters(tmp_path, optimizer, batch_size):
    X = small_matrix()
    cfg = config(epochs=20, checkpoint_every=3, batch_size=batch_size, optimizer=optimizer)
    straight = GloveTrainer(X, dim=4, cfg=cfg).fit(log=None)

    def crash(epoch):
        if epoch == 14:
            raise KeyboardInterrupt
    ckpt = tmp_path / "glove.pt"
    with pytest.raises(KeyboardInterrupt):
        GloveTrainer(X, dim=4, cfg=cfg).fit(checkpoint=ckpt, on_epoch=crash, log=None)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 12
    resumed = GloveTrainer(X, dim=4, cfg=cfg).fit(checkpoint=ckpt, tb_dir=tmp_path / "tb", log=None)
    assert resumed.resumed_from == 12 and resumed.epochs == 20
    assert resumed.losses == straight.losses
    for n in NAMES:
        assert torch.equal(getattr(resumed.model, n), getattr(straight.model, n))


def test_checkpoint_of_another_run_is_refused(tmp_path):
    ckpt = tmp_path / "glove.pt"
    GloveTrainer(small_matrix(), dim=4, cfg=config(epochs=3), fingerprint="aaa").fit(checkpoint=ckpt, log=None)
    with pytest.raises(RunDirError, match="fingerprint"):
        GloveTrainer(small_matrix(), dim=4, cfg=config(epochs=3), fingerprint="bbb").fit(checkpoint=ckpt, log=None)
    with pytest.raises(RunDirError, match="config"):
        GloveTrainer(small_matrix(), dim=4, cfg=config(epochs=3, lr=0.1), fingerprint="aaa").fit(checkpoint=ckpt)


def test_loss_curve_goes_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    GloveTrainer(small_matrix(), dim=3, cfg=config(epochs=7, log_every=3)).fit(tb_dir=tmp_path, log=None, tag="g")
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [e.step for e in events.Scalars("g/loss")] == list(range(1, 8))


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="glove.optimizer"):
        GloveTrainer(small_matrix(), dim=3, cfg=config(optimizer="sgd"))
    with pytest.raises(ConfigError, match="glove.batch_size"):
        GloveTrainer(small_matrix(), dim=3, cfg=config(optimizer="lbfgs", batch_size=8))
    with pytest.raises(ConfigError, match="glove.lr"):
        GloveTrainer(small_matrix(), dim=3, cfg=config(lr=0.0))


@pytest.mark.gpu
def test_cuda_steps_match_cpu():
    X = small_matrix(V=50, seed=5)
    cpu = GloveTrainer(X, dim=16, cfg=config())
    gpu = GloveTrainer(X, dim=16, cfg=config(), device="cuda")
    for _ in range(20):
        assert gpu.run_epoch().item() == pytest.approx(cpu.run_epoch().item(), rel=1e-10)
    for n in NAMES:
        torch.testing.assert_close(getattr(gpu.model, n).cpu(), getattr(cpu.model, n), rtol=1e-9, atol=1e-11)
