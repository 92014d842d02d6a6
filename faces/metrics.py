"""AU detection metrics (torchmetrics): per-AU F1 at 0.5, PR-AUC (average precision), ROC-AUC, means.

    m = au_metrics(probs, labels, au_names)     # probs (N, A) in [0, 1]; labels (N, A) 0/1, NaN = unlabelled
    m["f1"]["AU12"], m["mean"]["f1"], m["mean8"]["f1"]

F1 follows the papers: per frame, thresholded at 0.5, 0 when an AU has neither true nor predicted
positives. PR-AUC and ROC-AUC are undefined without both classes; they are NaN then and left out of
the means. `mean8` averages the eight AUs Fung & McDuff (and LP-Net) report: 1 2 4 6 9 12 25 26.
Computed once over all predictions, never per batch. Runs on the tensors' device.
"""
from __future__ import annotations

import math

import torch
from torchmetrics.functional.classification import binary_auroc, binary_average_precision, binary_f1_score

PAPER_AUS = ("AU01", "AU02", "AU04", "AU06", "AU09", "AU12", "AU25", "AU26")
METRICS = ("f1", "pr_auc", "roc_auc")


def au_metrics(probs: torch.Tensor, labels: torch.Tensor, au_names, *, threshold: float = 0.5) -> dict:
    probs, labels = torch.as_tensor(probs).float(), torch.as_tensor(labels).float()
    if probs.shape != labels.shape or probs.dim() != 2 or probs.shape[1] != len(au_names):
        raise ValueError(f"au_metrics: probs {tuple(probs.shape)}, labels {tuple(labels.shape)}, {len(au_names)} AU names")
    out = {k: {} for k in METRICS}
    for j, au in enumerate(au_names):
        keep = ~torch.isnan(labels[:, j])
        p, y = probs[keep, j], labels[keep, j].long()
        n_pos = int(y.sum())
        out["f1"][au] = 100.0 * float(binary_f1_score(p, y, threshold=threshold)) if len(y) else math.nan
        both = 0 < n_pos < len(y)
        out["pr_auc"][au] = 100.0 * float(binary_average_precision(p, y)) if both else math.nan
        out["roc_auc"][au] = 100.0 * float(binary_auroc(p, y)) if both else math.nan
    for name, aus in (("mean", list(au_names)), ("mean8", [a for a in PAPER_AUS if a in au_names])):
        out[name] = {k: _nanmean([out[k][a] for a in aus]) for k in METRICS}
    return out


def _nanmean(values) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan
