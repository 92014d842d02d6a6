"""PCA fitted in torch (on the device of its data), kept as buffers so it saves with the model.

    pca = PCA(dim=4096, components=1024)
    pca.fit(features)                  # (N, 4096); covariance accumulated in float64 chunks, then eigh
    reduced = pca(features)            # (N, 1024)

The covariance route (D x D, summed chunk by chunk) scales to any N, where an SVD of the (N, D)
matrix would need it all in memory. Signs are fixed (each component's largest entry positive) so a
fit is reproducible whatever the eigensolver returns.
"""
from __future__ import annotations

import torch
from torch import nn


class PCA(nn.Module):
    def __init__(self, *, dim: int, components: int):
        super().__init__()
        if not 0 < components <= dim:
            raise ValueError(f"PCA: components must be in 1..{dim}, got {components}")
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("components", torch.zeros(components, dim))   # rows: principal axes
        self.register_buffer("explained", torch.zeros(components))          # share of variance of each
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, *, chunk: int = 65536) -> "PCA":
        n, d = x.shape
        k = self.components.shape[0]
        if d != self.mean.shape[0] or n < 2:
            raise ValueError(f"PCA.fit: need (N >= 2, {self.mean.shape[0]}) features, got {tuple(x.shape)}")
        mean = x.double().mean(0)
        cov = torch.zeros(d, d, dtype=torch.float64, device=x.device)
        for a in range(0, n, chunk):
            xc = x[a:a + chunk].double() - mean
            cov += xc.T @ xc
        cov /= n - 1
        values, vectors = torch.linalg.eigh(cov)                 # ascending
        values, vectors = values.flip(0)[:k], vectors.flip(1)[:, :k].T   # (k,), (k, d)
        sign = torch.sign(vectors.gather(1, vectors.abs().argmax(1, keepdim=True)))
        self.mean.copy_(mean)
        self.components.copy_(vectors * sign)
        self.explained.copy_(values.clamp(min=0) / cov.diagonal().sum().clamp(min=1e-30))
        self.fitted.fill_(True)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (..., components)."""
        if not bool(self.fitted):
            raise RuntimeError("PCA used before fit()")
        return (x - self.mean.to(x.dtype)) @ self.components.to(x.dtype).T
