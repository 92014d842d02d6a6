"""Chu, De la Torre & Cohn's hybrid network for multi-label AU detection: CNN + stacked LSTMs + fusion.

    faces (B, C, 176, 176) -> ChuCNN -> fc8 logits (B, L)          spatial, per frame
                                     -> fc7, L2-normalised (B, 4096) -> PCA (B, 1024)
    PCA features (B, T, 1024) -> StackedLSTM (3 x 256, dropout 0.5) -> scores in [-1, 1] (B, T, L)
    [norm(CNN logits) ; norm(LSTM scores)] (B, T, 2L) -> ScoreFusion (FC, FC) -> logits (B, T, L)

The three parts train one after the other, as in the paper (training them in one go is its future
work): the CNN on frames with the masked multi-label cross-entropy, the LSTM on its PCA features
with the max-margin loss, the fusion on both frozen parts' scores (losses/au_detection.py).

The CNN (the paper's Fig. 2(b) is a figure we do not have, so this follows AlexNet, which the text
says it modifies, at its stated sizes): conv 96 k11 s4, LRN, pool; conv 256 k5, LRN, pool;
conv 384, 384, 256 k3, pool; fc6 4096, fc7 4096 (dropout 0.5 each); fc8 L. On 176 x 176 crops the
last pool leaves 256 x 4 x 4 = 4096 inputs to fc6. `variant="small"`, for the CPU: the same eight
layers on 56 x 56 crops of 64 x 64 faces with 24-64-96-96-64 channels and fc 256.

The fusion's "two fully connected layers with shared parameters" are read as shared across frames
(the same two layers applied at every time step, late fusion per frame): the paper gives no width,
`hidden` defaults to 64.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.pca import PCA
from models.registry import register_model

# conv layers (out channels, kernel, stride, padding, LRN + max-pool after), fc width, crop, face size
CNN_VARIANTS = {
    "paper": dict(convs=[(96, 11, 4, 2, "lrn_pool"), (256, 5, 1, 2, "lrn_pool"), (384, 3, 1, 1, ""),
                         (384, 3, 1, 1, ""), (256, 3, 1, 1, "pool")], fc=4096, crop=176, face=200),
    "small": dict(convs=[(24, 5, 2, 2, "lrn_pool"), (64, 5, 1, 2, "lrn_pool"), (96, 3, 1, 1, ""),
                         (96, 3, 1, 1, ""), (64, 3, 1, 1, "pool")], fc=256, crop=56, face=64),
}


class ChuCNN(nn.Module):
    """The multi-label CNN; `forward` gives fc8 logits, `features` the L2-normalised fc7."""

    def __init__(self, *, n_aus: int = 12, in_channels: int = 3, variant: str = "paper", dropout: float = 0.5):
        super().__init__()
        if variant not in CNN_VARIANTS:
            raise ValueError(f"ChuCNN: variant must be one of {sorted(CNN_VARIANTS)}, got {variant!r}")
        spec = CNN_VARIANTS[variant]
        self.crop, self.face, self.fc_dim = spec["crop"], spec["face"], spec["fc"]
        layers, c = [], in_channels
        for out, k, s, p, after in spec["convs"]:
            layers += [nn.Conv2d(c, out, k, s, p), nn.ReLU(inplace=True)]
            if "lrn" in after:
                layers.append(nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))   # AlexNet's values
            if "pool" in after:
                layers.append(nn.MaxPool2d(3, 2))
            c = out
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, in_channels, self.crop, self.crop)).numel()
        self.fc6 = nn.Linear(flat, self.fc_dim)
        self.fc7 = nn.Linear(self.fc_dim, self.fc_dim)
        self.fc8 = nn.Linear(self.fc_dim, n_aus)
        self.drop = nn.Dropout(dropout)
        for m in self.modules():   # He initialisation: with PyTorch's default, 8 ReLU layers and two LRNs
            if isinstance(m, (nn.Conv2d, nn.Linear)):   # shrink the signal so much that training stalls
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def _fc7(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(F.relu(self.fc6(self.convs(x).flatten(1))))
        return F.relu(self.fc7(h))                                   # (B, fc) before its dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, crop, crop) -> fc8 logits (B, L)."""
        return self.fc8(self.drop(self._fc7(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, crop, crop) -> L2-normalised fc7 (B, fc): the paper's "fc7" representation."""
        return F.normalize(self._fc7(x), dim=1)


class StackedLSTM(nn.Module):
    """Layers of LSTMs over per-frame features, dropout on the input, between layers and on the last
    layer's output; per-frame scores tanh-squashed into [-1, 1] for the max-margin loss. Weights start
    uniform in [-0.08, 0.08] (the paper). Causal, so right-padding never changes a valid frame's score."""

    def __init__(self, *, input_dim: int = 1024, hidden: int = 256, layers: int = 3, dropout: float = 0.5,
                 n_aus: int = 12):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(input_dim, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0,
                            batch_first=True)
        self.out = nn.Linear(hidden, n_aus)
        for p in self.parameters():
            nn.init.uniform_(p, -0.08, 0.08)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, input_dim) -> scores (B, T, L) in [-1, 1]."""
        h, _ = self.lstm(self.drop(x))
        return torch.tanh(self.out(self.drop(h)))


class ScoreFusion(nn.Module):
    """Two fully connected layers over the stacked, L2-normalised CNN and LSTM scores of each frame."""

    def __init__(self, *, n_aus: int = 12, hidden: int = 64):
        super().__init__()
        self.fc1 = nn.Linear(2 * n_aus, hidden)
        self.fc2 = nn.Linear(hidden, n_aus)

    def forward(self, cnn_scores: torch.Tensor, lstm_scores: torch.Tensor) -> torch.Tensor:
        """(..., L) and (..., L) -> fused logits (..., L)."""
        stacked = torch.cat([F.normalize(cnn_scores, dim=-1), F.normalize(lstm_scores, dim=-1)], dim=-1)
        return self.fc2(F.relu(self.fc1(stacked)))


class ChuHybrid(nn.Module):
    """The three parts and the PCA between them; `forward` runs a whole video through all of them."""

    def __init__(self, *, n_aus: int = 12, in_channels: int = 3, variant: str = "paper", pca_dim: int = 1024,
                 lstm_hidden: int = 256, lstm_layers: int = 3, dropout: float = 0.5, fusion_hidden: int = 64):
        super().__init__()
        self.cnn = ChuCNN(n_aus=n_aus, in_channels=in_channels, variant=variant, dropout=dropout)
        pca_dim = min(pca_dim, self.cnn.fc_dim)
        self.pca = PCA(dim=self.cnn.fc_dim, components=pca_dim)
        self.lstm = StackedLSTM(input_dim=pca_dim, hidden=lstm_hidden, layers=lstm_layers, dropout=dropout,
                                n_aus=n_aus)
        self.fusion = ScoreFusion(n_aus=n_aus, hidden=fusion_hidden)

    def frame_outputs(self, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """faces (N, C, crop, crop) -> CNN logits (N, L), PCA features (N, pca_dim)."""
        return self.cnn(faces), self.pca(self.cnn.features(faces))

    def forward(self, faces: torch.Tensor) -> dict[str, torch.Tensor]:
        """One batch of videos, faces (B, T, C, crop, crop) -> per-frame "cnn" logits, "lstm" scores in
        [-1, 1] and "fusion" logits, each (B, T, L)."""
        B, T = faces.shape[:2]
        cnn, feats = self.frame_outputs(faces.flatten(0, 1))
        cnn, feats = cnn.unflatten(0, (B, T)), feats.unflatten(0, (B, T))
        lstm = self.lstm(feats)
        return {"cnn": cnn, "lstm": lstm, "fusion": self.fusion(cnn, lstm)}


@dataclass
class ChuConfig:
    variant: str = "small"      # paper: 176 x 176 crops of 200 x 200 faces; small: 56 of 64 (CPU)
    pca_dim: int = 1024         # paper: fc7 (4096) to 1024; capped at the fc width
    lstm_hidden: int = 256
    lstm_layers: int = 3
    dropout: float = 0.5
    fusion_hidden: int = 64     # not stated in the paper
    margin: float = 0.5         # max-margin loss of the LSTM (the paper's lambda)


@register_model("chu_hybrid", config=ChuConfig, inputs="images", kind="au_detector")
def chu_hybrid(*, n_aus: int = 12, in_channels: int = 3, variant: str = "small", pca_dim: int = 1024,
               lstm_hidden: int = 256, lstm_layers: int = 3, dropout: float = 0.5, fusion_hidden: int = 64,
               **_context) -> ChuHybrid:
    return ChuHybrid(n_aus=n_aus, in_channels=in_channels, variant=variant, pca_dim=pca_dim,
                     lstm_hidden=lstm_hidden, lstm_layers=lstm_layers, dropout=dropout, fusion_hidden=fusion_hidden)
