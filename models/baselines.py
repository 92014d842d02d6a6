"""The paper's baselines: random, static features + linear regression, CDM features + SVR.

Each one computes its features with `featurize(dataset)` (data/features.py, through the one sequence
dataset), fits one target on the training rows and predicts `(draws, n)`:
one row for a deterministic model, `draws` rows for `random`, whose metrics are computed per row
and then averaged ("averaged over 100 independent predictions", as the paper reports it; averaging
the 100 draws per item first would give a near-constant prediction instead). `state()` returns
tensors and plain values only, so the checkpoint loads with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import ClassVar, List

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from data.tasks.features import cdm_features, static_features
from models.registry import register_model
from utils.config import above, at_least, each, one_of
from losses.metrics import regression_metrics, selection_score


class RandomBaseline:
    """Predictions sampled (with replacement) from the training labels' empirical distribution."""
    averaged = True  # metrics are averaged over the draws, not selected on validation

    def __init__(self, *, draws: int = 100, seed: int = 0):
        if draws < 1:
            raise ValueError(f"random: draws must be >= 1, got {draws}")
        self.draws, self.rng = draws, np.random.default_rng(seed)

    def fit(self, X, y, X_val=None, y_val=None) -> "RandomBaseline":
        self.labels = np.asarray(y, dtype=np.float64)
        return self

    def predict(self, X) -> np.ndarray:
        return self.rng.choice(self.labels, size=(self.draws, len(X)), replace=True)  # (draws, n)

    def featurize(self, dataset) -> np.ndarray:
        return np.zeros((len(dataset), 0))  # draws ignore the inputs

    def state(self) -> dict:
        return {"labels": torch.from_numpy(self.labels), "draws": self.draws}


class StaticLR:
    """Per-AU mean, mean first difference, standard deviation -> ordinary least squares."""
    averaged = False

    def __init__(self, *, diff: str = "abs"):
        self.diff = diff
        self.model = LinearRegression()

    def featurize(self, dataset) -> np.ndarray:
        return static_features(dataset, diff=self.diff)

    def fit(self, X, y, X_val=None, y_val=None) -> "StaticLR":
        self.model.fit(X, y)
        return self

    def predict(self, X) -> np.ndarray:
        return self.model.predict(X)[None]

    def state(self) -> dict:
        return {"coef": torch.from_numpy(self.model.coef_), "intercept": float(self.model.intercept_)}


class CDMSVR:
    """CDM features -> standardised -> SVR; kernel and C chosen on the validation set by `select`."""
    averaged = False

    def __init__(self, *, C=(0.1, 1, 10, 100, 1000), kernels=("rbf",), epsilon: float = 0.1,
                 select: str = "ccc", max_iter: int = 1_000_000, offset: float = 0.2, levels: int = 4):
        if not C or not kernels:
            raise ValueError("cdm_svr: C and kernels must not be empty")
        self.grid = [(k, float(c)) for k in kernels for c in C]
        self.epsilon, self.select, self.max_iter = epsilon, select, max_iter
        self.offset, self.levels = offset, levels

    def featurize(self, dataset) -> np.ndarray:
        return cdm_features(dataset, offset=self.offset, levels=self.levels)

    def fit(self, X, y, X_val, y_val) -> "CDMSVR":
        best = None
        self.scores = {}
        for kernel, c in self.grid:
            model = make_pipeline(StandardScaler(), SVR(kernel=kernel, C=c, epsilon=self.epsilon,
                                                        max_iter=self.max_iter))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                model.fit(X, y)  # a linear kernel with a large C may stop at max_iter: recorded, not fatal
            score = selection_score(regression_metrics(model.predict(X_val), y_val), self.select)
            converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
            self.scores[f"{kernel}/C={c:g}" + ("" if converged else " (stopped at max_iter)")] = score
            if best is None or score > best[0]:  # ties keep the first setting of the grid
                best = (score, kernel, c, model)
        _, self.kernel, self.C, self.model = best
        return self

    def predict(self, X) -> np.ndarray:
        return self.model.predict(X)[None]

    def state(self) -> dict:
        scaler, svr = self.model[0], self.model[1]
        return {"kernel": self.kernel, "C": self.C, "gamma": float(svr._gamma), "epsilon": self.epsilon,
                "scaler_mean": torch.from_numpy(scaler.mean_), "scaler_scale": torch.from_numpy(scaler.scale_),
                "support_vectors": torch.from_numpy(svr.support_vectors_),
                "dual_coef": torch.from_numpy(svr.dual_coef_), "intercept": torch.from_numpy(svr.intercept_),
                "validation_scores": self.scores}


@dataclass
class RandomConfig:
    draws: int = 100
    RANGES: ClassVar[dict] = {"draws": at_least(1)}   # checked by train.py before a run directory is written


@dataclass
class StaticConfig:
    diff: str = "abs"          # mean |first difference| (default) or the signed mean (see data/tasks/features.py)
    full_sequence: bool = True  # features over the whole sequence, ignoring max_len / stride
    RANGES: ClassVar[dict] = {"diff": one_of("abs", "signed")}


@dataclass
class CDMConfig:
    C: List[float] = field(default_factory=lambda: [0.1, 1.0, 10.0, 100.0, 1000.0])
    kernels: List[str] = field(default_factory=lambda: ["rbf", "linear"])
    epsilon: float = 0.1
    max_iter: int = 1_000_000
    offset: float = 0.2
    levels: int = 4
    full_sequence: bool = True
    RANGES: ClassVar[dict] = {"C": each(above(0)), "kernels": each(one_of("rbf", "linear", "poly", "sigmoid")),
                              "epsilon": at_least(0), "max_iter": at_least(1), "offset": at_least(0),
                              "levels": at_least(2)}


# features come from the frame corpus; `**_context`: what the runner knows about the inputs, unused here
@register_model("random", config=RandomConfig, inputs="frames", kind="baseline")
def random_baseline(*, draws: int = 100, seed: int = 0, **_context) -> RandomBaseline:
    return RandomBaseline(draws=draws, seed=seed)


@register_model("static_lr", config=StaticConfig, inputs="frames", kind="baseline")
def static_lr(*, diff: str = "abs", **_context) -> StaticLR:
    return StaticLR(diff=diff)


@register_model("cdm_svr", config=CDMConfig, inputs="frames", kind="baseline")
def cdm_svr(*, C=(0.1, 1, 10, 100, 1000), kernels=("rbf",), epsilon: float = 0.1, select: str = "ccc",
            max_iter: int = 1_000_000, offset: float = 0.2, levels: int = 4, **_context) -> CDMSVR:
    return CDMSVR(C=list(C), kernels=list(kernels), epsilon=epsilon, select=select, max_iter=max_iter,
                  offset=offset, levels=levels)
