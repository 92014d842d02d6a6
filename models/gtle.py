"""An et al.'s GTLE-Net: a global expression encoder pretrained on expression triplets, a local AU
feature module (per-AU feature maps x sigmoid masks, with a reconstruction head) and per-AU classifiers.

    image (B, C, S, S) -> ExpressionEncoder.features -> h (B, w, S/2^n, S/2^n)   (paper: 16 x 16 of 256)
                       -> ExpressionEncoder.embed    -> (B, 16), unit norm       (triplet pretraining)
    h -> E_a -> f (B, N+1, C, S, S) feature maps (N AUs + background), sigmoid
    h -> E_m -> m (B, N+1, 1, S, S) masks, sigmoid
    c = m * f -> AUClassifiers(c[:, :N]) -> logits (B, N);  D_r(all of c) -> reconstruction (B, C, S, S)

The encoder is a compact residual CNN in place of the paper's InceptionResnetV1 (whose reference
implementation needs torchvision/facenet-pytorch and weights we cannot have here): `len(widths)`
stride-2 stages, each conv-BN-ReLU then a residual block, then one more stage, global pooling and a
linear layer to the 16-d embedding, L2-normalised. The AU feature extractor E_a is a shared trunk
(a residual block, then one nearest x2 upsampling + conv per encoder stage, back to the input size)
with one conv + sigmoid head per map, computed as one convolution with (N+1) x C output channels
(the same as N+1 separate heads); E_m is a parallel trunk of the same shape with N+1 one-channel
sigmoid heads. The classifiers are N independent CNNs, each five blocks conv k7 s2 p3 + BatchNorm +
ELU (16-32-64-128-256), global average pooling and a 1x1 conv to one logit, run as grouped
convolutions (groups = N), so AU k's classifier sees only c^k (tests check this).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from models.registry import register_model


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                  nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         ResBlock(cout))


class ExpressionEncoder(nn.Module):
    """The global expression encoder (GEE): shallow stages give h, a head gives the embedding."""

    def __init__(self, *, in_channels: int = 3, widths: tuple[int, ...] = (32, 64, 128, 256), embed_dim: int = 16):
        super().__init__()
        chans = [in_channels, *widths]
        self.stages = nn.Sequential(*[_down(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.head = nn.Sequential(_down(widths[-1], 2 * widths[-1]), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(2 * widths[-1], embed_dim))
        self.out_channels, self.downsample = widths[-1], 2 ** len(widths)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> h (B, widths[-1], S / 2^n, S / 2^n)."""
        return self.stages(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> unit-norm expression embedding (B, embed_dim)."""
        return F.normalize(self.head(self.features(x)), dim=1)

    forward = embed


class Upsampler(nn.Module):
    """h -> maps at the input resolution: a residual block, then per step nearest x2 + conv-BN-ReLU,
    then a conv head with `out_channels` and a sigmoid."""

    def __init__(self, *, in_channels: int, widths: tuple[int, ...], out_channels: int):
        super().__init__()
        layers: list[nn.Module] = [ResBlock(in_channels)]
        c = in_channels
        for w in widths:
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, w, 3, 1, 1, bias=False),
                       nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Conv2d(c, out_channels, 3, 1, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.trunk(h)))


class AUClassifiers(nn.Module):
    """N independent per-AU CNNs as grouped convolutions: (B, N, C, S, S) -> logits (B, N)."""

    def __init__(self, *, n_aus: int, in_channels: int = 3, widths: tuple[int, ...] = (16, 32, 64, 128, 256)):
        super().__init__()
        layers, c = [], in_channels
        for w in widths:
            layers += [nn.Conv2d(n_aus * c, n_aus * w, 7, 2, 3, groups=n_aus), nn.BatchNorm2d(n_aus * w), nn.ELU()]
            c = w
        self.blocks = nn.Sequential(*layers)
        self.out = nn.Conv2d(n_aus * c, n_aus, 1, groups=n_aus)   # the paper's last 1x1 "convolution block"
        self.n_aus = n_aus

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        x = rearrange(c, "b n c h w -> b (n c) h w")      # group k holds AU k's channels
        x = F.adaptive_avg_pool2d(self.blocks(x), 1)      # (B, N * 256, 1, 1): the AU embeddings
        return self.out(x).flatten(1)                     # (B, N)


class GTLENet(nn.Module):
    def __init__(self, *, n_aus: int = 12, in_channels: int = 3, encoder_widths: tuple[int, ...] = (32, 64, 128, 256),
                 embed_dim: int = 16, decoder_widths: tuple[int, ...] | None = None,
                 classifier_widths: tuple[int, ...] = (16, 32, 64, 128, 256), rec_hidden: int = 32):
        super().__init__()
        self.encoder = ExpressionEncoder(in_channels=in_channels, widths=tuple(encoder_widths), embed_dim=embed_dim)
        up = tuple(decoder_widths) if decoder_widths else tuple(reversed(encoder_widths))[1:] + (encoder_widths[0] // 2,)
        if len(up) != len(encoder_widths):
            raise ValueError(f"GTLENet: decoder_widths needs one width per encoder stage ({len(encoder_widths)})")
        h = self.encoder.out_channels
        self.n_aus, self.channels = n_aus, in_channels
        self.feature_maps = Upsampler(in_channels=h, widths=up, out_channels=(n_aus + 1) * in_channels)  # E_a
        self.masks = Upsampler(in_channels=h, widths=up, out_channels=n_aus + 1)                           # E_m
        self.reconstruct = nn.Sequential(                                                                  # D_r
            nn.Conv2d((n_aus + 1) * in_channels, rec_hidden, 3, 1, 1), nn.ELU(),
            nn.Conv2d(rec_hidden, in_channels, 3, 1, 1), nn.Sigmoid())
        self.classifiers = AUClassifiers(n_aus=n_aus, in_channels=in_channels, widths=tuple(classifier_widths))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """image (B, C, S, S) in [0, 1] -> "logits" (B, N), "reconstruction" (B, C, S, S),
        "masks" (B, N+1, 1, S, S), "features" f (B, N+1, C, S, S)."""
        h = self.encoder.features(image)
        f = rearrange(self.feature_maps(h), "b (n c) h w -> b n c h w", c=self.channels)
        m = self.masks(h).unsqueeze(2)
        c = m * f                                                    # the AU masked features
        return {"logits": self.classifiers(c[:, :self.n_aus]), "masks": m, "features": f,
                "reconstruction": self.reconstruct(rearrange(c, "b n c h w -> b (n c) h w"))}


@dataclass
class GTLEConfig:
    size: int = 32                  # input side (paper: 256); must be a multiple of 2^len(encoder_widths)
    encoder_widths: list[int] = field(default_factory=lambda: [8, 16, 32, 48])         # paper-scale preset: 32-64-128-256
    classifier_widths: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 64])   # paper: 16-32-64-128-256
    embed_dim: int = 16
    rec_weight: float = 0.001       # lambda of L_au + lambda L_rec
    pretrain: str = "finetune"      # none (encoder random) | frozen | finetune (pretrained on triplets)


@register_model("gtle_net", config=GTLEConfig, inputs="images", kind="au_detector")
def gtle_net(*, n_aus: int = 12, in_channels: int = 3, encoder_widths=(32, 64, 128, 256), embed_dim: int = 16,
             classifier_widths=(16, 32, 64, 128, 256), **_context) -> GTLENet:
    return GTLENet(n_aus=n_aus, in_channels=in_channels, encoder_widths=tuple(encoder_widths), embed_dim=embed_dim,
                   classifier_widths=tuple(classifier_widths))
