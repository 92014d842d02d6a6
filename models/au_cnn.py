"""Fung & McDuff's AU detector: a VGG13-style CNN on 64x64 grayscale faces (their Table I).

    conv3x3 64-64 | pool 2x2, dropout 0.25      (B, 64, 32, 32)
    conv3x3 128-128 | pool, dropout             (B, 128, 16, 16)
    conv3x3 256-256-256 | pool, dropout         (B, 256, 8, 8)
    conv3x3 256-256-256 | pool, dropout         (B, 256, 4, 4)
    FC 1024 + ReLU + dropout 0.5, FC 1024 + ReLU + dropout 0.5, FC n_outputs (logits; sigmoid in the loss)

`width` scales every channel count (1.0 = the paper) so the CPU demo can run the same architecture
narrower; `fc` is the width of the two fully connected layers. Pretraining has 17 outputs;
fine-tuning replaces the last layer (`replace_head(12)`), as the paper does. Plain torch: the
torchvision wheel here is a CUDA build that does not import with the CPU torch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.registry import register_model


@dataclass
class AUCNNConfig:
    width: float = 1.0          # channel multiplier; 1.0 = Table I
    fc: int = 1024              # units of FC5 and FC6
    in_channels: int = 1        # grayscale
    image_size: int = 64
    conv_dropout: float = 0.25
    fc_dropout: float = 0.5


BLOCKS = ((64, 2), (128, 2), (256, 3), (256, 3))   # (channels, convolutions) per block


class AUCNN(nn.Module):
    def __init__(self, *, n_outputs: int, width: float = 1.0, fc: int = 1024, in_channels: int = 1,
                 image_size: int = 64, conv_dropout: float = 0.25, fc_dropout: float = 0.5):
        super().__init__()
        if image_size % 16:
            raise ValueError(f"au_cnn: image_size={image_size} must be a multiple of 16 (four 2x2 pools)")
        layers, c_in = [], in_channels
        for channels, convs in BLOCKS:
            c_out = max(4, int(round(channels * width)))
            for _ in range(convs):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]
                c_in = c_out
            layers += [nn.MaxPool2d(2), nn.Dropout(conv_dropout)]
        self.features = nn.Sequential(*layers)
        side = image_size // 16
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(c_in * side * side, fc), nn.ReLU(inplace=True),
                                   nn.Dropout(fc_dropout), nn.Linear(fc, fc), nn.ReLU(inplace=True),
                                   nn.Dropout(fc_dropout))
        self.head = nn.Linear(fc, n_outputs)
        self.image_size, self.in_channels = image_size, in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # (B, C, S, S) -> (B, n_outputs) logits
        return self.head(self.trunk(self.features(x)))

    def replace_head(self, n_outputs: int, *, generator: torch.Generator | None = None) -> None:
        """A fresh output layer (fine-tuning), on the device of the old one."""
        old = self.head
        new = nn.Linear(old.in_features, n_outputs)
        if generator is not None:   # deterministic init independent of the global RNG
            bound = 1 / old.in_features ** 0.5
            with torch.no_grad():
                new.weight.copy_(torch.rand(new.weight.shape, generator=generator) * 2 * bound - bound)
                new.bias.copy_(torch.rand(new.bias.shape, generator=generator) * 2 * bound - bound)
        self.head = new.to(old.weight.device)


@register_model("au_cnn", config=AUCNNConfig, inputs="images", kind="au_detector")
def au_cnn(*, n_outputs: int, width: float = 1.0, fc: int = 1024, in_channels: int = 1, image_size: int = 64,
           conv_dropout: float = 0.25, fc_dropout: float = 0.5, **_context) -> AUCNN:
    return AUCNN(n_outputs=n_outputs, width=width, fc=fc, in_channels=in_channels, image_size=image_size,
                 conv_dropout=conv_dropout, fc_dropout=fc_dropout)
