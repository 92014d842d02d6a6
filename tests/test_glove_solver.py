"""The converging GloVe solver: objective and gradient against NumPy, the optimum against an
independent L-BFGS (SciPy), the fit's warnings, and tokens that never occur."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from glove.trainer import GloveConfig, GloveTrainer, diagnose, relative_change

NAMES = ("W", "W_tilde", "b", "b_tilde")


def well_posed(V: int = 24, rank: int = 3, density: float = 0.7, seed: int = 0) -> torch.Tensor:
    """Counts whose logs are a planted rank-3 matrix plus noise, a share of them observed: many more
    nonzeros than parameters at d = 3."""
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(V, rank))
    logs = 2.5 + 0.8 * U @ U.T + rng.normal(0.0, 0.3, (V, V)) + rng.normal(0, 0.5, V)[:, None]
    X = np.exp(logs) * (rng.random((V, V)) < density)
    X = np.triu(X) + np.triu(X, 1).T
    return torch.from_numpy(X).to_sparse().coalesce()


def numpy_objective_and_grad(X: np.ndarray, p: dict, l2: float = 0.0) -> tuple[float, dict]:
    """J and its gradient summed nonzero by nonzero, x_max = 100, alpha = 0.75."""
    g = {k: np.zeros_like(v) for k, v in p.items()}
    J = 0.0
    for i, j in zip(*np.nonzero(X)):
        f = min(1.0, (X[i, j] / 100.0) ** 0.75)
        diff = p["W"][i] @ p["W_tilde"][j] + p["b"][i] + p["b_tilde"][j] - np.log(X[i, j])
        J += 0.5 * f * diff ** 2
        g["W"][i] += f * diff * p["W_tilde"][j]
        g["W_tilde"][j] += f * diff * p["W"][i]
        g["b"][i] += f * diff
        g["b_tilde"][j] += f * diff
    J += 0.5 * l2 * ((p["W"] ** 2).sum() + (p["W_tilde"] ** 2).sum())
    g["W"] += l2 * p["W"]
    g["W_tilde"] += l2 * p["W_tilde"]
    return J, g


@functools.lru_cache
def scipy_optimum(seed: int, d: int = 3, starts=(0, 1, 2)) -> float:
    """The lowest J that SciPy's L-BFGS-B reaches on well_posed(seed=seed) from three random starts, float64."""
    X = well_posed(seed=seed).to_dense().numpy()
    V = X.shape[0]
    F = np.minimum(1.0, (X / 100.0) ** 0.75)
    L = np.where(X > 0, np.log(np.where(X > 0, X, 1.0)), 0.0)

    def fun(theta):
        W, C = theta[:V * d].reshape(V, d), theta[V * d:2 * V * d].reshape(V, d)
        b, c = theta[2 * V * d:2 * V * d + V], theta[2 * V * d + V:]
        diff = W @ C.T + b[:, None] + c[None, :] - L
        fd = F * diff
        grad = np.concatenate([(fd @ C).ravel(), (fd.T @ W).ravel(), fd.sum(1), fd.sum(0)])
        return 0.5 * (fd * diff).sum(), grad
    best = np.inf
    for start in starts:
        theta0 = np.random.default_rng(start).uniform(-0.1, 0.1, 2 * V * d + 2 * V)
        res = minimize(fun, theta0, jac=True, method="L-BFGS-B", options=dict(maxiter=5000, gtol=1e-10, ftol=1e-15))
        best = min(best, res.fun)
    return best


def params(model) -> dict:
    return {n: getattr(model, n).detach().cpu().double().numpy().copy() for n in NAMES}


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_objective_and_gradient_equal_numpy(dense, l2):
    X = well_posed(V=9, density=0.6)
    cfg = GloveConfig(dtype="float64", l2=l2, dense_max_entries=10 ** 6 if dense else 0, chunk_nonzeros=7)
    trainer = GloveTrainer(X, dim=4, cfg=cfg)
    assert trainer.dense == dense
    J = trainer.objective(grad=True).item()
    expected, grads = numpy_objective_and_grad(X.to_dense().numpy(), params(trainer.model), l2)
    assert J == pytest.approx(expected, rel=1e-12)
    for n in NAMES:
        np.testing.assert_allclose(getattr(trainer.model, n).grad.numpy(), grads[n], rtol=1e-10, atol=1e-12)
    assert trainer.paper_objective() == pytest.approx(numpy_objective_and_grad(X.to_dense().numpy(),
                                                                               params(trainer.model))[0], rel=1e-12)


@pytest.mark.parametrize("dtype, dense", [("float32", True), ("float64", True), ("float32", False)])
@pytest.mark.parametrize("seed", [0, 1])
def test_converge_reaches_the_optimum(dtype, dense, seed):
    X = well_posed(seed=seed)
    cfg = GloveConfig(dtype=dtype, dense_max_entries=10 ** 6 if dense else 0, converge=True, epochs=3000)
    trainer = GloveTrainer(X, dim=3, cfg=cfg)
    assert trainer.n_parameters < trainer.n_nonzero                                # well posed
    result = trainer.fit(log=None)
    assert result.converged and result.epochs < cfg.epochs
    assert result.final_loss <= 1.05 * scipy_optimum(seed)
    # the J reported is J at the returned parameters (a local optimum may also lie below SciPy's)
    J = numpy_objective_and_grad(X.to_dense().numpy(), params(result.model))[0]
    assert result.final_loss == pytest.approx(J, rel=1e-5 if dtype == "float32" else 1e-12)
    assert diagnose(trainer, result)["warnings"] == []


