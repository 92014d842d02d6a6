"""Losses of the face-to-AU networks of Chu et al. (CNN + LSTM) and An et al. (GTLE-Net).

Labels are per frame and per AU in {-1, 0, +1}: absent, missing (lost track, occlusion, BP4D's 9),
present. A missing label adds nothing to a loss but still counts in its normaliser where the
paper says so.

    multilabel_ce(logits, labels)              Chu eq. (L_E): -1/L sum_l [y>0] log p + [y<0] log(1-p)
    max_margin(scores, labels, margin=0.5)     Chu eq. (4):   1/n0 sum_i max(0, margin - y_i s_i)
    expression_triplet(a, p, n, margin)        An eq. (1):    both anchor-negative and positive-negative hinges
    gtle_loss(logits, labels, rec, image)      An eq. (9)-(11): L_au + 0.001 L_rec

Every function takes batches and returns the mean over frames (or triplets) of the per-item loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.shape != labels.shape:
        raise ValueError(f"scores {tuple(logits.shape)} and labels {tuple(labels.shape)} differ in shape")


def positive_weights(positives: torch.Tensor, negatives: torch.Tensor, cap: float = 50.0) -> torch.Tensor:
    """(A,) negatives / positives per AU, in [1, cap]; 1 for an AU without positives. Weighting each
    AU's positive term by it balances a skewed AU, so that a detector at chance-level evidence is
    not pushed below 0.5 by the base rate alone."""
    positives, negatives = positives.float(), negatives.float()
    ratio = negatives / positives.clamp(min=1)
    return torch.where(positives > 0, ratio, torch.ones_like(ratio)).clamp(1.0, cap)


def multilabel_ce(logits: torch.Tensor, labels: torch.Tensor, *, per_au_mean: bool = True,
                  pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Masked multi-label cross-entropy. logits (..., L) of sigmoid probabilities, labels (..., L) in {-1, 0, 1}.

    Per frame: -(1/L) sum_l [y_l > 0] log p_l + [y_l < 0] log(1 - p_l), L the number of AUs whether or
    not some are missing (Chu et al. divide by L, not by the labelled count). `per_au_mean=False`
    sums over AUs instead (An et al.'s L_au, eq. 10). Computed from logits (log-sigmoid), which is
    exact and never takes the log of a rounded 0. `pos_weight` (L,) scales each AU's positive term
    (see positive_weights; not in the papers).
    """
    _check_labels(logits, labels)
    labels = labels.to(logits.dtype)
    present = (labels > 0) * (1.0 if pos_weight is None else pos_weight.to(logits.dtype))
    per_au = present * F.logsigmoid(logits) + (labels < 0) * F.logsigmoid(-logits)   # log p or log(1-p), 0 if missing
    per_frame = -per_au.sum(-1)
    if per_au_mean:
        per_frame = per_frame / logits.shape[-1]
    return per_frame.mean()


def max_margin(scores: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.5) -> torch.Tensor:
    """Chu et al.'s eq. (4) for the LSTM's outputs in [-1, 1]: per frame (1/n0) sum_i max(0, margin - y_i s_i),
    n0 the frame's nonzero labels (a frame with none contributes 0). scores, labels (..., L).

    The paper's text passes the gradient -y_i / n0 "if y_i s_i < 1" although its margin is 0.5; we use
    the gradient of the loss as written (nonzero while y_i s_i < margin), which autograd gives.
    """
    _check_labels(scores, labels)
    labels = labels.to(scores.dtype)
    hinge = torch.clamp(margin - labels * scores, min=0) * (labels != 0)
    n0 = (labels != 0).sum(-1).clamp(min=1)
    return (hinge.sum(-1) / n0).mean()


def expression_triplet(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                       margin: torch.Tensor | float) -> torch.Tensor:
    """An et al.'s eq. (1) on embeddings (B, d): the negative must be farther, by `margin` in squared
    distance, from both the anchor and the positive. `margin` a float or (B,) per triplet
    (see FEC_MARGINS: the paper states none)."""
    d_ap = (anchor - positive).pow(2).sum(-1)
    d_an = (anchor - negative).pow(2).sum(-1)
    d_pn = (positive - negative).pow(2).sum(-1)
    margin = torch.as_tensor(margin, dtype=anchor.dtype, device=anchor.device)
    return (torch.clamp(d_ap - d_an + margin, min=0) + torch.clamp(d_ap - d_pn + margin, min=0)).mean()


# Margins by FEC triplet type. An et al. give none; Google's FEC code (Vemulapalli & Agarwala) uses
# 0.1 for one-class triplets (all three faces of one emotion: finer differences) and 0.2 otherwise.
FEC_MARGINS = {"ONE_CLASS_TRIPLET": 0.1, "TWO_CLASS_TRIPLET": 0.2, "THREE_CLASS_TRIPLET": 0.2}


def reconstruction_loss(reconstruction: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """An et al.'s eq. (11): per image 1/2 sum over pixels (and channels) of the squared error, mean over
    the batch. The paper prints a minus sign, which would reward bad reconstructions; we drop it.
    It is a sum, not a mean, over pixels: that is what makes the weight 0.001 a sensible balance."""
    if reconstruction.shape != image.shape:
        raise ValueError(f"reconstruction {tuple(reconstruction.shape)} and image {tuple(image.shape)} differ")
    return 0.5 * (reconstruction - image).pow(2).flatten(1).sum(1).mean()


def gtle_loss(logits: torch.Tensor, labels: torch.Tensor, reconstruction: torch.Tensor, image: torch.Tensor,
              *, rec_weight: float = 0.001) -> dict[str, torch.Tensor]:
    """An et al.'s eq. (9): L_au (summed over AUs, missing labels dropped) + rec_weight * L_rec."""
    au = multilabel_ce(logits, labels, per_au_mean=False)
    rec = reconstruction_loss(reconstruction, image)
    return {"loss": au + rec_weight * rec, "au": au.detach(), "rec": rec.detach()}
