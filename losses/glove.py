"""The GloVe objective: weighted least squares on the logarithm of the co-occurrence counts.

    J = 1/2 * sum over nonzero X_ij of f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2
    f(x) = min(1, (x / x_max)^alpha)

The factor 1/2: the paper (and Pennington et al.) write J without it; both references the project
compares against carry it — `mittens` (the released code's trainer) reports 0.5 * sum f diff^2
and steps along its gradient f * diff * w~ (no factor 2), and Stanford `glove` accumulates
0.5 * f * diff^2 and steps along f * diff * w~ too. We keep it, so that the AdaGrad steps (whose
accumulator starts at a non-zero value and so are not invariant to the scale of the gradient)
are the references' steps.

f(0) = 0, so evaluating on a dense V x V grid with log X set to 0 where X = 0 (as `mittens` does)
gives the same value and gradient as summing over the nonzeros only.
"""
from __future__ import annotations

import torch


def glove_weight(x: torch.Tensor, *, x_max: float = 100.0, alpha: float = 0.75) -> torch.Tensor:
    """f(x) = min(1, (x / x_max)^alpha), elementwise; f(0) = 0."""
    return (x / x_max).clamp(max=1.0).pow(alpha)


def log_counts(x: torch.Tensor) -> torch.Tensor:
    """log x where x > 0, and 0 where x = 0 (those entries carry weight f(0) = 0)."""
    return torch.where(x > 0, x.clamp(min=torch.finfo(x.dtype).tiny).log(), torch.zeros_like(x))


def glove_loss(pred: torch.Tensor, log_x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """1/2 sum weight * (pred - log_x)^2 over all given entries (any shape; all three alike)."""
    diff = pred - log_x
    return 0.5 * (weight * diff * diff).sum()


@torch.no_grad()
def glove_loss_and_grad(pred: torch.Tensor, log_x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(glove_loss, its gradient with respect to pred: weight * (pred - log_x)), without autograd.

    The dense full-batch step uses it: two passes over the V x V grid instead of autograd's six.
    """
    diff = pred - log_x
    grad = weight * diff
    return 0.5 * torch.dot(grad.reshape(-1), diff.reshape(-1)), grad