def test_the_reference_update_rules_stay_short_of_it():
    """The released code's fixed budget ends far above the optimum, and says so."""
    X = well_posed()
    optimum = scipy_optimum(0)
    trainer = GloveTrainer(X, dim=3, cfg=GloveConfig(optimizer="mittens", converge=False, epochs=200))
    result = trainer.fit(log=None)
    assert result.final_loss > 1.5 * optimum and not result.converged
    warnings = diagnose(trainer, result)["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("not converged: a fixed budget")


def test_stopping_rule_not_met_is_a_warning():
    trainer = GloveTrainer(well_posed(), dim=3, cfg=GloveConfig(epochs=5, tol=1e-12, converge=True))
    result = trainer.fit(log=None)
    assert result.epochs == 5 and not result.converged
    assert any("stopping rule was not met" in w for w in diagnose(trainer, result)["warnings"])


@pytest.mark.parametrize("d, fires", [(3, False), (4, True), (5, True)])
def test_over_parameterisation_warning_fires_at_2dV_plus_2V_nonzeros(d, fires):
    # V = 10 tokens with exactly 100 nonzeros (every pair): 2dV + 2V = 80, 100, 120 parameters
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.uniform(1, 200, (10, 10))).to_sparse()
    trainer = GloveTrainer(X, dim=d, cfg=GloveConfig(epochs=3))
    report = diagnose(trainer, trainer.fit(log=None))
    assert report["parameters"] == 2 * d * 10 + 20 and report["nonzeros"] == 100
    assert report["over_parameterised"] == fires
    assert any(w.startswith("over-parameterised") for w in report["warnings"]) == fires


def test_blown_up_norms_are_a_warning():
    trainer = GloveTrainer(well_posed(), dim=3, cfg=GloveConfig(epochs=2))
    result = trainer.fit(log=None)
    assert not any("norms blow up" in w for w in diagnose(trainer, result)["warnings"])
    with torch.no_grad():
        trainer.model.W[5] = 1000.0
    assert any("norms blow up" in w for w in diagnose(trainer, result)["warnings"])


def test_tokens_that_never_occur_stay_zero_and_change_nothing_else():
    X = well_posed(V=12).to_dense()
    grown = torch.zeros(14, 14, dtype=X.dtype)
    keep = torch.tensor([0] + list(range(2, 13)))                             # ids 1 and 13 never occur
    grown[keep[:, None], keep[None, :]] = X
    cfg = GloveConfig(optimizer="mittens", converge=False, epochs=15, dtype="float64")
    small, big = GloveTrainer(X.to_sparse(), dim=3, cfg=cfg), GloveTrainer(grown.to_sparse(), dim=3, cfg=cfg)
    assert big.learned.tolist() == [i not in (1, 13) for i in range(14)] and big.n_parameters == 2 * 4 * 12
    # same start on the shared tokens, then the same steps
    with torch.no_grad():
        for n in NAMES:
            getattr(big.model, n)[keep] = getattr(small.model, n)
    a, b = small.fit(log=None), big.fit(log=None)
    assert a.losses == pytest.approx(b.losses, rel=1e-12)
    for n in NAMES:
        p = getattr(big.model, n)
        torch.testing.assert_close(p[keep], getattr(small.model, n), rtol=1e-12, atol=1e-14)
        assert torch.all(p[[1, 13]] == 0)


def test_relative_change_rule():
    assert relative_change([10.0, 9.0], 2) == float("inf")
    assert relative_change([10.0, 9.0, 8.0], 2) == pytest.approx(2.0 / (2 * 8.0))
    assert relative_change([1.0, 0.0, 0.0], 2) == float("inf") and relative_change([0.0, 0.0, 0.0], 2) == 0.0


def test_l2_shrinks_the_vectors():
    X = well_posed()
    norms = []
    for l2 in (0.0, 1.0):
        trainer = GloveTrainer(X, dim=3, cfg=GloveConfig(l2=l2, dtype="float64", converge=True, epochs=3000))
        result = trainer.fit(log=None)
        norms.append(float(result.model.vectors().norm(dim=1).mean()))
        assert result.final_loss == pytest.approx(trainer.paper_objective())   # J is reported without the penalty
    assert norms[1] < 0.9 * norms[0]


@pytest.mark.gpu
def test_cuda_converges_like_cpu():
    X = well_posed()
    cfg = GloveConfig(dtype="float64", converge=True, epochs=3000)
    cpu = GloveTrainer(X, dim=3, cfg=cfg).fit(log=None)
    gpu = GloveTrainer(X, dim=3, cfg=cfg, device="cuda").fit(log=None)
    assert gpu.final_loss == pytest.approx(cpu.final_loss, rel=1e-3)


def test_auto_is_lbfgs_to_converge_and_the_released_code_otherwise():
    X = well_posed()
    assert GloveTrainer(X, dim=3, cfg=GloveConfig(optimizer="auto", converge=True)).optimizer == "lbfgs"
    auto = GloveTrainer(X, dim=3, cfg=GloveConfig(optimizer="auto", converge=False, epochs=5)).fit(log=None)
    mittens = GloveTrainer(X, dim=3, cfg=GloveConfig(optimizer="mittens", converge=False, epochs=5)).fit(log=None)
    assert auto.losses == mittens.losses
