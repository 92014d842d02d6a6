"""Online image preparation for the AU CNN: mean normalisation and random flip, rotation, skew, scale.

One batched affine warp (affine_grid + grid_sample) on the batch's device, so augmentation costs
the same on CUDA as a convolution layer. Flipping mirrors the face; every AU here is bilateral, so
labels are unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    flip: bool = True
    rotate_deg: float = 10.0
    skew: float = 0.1           # shear, as a fraction
    scale: float = 0.1          # zoom in [1 - scale, 1 + scale]


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, S, S) -> float with each image's mean removed (the paper's mean normalisation)."""
    x = images.float() / 255.0
    return x - x.mean(dim=(1, 2, 3), keepdim=True)


def augment(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Random affine warp of a float batch (B, C, S, S); the generator lives on x's device."""
    b, dev = x.shape[0], x.device
    u = torch.rand(b, 4, generator=generator, device=dev) * 2 - 1            # (B, 4) in [-1, 1]
    angle = u[:, 0] * math.radians(cfg.rotate_deg)
    shear = u[:, 1] * cfg.skew
    zoom = 1.0 + u[:, 2] * cfg.scale
    flip = torch.where((u[:, 3] > 0) & torch.tensor(cfg.flip, device=dev), -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin + shear
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
