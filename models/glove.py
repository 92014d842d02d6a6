"""GloVe parameters: word vectors W, context vectors W~ (V, d) and their biases b, b~ (V,).

The prediction for a pair (i, j) is w_i . w~_j + b_i + b~_j (~ log X_ij once trained); the
vectors used downstream are W + W~. Initialisation, by name:
  - `mittens` (the released code's trainer): W, W~ ~ U(+-sqrt(6 / (V + d))) and
    b, b~ ~ U(+-sqrt(6 / (V + 1))) (Glorot uniform on (V, d) and (V, 1) matrices);
  - `stanford` (Stanford `glove`): every parameter, biases included, ~ U(-0.5, 0.5) / (d + 1).
Drawn on the CPU from a seeded generator, so the initial values do not depend on the device.
"""
from __future__ import annotations

import math

import torch
from torch import nn

INITS = ("mittens", "stanford")


class GloVe(nn.Module):
    def __init__(self, *, vocab_size: int, dim: int, init: str = "mittens", seed: int = 0,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.vocab_size, self.dim, self.init = vocab_size, dim, init
        self.W = nn.Parameter(torch.empty(vocab_size, dim, dtype=dtype))        # (V, d) word vectors
        self.W_tilde = nn.Parameter(torch.empty(vocab_size, dim, dtype=dtype))  # (V, d) context vectors
        self.b = nn.Parameter(torch.empty(vocab_size, dtype=dtype))             # (V,)
        self.b_tilde = nn.Parameter(torch.empty(vocab_size, dtype=dtype))       # (V,)
        self.reset_parameters(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        V, d = self.vocab_size, self.dim
        if self.init == "mittens":
            bounds = [math.sqrt(6.0 / (V + d))] * 2 + [math.sqrt(6.0 / (V + 1))] * 2
        else:
            bounds = [0.5 / (d + 1)] * 4
        for p, bound in zip((self.W, self.W_tilde, self.b, self.b_tilde), bounds):
            u = torch.rand(p.shape, generator=g, dtype=torch.float64)
            p.copy_((2 * u - 1) * bound)

    def forward(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """(n,) predictions for the pairs (rows[k], cols[k])."""
        dots = (self.W[rows] * self.W_tilde[cols]).sum(-1)
        return dots + self.b[rows] + self.b_tilde[cols]

    def dense(self) -> torch.Tensor:
        """(V, V) predictions for every pair: W W~^T + b 1^T + 1 b~^T."""
        return torch.addmm(self.b[:, None] + self.b_tilde[None, :], self.W, self.W_tilde.T)

    @torch.no_grad()
    def set_dense_grad(self, grad: torch.Tensor) -> None:
        """Gradients of a loss whose gradient with respect to `dense()` is grad (V, V) (chain rule by hand)."""
        self.W.grad = grad @ self.W_tilde          # (V, d)
        self.W_tilde.grad = grad.T @ self.W        # (V, d)
        self.b.grad = grad.sum(1)                  # (V,)
        self.b_tilde.grad = grad.sum(0)            # (V,)

    def vectors(self) -> torch.Tensor:
        """(V, d) the embedding used downstream: W + W~."""
        return (self.W + self.W_tilde).detach()
