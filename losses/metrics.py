"""PCC, RMSE and CCC of one evaluation, computed once over all its predictions (never per batch).

torchmetrics returns NaN (with a warning) for a correlation when the predictions or the targets
are constant; a model that predicts the mean is then reported with correlation 0 and the flag
`constant` set, never NaN. Signed values are reported (the released code reported |PCC|, |CCC|).
CCC is Lin's (1989) estimator, every moment with 1/n:
    ccc = 2 s_pt / (s_p^2 + s_t^2 + (mean(p) - mean(t))^2),  s_pt = mean((p - mean p)(t - mean t))
as the AVEC 2019 depression baseline computes it (Baseline_systems/DDS/train_models.py, ccc_score),
which the paper follows for task B (AVEC's CES scripts instead mix a 1/n covariance with 1/(n - 1)
variances). torchmetrics' CCC uses (n - 1) moments instead, which shrinks
the mean-shift term's weight by (n - 1)/n: e.g. p = [1, 2, 3], t = [2, 3, 4] give 4/7 (Lin) but 2/3.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torchmetrics.functional as tmf

METRICS = ("pcc", "rmse", "ccc")
HIGHER_IS_BETTER = {"pcc": True, "ccc": True, "rmse": False, "mse": False}


def _constant(x: torch.Tensor) -> torch.Tensor:
    """(n, D) -> (D,) bool: the column takes one value (to a relative 1e-12)."""
    spread = x.max(0).values - x.min(0).values
    return (spread <= 1e-12 * x.abs().max(0).values.clamp(min=1.0)) | (x.shape[0] < 2)


def _lin_ccc(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(n, D) float64 each -> (D,) Lin's CCC with 1/n moments (NaN where both are constant and equal)."""
    mp, mt = p.mean(0), t.mean(0)
    cov = ((p - mp) * (t - mt)).mean(0)
    return 2 * cov / ((p - mp).pow(2).mean(0) + (t - mt).pow(2).mean(0) + (mp - mt) ** 2)


def regression_metrics_many(preds, target) -> list[dict]:
    """Metrics of D predictions of the same targets at once: preds (D, n), target (n,)."""
    p = torch.as_tensor(np.asarray(preds, dtype=np.float64))
    t = torch.as_tensor(np.asarray(target, dtype=np.float64)).reshape(-1)
    if p.dim() != 2 or p.shape[1] != len(t) or len(t) == 0:
        raise ValueError(f"metrics need predictions (D, n) and targets (n,), n > 0; got {tuple(p.shape)} and {len(t)}")
    p = p.T.contiguous()                                    # (n, D): torchmetrics' multi-output layout
    t = t[:, None].expand_as(p).contiguous()
    D = p.shape[1]
    rmse = tmf.mean_squared_error(p, t, squared=False, num_outputs=D).reshape(D)
    constant = _constant(p) | _constant(t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pcc = tmf.pearson_corrcoef(p, t).reshape(D) if D > 1 or not constant.all() else torch.zeros(D)
    ccc = _lin_ccc(p, t)
    constant |= ~(torch.isfinite(pcc) & torch.isfinite(ccc))  # near-constant: numerically a constant
    pcc, ccc = torch.where(constant, 0.0, pcc), torch.where(constant, 0.0, ccc)
    return [{"pcc": float(pcc[d]), "rmse": float(rmse[d]), "ccc": float(ccc[d]), "constant": bool(constant[d])}
            for d in range(D)]


def regression_metrics(pred, target) -> dict:
    """{"pcc", "rmse", "ccc", "constant"} as Python floats/bool; pred and target are 1-D."""
    return regression_metrics_many(np.asarray(pred, dtype=np.float64).reshape(1, -1), target)[0]


def selection_score(metrics: dict, select: str) -> float:
    """Higher is better, whichever metric selects (`mse`/`rmse` are negated)."""
    if select not in HIGHER_IS_BETTER:
        raise ValueError(f"select must be one of {sorted(HIGHER_IS_BETTER)}, got {select!r}")
    key = "rmse" if select == "mse" else select
    return metrics[key] if HIGHER_IS_BETTER[select] else -metrics[key]
