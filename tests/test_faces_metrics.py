"""AU metrics (torchmetrics) against scikit-learn, with unlabelled entries and one-class AUs."""
from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from faces.metrics import PAPER_AUS, au_metrics

NAMES = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU09", "AU12", "AU15", "AU17", "AU20", "AU25", "AU26")


def test_per_au_metrics_match_sklearn_and_means_skip_undefined():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 12)) < 0.3).astype(np.float32)
    p = np.clip(0.6 * y + 0.5 * rng.random((300, 12)), 0, 1).astype(np.float32)
    y[rng.random((300, 12)) < 0.1] = np.nan                 # unlabelled
    y[:, 3] = np.where(np.isnan(y[:, 3]), np.nan, 0.0)       # AU05: no positives -> AUCs undefined
    m = au_metrics(torch.from_numpy(p), torch.from_numpy(y), NAMES)
    for j, au in enumerate(NAMES):
        keep = ~np.isnan(y[:, j])
        yt, pt = y[keep, j], p[keep, j]
        assert math.isclose(m["f1"][au], 100 * f1_score(yt, pt >= 0.5, zero_division=0), abs_tol=1e-4)
        if au == "AU05":
            assert math.isnan(m["pr_auc"][au]) and math.isnan(m["roc_auc"][au]) and m["f1"][au] == 0.0
        else:
            assert math.isclose(m["pr_auc"][au], 100 * average_precision_score(yt, pt), abs_tol=1e-3)
            assert math.isclose(m["roc_auc"][au], 100 * roc_auc_score(yt, pt), abs_tol=1e-3)
    assert math.isclose(m["mean"]["f1"], np.mean([m["f1"][a] for a in NAMES]), abs_tol=1e-9)
    assert math.isclose(m["mean"]["roc_auc"], np.mean([m["roc_auc"][a] for a in NAMES if a != "AU05"]), abs_tol=1e-9)
    assert math.isclose(m["mean8"]["f1"], np.mean([m["f1"][a] for a in PAPER_AUS]), abs_tol=1e-9)
